"""`billing lint`: catalogs and rulesets linted together, and every template a rule sends
rendered with the sample context of the rule's trigger. Moved from engine/cli/commands/ops.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.cli.errors import BadInput
from engine.cli.paths import expand
from engine.config import get_settings


def register(sub: Any) -> None:
    """`lint`: catalogs and rulesets together."""
    p = sub.add_parser("lint", help="lint catalogs and rulesets together")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument(
        "--templates",
        default=None,
        help="the templates directory rules may name; default BILLING_TEMPLATES_DIR, else the shipped ones",
    )
    p.set_defaults(func=run_lint)


def loadable_rulesets(paths: list[str]) -> list[Any]:
    """The rulesets among `paths` that load (lint reports the others' problems)."""
    from engine.documents import DocumentError
    from engine.rules import load_ruleset

    out = []
    for path in expand(paths):
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError:
            continue
        if not any(line.startswith("ruleset:") for line in text.splitlines()):
            continue
        try:
            out.append(load_ruleset(path))
        except (DocumentError, ValueError):
            continue
    return out


def run_lint(args: argparse.Namespace) -> int:
    from engine.rules import lint_paths

    paths = [str(p) for p in expand(args.paths)]
    templates = _templates_dir(args.templates)
    problems = lint_paths(paths, templates=templates)
    for problem in problems:
        print(problem, file=sys.stderr if problem.severity == "error" else sys.stdout)
    errors = [p for p in problems if p.severity == "error"]
    # Every template a rule sends, rendered with the sample context of the rule's trigger.
    renders = _render_problems(paths, templates)
    for line in renders:
        print(f"error: {line}", file=sys.stderr)
    if errors or renders:
        print(f"{len(errors) + len(renders)} error(s), {len(problems) - len(errors)} warning(s)", file=sys.stderr)
        return 1
    print(f"lint: no errors, {len(problems)} warning(s)")
    return 0


def _templates_dir(flag: str | None) -> Path:
    """The templates lint checks against: --templates, else what the engine renders with
    (BILLING_TEMPLATES_DIR, resolved as `billing up` does, so a run outside the checkout still
    checks the shipped ones). A directory that is not there is bad input, never "unchecked"."""
    from engine.config import shipped_dir

    if flag is not None:
        path, named = Path(flag), "--templates"
    else:
        path, named = shipped_dir(get_settings().templates_dir), "BILLING_TEMPLATES_DIR"
    if not path.is_dir():
        raise BadInput(f"{named}: {path} is not a directory of templates")
    return path


def _render_problems(paths: list[str], templates: Path) -> list[str]:
    from engine.messaging import Renderer
    from engine.system.samples import render_problems

    return render_problems(loadable_rulesets(paths), Renderer(templates))
