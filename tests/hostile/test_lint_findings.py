"""`billing lint` reports every finding of every stage at once, and checks template names
against the templates the engine renders with, wherever it is run from. Issue 16, "The linter
stops early and looks in the wrong place"."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.cli import main
from engine.config import get_settings
from engine.console.drafts import check_draft
from engine.rules import References

ROOT = Path(__file__).resolve().parents[2]

# Line 5: can never hold; line 9: an unknown template; line 12: a misshapen condition;
# rule 3 is shadowed by rule 0's deny whatever rule 2 says.
RULESET = """\
ruleset: careless
rules:
  - id: never
    on: access.check
    when: {all: [{usage.api_calls: {gt: 5}}, {usage.api_calls: {lt: 3}}]}
    then: [{deny: {}}]
  - id: typo
    on: usage.threshold_reached
    then: [{notify: {template: quota_warnign}}]
  - id: garbled
    on: access.check
    when: {customer.x: {frobnicate: 3}}
    then: [{deny: {}}]
  - {id: deny-beta, on: access.check, priority: 5, when: {feature: beta_ai}, then: [{deny: {}}]}
  - {id: partner-beta, on: access.check, when: {all: [{feature: beta_ai}, {customer.tags: {contains: partner}}]}, then: [{allow: {}}]}
"""


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory outside the checkout, with no templates/ of its own."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("BILLING_TEMPLATES_DIR", raising=False)
    get_settings.cache_clear()
    yield cwd
    get_settings.cache_clear()


def lint(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["lint", *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_every_finding_of_every_stage_is_reported_at_once(elsewhere: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (elsewhere / "careless.yaml").write_text(RULESET)
    code, out, err = lint(capsys, "careless.yaml", str(ROOT / "catalogs/saas.yaml"))
    assert code == 1
    assert "careless.yaml:5: rules[0].when: this condition can never hold" in err
    assert "careless.yaml:9: rules[1].then[0].notify.template: unknown template 'quota_warnign'" in err
    assert "careless.yaml:12: rules[2].when.customer.x.frobnicate: unknown field 'frobnicate'" in err
    assert "careless.yaml:15: rules[4]: rule 'partner-beta' never takes effect: the earlier rule 'deny-beta'" in err
    assert err.rstrip().endswith("4 error(s), 0 warning(s)")


def test_a_misshapen_condition_does_not_read_as_always(elsewhere: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = """\
ruleset: t
rules:
  - {id: garbled-deny, on: access.check, priority: 5, when: {feature: {frobnicate: 1}}, then: [{deny: {}}]}
  - {id: fine, on: access.check, when: {feature: sso}, then: [{allow: {}}]}
"""
    (elsewhere / "t.yaml").write_text(text)
    code, _, err = lint(capsys, "t.yaml", str(ROOT / "catalogs/saas.yaml"))
    assert code == 1
    assert "never takes effect" not in err  # the garbled deny was not analysed as "deny always"
    assert err.rstrip().endswith("1 error(s), 0 warning(s)")


def test_templates_are_checked_against_the_shipped_ones_outside_the_checkout(
        elsewhere: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (elsewhere / "typo.yaml").write_text(
        "ruleset: t\nrules:\n  - {id: a, on: usage.threshold_reached, then: [{notify: {template: quota_warnign}}]}\n")
    code, _, err = lint(capsys, "typo.yaml", str(ROOT / "catalogs/saas.yaml"))
    assert code == 1
    assert "typo.yaml:3: rules[0].then[0].notify.template: unknown template 'quota_warnign'; known: " in err


def test_templates_are_checked_against_billing_templates_dir(
        elsewhere: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    ours = tmp_path / "our-templates"
    shutil.copytree(ROOT / "templates", ours)
    (ours / "in_app" / "en" / "loyalty_note.txt").write_text(
        "{% block title %}Thank you{% endblock %}\n{% block body %}For staying with us.{% endblock %}\n")
    (elsewhere / "loyal.yaml").write_text(
        "ruleset: t\nrules:\n  - {id: a, on: usage.threshold_reached, "
        "then: [{notify: {template: loyalty_note, channels: [in_app]}}]}\n")
    shipped = lint(capsys, "loyal.yaml", str(ROOT / "catalogs/saas.yaml"))
    assert shipped[0] == 1 and "unknown template 'loyalty_note'" in shipped[2]
    monkeypatch.setenv("BILLING_TEMPLATES_DIR", str(ours))
    get_settings.cache_clear()
    code, out, err = lint(capsys, "loyal.yaml", str(ROOT / "catalogs/saas.yaml"))
    assert (code, err) == (0, ""), err
    assert out == "lint: no errors, 0 warning(s)\n"


def test_a_templates_directory_that_is_not_there_is_bad_input(
        elsewhere: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    (elsewhere / "r.yaml").write_text("ruleset: t\nrules:\n  - {id: a, on: a.b, then: [{allow: {}}]}\n")
    monkeypatch.setenv("BILLING_TEMPLATES_DIR", str(elsewhere / "nowhere"))
    get_settings.cache_clear()
    assert lint(capsys, "r.yaml") == (1, "", f"billing: BILLING_TEMPLATES_DIR: {elsewhere / 'nowhere'} is not a "
                                             "directory of templates\n")
    assert lint(capsys, "r.yaml", "--templates", "missing") == (
        1, "", "billing: --templates: missing is not a directory of templates\n")


def test_the_console_shows_lint_findings_beside_validation_errors() -> None:
    refs = References.from_catalogs([], ROOT / "templates")
    found = check_draft("ruleset", RULESET, "careless.yaml", refs=refs)
    assert [(p.line, p.path) for p in found.errors] == [
        (5, "rules[0].when"), (9, "rules[1].then[0].notify.template"), (12, "rules[2].when.customer.x.frobnicate"),
        (15, "rules[4]"),
    ]
