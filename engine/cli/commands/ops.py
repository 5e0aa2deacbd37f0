"""The operations' commands, each now in a module of its own: `processes` (worker, scheduler,
broker status, the PSP sandbox), `reconciliation` (reconcile, the bank lines, the journal
export), `templates` (template preview), `users` (user add), `lint` and `simulate` (with
`simulate_cohort`, `simulate_rules` and `simulate_output`). `engine.cli.commands.MODULES`
registers them in the order this module did; the commands' functions stay importable from here.
"""

from engine.cli.commands.lint import run_lint
from engine.cli.commands.processes import run_broker_status, run_sandbox, run_scheduler, run_worker
from engine.cli.commands.reconciliation import (
    run_export_journal,
    run_reconcile,
    run_reconcile_decide,
    run_reconcile_lines,
)
from engine.cli.commands.simulate import run_simulate
from engine.cli.commands.templates import run_template_preview
from engine.cli.commands.users import run_user_add

__all__ = [
    "run_broker_status",
    "run_export_journal",
    "run_lint",
    "run_reconcile",
    "run_reconcile_decide",
    "run_reconcile_lines",
    "run_sandbox",
    "run_scheduler",
    "run_simulate",
    "run_template_preview",
    "run_user_add",
    "run_worker",
]
