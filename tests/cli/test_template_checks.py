"""`billing lint` and `billing template preview` render templates with the context their
real triggering event carries, and name the file and line of an undefined variable.

The broken template below reads `offer.plan_name` without `offer is defined`: the hand-made
preview sample has an offer, but usage.threshold_reached (what really sends quota_warning)
carries none, so in production the message would fail. Both commands must say so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.cli.runner import invoke

ROOT = Path(__file__).resolve().parents[2]
BILLING = str(Path(sys.executable).with_name("billing"))


def billing(*argv: str, cwd: Path, templates: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BILLING_DATABASE_URL": f"sqlite:///{cwd}/t.db",
           "BILLING_RULES_DIR": str(ROOT / "rules"), "BILLING_TEMPLATES_DIR": str(templates)}
    return invoke(*argv, cwd=cwd, env=env)


def broken_templates(tmp_path: Path) -> Path:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    path = templates / "email" / "en" / "quota_warning.txt"
    lines = path.read_text().splitlines()
    lines.insert(5, "Upgrade to {{ offer.plan_name }}.")  # line 6, and no `offer is defined`
    path.write_text("\n".join(lines) + "\n")
    return templates


def test_shipped_templates_lint_clean(tmp_path: Path) -> None:
    ok = billing("lint", str(ROOT / "rules"), str(ROOT / "catalogs"), "--templates",
                 str(ROOT / "templates"), cwd=tmp_path, templates=ROOT / "templates")
    assert ok.returncode == 0, ok.stderr


def test_lint_names_the_template_line_of_an_undefined_variable(tmp_path: Path) -> None:
    templates = broken_templates(tmp_path)
    result = billing("lint", str(ROOT / "rules"), str(ROOT / "catalogs"), "--templates",
                     str(templates), cwd=tmp_path, templates=templates)
    assert result.returncode == 1, result.stdout
    assert "email/en/quota_warning.txt:6: undefined variable: 'offer' is undefined" in result.stderr
    assert "notifications/quota-80 (on usage.threshold_reached)" in result.stderr


def test_preview_renders_with_the_real_event_and_names_the_line(tmp_path: Path) -> None:
    templates = broken_templates(tmp_path)
    bad = billing("template", "preview", "quota_warning", cwd=tmp_path, templates=templates)
    assert bad.returncode == 1, bad.stdout
    assert "email/en/quota_warning.txt:6: undefined variable: 'offer' is undefined" in bad.stderr
    # The shipped quota templates render: the real event's quota facts reach them.
    ok = billing("template", "preview", "quota_reached", "--channel", "in_app", cwd=tmp_path,
                 templates=ROOT / "templates")
    assert ok.returncode == 0, ok.stderr
    assert "100" in ok.stdout and "API calls" in ok.stdout
