"""Errors that say what is wrong and where: the right line for a YAML syntax error (console
and CLI), the real reason for an out-of-range value, one error for one mistake, a file named
once, and a republished catalog that says it is unchanged everywhere. Issue 16, "Errors that
mislead"."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import sales
from engine.clock import SystemClock
from engine.console import ConsoleError, publish
from engine.console.store import check_stored
from engine.store import Database
from engine.system.console_operations import console_operations
from tests.cli.runner import run

ROOT = Path(__file__).resolve().parents[2]
SAAS = (ROOT / "catalogs/saas.yaml").read_text()




# (what, text, the line to fix): a flow collection that was not closed is noticed by the
# parser at the next line; the bracket is missing on this one.
UNCLOSED = [
    ("ruleset-rule", "ruleset: promotions\nrules:\n  - {id: a, on: price.calculate, then: [{discount: {percent: 5}}]\n"
                     "  - {id: b, on: price.calculate, then: [{discount: {percent: 9}}]}\n", "ruleset", 3),
    ("catalog-taxes", SAAS.replace("taxes: {CH: 8.1, DE: 19, FR: 20, GB: 20}", "taxes: {CH: 8.1, DE: 19"), "catalog",
     next(n for n, row in enumerate(SAAS.splitlines(), 1) if row.startswith("taxes:"))),
    ("list-at-the-end", "catalog: x\ncurrency: EUR\nplans: {p: {name: P, interval: month, prices: [\n", "catalog", 3),
]


@pytest.mark.parametrize(("what", "text", "kind", "line"), UNCLOSED, ids=[c[0] for c in UNCLOSED])
def test_an_unclosed_bracket_is_reported_at_its_line_in_the_console_and_the_cli(
        what: str, text: str, kind: str, line: int, database: Database, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with database.read_session() as s:
        check = check_stored(s, kind, text, ops=console_operations())  # what the console's editor shows on every keystroke
    assert [(p.line, p.path) for p in check.errors] == [(line, "(document)")]
    assert check.errors[0].message.startswith("malformed YAML: while parsing a flow")
    path = tmp_path / f"{what}.yaml"
    path.write_text(text)
    code, out, err = run(capsys, "validate", str(path))
    assert (code, out) == (1, "")
    assert err.startswith(f"{path}:{line}: (document): malformed YAML:")


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("percent_off: 20", "percent_off: 150", "coupons.WELCOME20.percent_off: 150 is greater than the maximum of 100"),
    ("{CH: 8.1,", "{CH: -8.1,", "taxes.CH: -8.1 is less than the minimum of 0"),
    # The API's limit (README "Limits") holds for a catalog too.
    ("trial_days: 14", "trial_days: 99999", "plans.pro.trial_days: 99999 is greater than the maximum of 3660"),
])
def test_an_out_of_range_value_gets_the_reason(
        old: str, new: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "saas.yaml"
    path.write_text(SAAS.replace(old, new, 1))
    code, _, err = run(capsys, "validate", str(path))
    assert code == 1
    assert expected in err
    assert "not valid under any of the given schemas" not in err
    assert err.endswith("1 error(s)\n")


def test_an_out_of_range_rule_value_gets_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("ruleset: p\nrules:\n  - {id: a, on: price.calculate, then: [{discount: {percent: 150}}]}\n")
    code, _, err = run(capsys, "validate", str(path))
    assert code == 1
    assert f"{path}:3: rules[0].then[0].discount.percent: 150 is greater than the maximum of 100\n" in err


def test_a_misspelt_aggregation_is_one_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "saas.yaml"
    path.write_text(SAAS.replace("aggregation: count}", "aggregation: countt}", 1))
    code, _, err = run(capsys, "validate", str(path))
    assert code == 1
    assert err == (f"{path}:10: metrics.api_calls.aggregation: 'countt' is not one of count, sum, max, "
                   "unique_count, latest, weighted_sum\n1 error(s)\n")


def test_a_metric_other_than_count_still_needs_its_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "saas.yaml"
    path.write_text(SAAS.replace("aggregation: max, field: gb}", "aggregation: max}", 1))
    code, _, err = run(capsys, "validate", str(path))
    assert code == 1
    assert err == f"{path}:11: metrics.storage_gb: 'field' is required\n1 error(s)\n"


def test_a_statement_error_names_its_file_once(
        database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "settlement.csv"
    path.write_text("x,y\n")
    code, out, err = run(capsys, "reconcile", str(path))
    assert (code, out) == (1, "")
    assert err.startswith(f"billing: {path}:1: header must be ")
    assert err.count(str(path)) == 1


def test_quote_with_a_ruleset_that_does_not_validate_names_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "promotions.yaml"
    rules.write_text("ruleset: p\nrules:\n  - {id: a, on: price.calculate, then: [{discount: {percent: 150}}]}\n")
    code, out, err = run(capsys, "quote", "--catalog", str(ROOT / "catalogs/saas.yaml"), "--plan", "pro",
                         "--rules", str(rules), "--period", "2026-11-01/2026-12-01")
    assert (code, out) == (1, "")
    assert err == (f"billing: --rules: {rules}:3: rules[0].then[0].discount.percent: 150 is greater than the "
                   "maximum of 100\n")


def test_republishing_an_identical_catalog_keeps_its_version_in_the_cli_and_the_console(
        database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saas = str(ROOT / "catalogs/saas.yaml")
    assert run(capsys, "publish", saas, "--comment", "first") == (
        0, f"{saas}: published catalog acme-analytics version 1\n", "")
    reformatted = tmp_path / "saas.yaml"  # the same content, comments and layout aside
    reformatted.write_text("# republished\n" + SAAS.replace("currency: USD", "currency:   USD"))
    assert run(capsys, "publish", str(reformatted), "--comment", "again") == (
        0, f"{reformatted}: catalog acme-analytics unchanged (version 1)\n", "")
    with database.session() as s, pytest.raises(ConsoleError, match="nothing to publish: version 1 already has"):
        publish(s, {"name": "publisher", "role": "publisher"}, "catalog", SAAS, "again", accept_warnings=True,
                require_simulation=False, ops=console_operations(), clock=SystemClock())
    with database.session() as s:
        assert [v["version"] for v in sales.list_versions(s, "acme-analytics")] == [1]
