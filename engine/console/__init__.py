"""The pricing manager's console (the Streamlit app in ui/) and what it needs from the engine:
drafts, checks and diffs, form edits that write YAML, publish/rollback with the audit, and
the store adapters for simulations and the Inspect pages.

    process = run_console(8501, database_url="sqlite:///./billing.db")   # prints URL + demo sign-ins
"""

from engine.console.access import AccessTester, Explained
from engine.console.clock import engine_clock
from engine.console.demo_users import seed_demo
from engine.console.drafts import DraftCheck, check_draft, checksum, diff
from engine.console.launch import APP, console_command, run_console, wait_healthy
from engine.console.store import (
    ConsoleError,
    check_stored,
    history,
    publish,
    rollback,
    save_draft,
    store_records,
)

__all__ = [
    "APP",
    "AccessTester",
    "ConsoleError",
    "DraftCheck",
    "Explained",
    "check_draft",
    "check_stored",
    "checksum",
    "console_command",
    "diff",
    "engine_clock",
    "history",
    "publish",
    "rollback",
    "run_console",
    "save_draft",
    "seed_demo",
    "store_records",
    "wait_healthy",
]
