"""The operational commands as an operator runs them: the entry point
with their own environment and directory, real exit codes (tests/cli/runner.invoke)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.runner import invoke

ROOT = Path(__file__).resolve().parents[2]
BILLING = str(Path(sys.executable).with_name("billing"))


def billing(*argv: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BILLING_DATABASE_URL": f"sqlite:///{cwd}/ops.db",
        "BILLING_CATALOGS_DIR": str(ROOT / "catalogs"),
        "BILLING_RULES_DIR": str(ROOT / "rules"),
    }
    return invoke(*argv, cwd=cwd, env=env, stdin=stdin)


def test_apikey_create_prints_the_key_on_the_last_line_and_list_hides_it(tmp_path: Path) -> None:
    created = billing("apikey", "create", "--scope", "product", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("bk_")
    listed = billing("apikey", "list", cwd=tmp_path)
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["scope"] for r in rows] == ["product"]
    assert key not in listed.stdout
    revoked = billing("apikey", "revoke", rows[0]["id"], cwd=tmp_path)
    assert revoked.returncode == 0
    again = billing("apikey", "revoke", rows[0]["id"], cwd=tmp_path)
    assert again.returncode == 1 and "no active key" in again.stderr


def test_publish_is_all_or_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text((ROOT / "catalogs/content.yaml").read_text().replace('amount: "29.99"', "amount: 29.99"))
    result = billing("publish", str(ROOT / "catalogs/saas.yaml"), str(broken), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{broken}:" in result.stderr and "is a float" in result.stderr
    ok = billing(
        "publish",
        str(ROOT / "catalogs/saas.yaml"),
        str(ROOT / "rules/promotions.yaml"),
        "--comment",
        "first",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert "published catalog acme-analytics version 1" in ok.stdout
    assert "published ruleset promotions version 1" in ok.stdout


def test_lint_finds_a_rule_that_can_never_hold(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("""ruleset: odd
rules:
  - id: never
    on: invoice.payment_failed
    when: {all: [{invoice.attempt: {gt: 5}}, {invoice.attempt: {lt: 3}}]}
    then: [{set_dunning_state: {state: warning}}]
""")
    result = billing("lint", str(rules), str(ROOT / "catalogs"), "--templates", str(ROOT / "templates"), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{rules}:" in result.stderr and "never" in result.stderr


def test_template_preview_and_unknown_template(tmp_path: Path) -> None:
    ok = billing("template", "preview", "upgrade_offer", "--channel", "in_app", cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert "--- title" in ok.stdout
    bad = billing("template", "preview", "nope", cwd=ROOT)
    assert bad.returncode == 1 and bad.stdout == ""


def test_simulate_a_price_rise(tmp_path: Path) -> None:
    draft = tmp_path / "draft.yaml"
    draft.write_text((ROOT / "catalogs/saas.yaml").read_text().replace('amount: "49.00"', 'amount: "59.00"'))
    result = billing(
        "simulate",
        "--baseline",
        str(ROOT / "catalogs/saas.yaml"),
        "--draft",
        str(draft),
        "--customers",
        "50",
        "--months",
        "2",
        "--start",
        "2026-11-01",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    totals = json.loads(result.stdout)["totals"]
    assert float(totals["delta"]) > 0
    zero = billing(
        "simulate",
        "--baseline",
        str(ROOT / "catalogs/saas.yaml"),
        "--draft",
        str(draft),
        "--customers",
        "0",
        cwd=tmp_path,
    )
    assert zero.returncode == 1 and "--customers" in zero.stderr


@pytest.mark.parametrize("argv", [["quote"], ["apikey"], ["clock"], ["nonsense"]])
def test_usage_errors_exit_2(tmp_path: Path, argv: list[str]) -> None:
    assert billing(*argv, cwd=tmp_path).returncode == 2
