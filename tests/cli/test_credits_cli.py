"""`billing credits` as an operator runs it: grant with a reason, the ledger, a void; bad input
names the field, exits 1 and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

from engine import sales
from engine.clock import SystemClock
from engine.store import Database
from tests.cli.test_operations_cli import billing


def _customer(tmp_path: Path) -> str:
    assert billing("migrate", cwd=tmp_path).returncode == 0
    db = Database(f"sqlite:///{tmp_path}/ops.db")
    with db.session() as s:
        sales.create_customer(s, {"id": "cus_cli", "email": "cli@example.com", "name": "CLI", "currency": "EUR"},
                              clock=SystemClock())
    db.dispose()
    return "cus_cli"


def test_grant_ledger_and_void(tmp_path: Path) -> None:
    cid = _customer(tmp_path)
    done = billing("credits", "grant", cid, "--amount", "12.50", "--reason", "outage apology", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    granted = json.loads(done.stdout)
    assert (granted["unit"], granted["amount"], granted["remaining"], granted["reason"]) == (
        "EUR", "12.50", "12.50", "outage apology")
    assert granted["created_by"].startswith("cli:")
    voided = billing("credits", "void", granted["id"], "--reason", "granted twice", cwd=tmp_path)
    assert voided.returncode == 0, voided.stderr
    assert json.loads(voided.stdout)["status"] == "void"
    listed = billing("credits", "ledger", cid, cwd=tmp_path)
    assert [(e["kind"], e["amount"]) for e in map(json.loads, listed.stdout.splitlines())] == [
        ("grant", "12.50"), ("void", "-12.50")]


def test_bad_input_names_the_field_and_writes_nothing(tmp_path: Path) -> None:
    cid = _customer(tmp_path)
    zero = billing("credits", "grant", cid, "--amount", "0", "--reason", "x", cwd=tmp_path)
    assert zero.returncode == 1 and "amount" in zero.stderr and zero.stdout == ""
    nobody = billing("credits", "grant", "cus_nobody", "--amount", "5", "--reason", "x", cwd=tmp_path)
    assert nobody.returncode == 1 and "customer_id" in nobody.stderr
    unknown = billing("credits", "void", "grt_nope", "--reason", "x", cwd=tmp_path)
    assert unknown.returncode == 1 and "grant_id" in unknown.stderr
    assert billing("credits", "ledger", cid, cwd=tmp_path).stdout == ""


def test_budget_set_show_delete(tmp_path: Path) -> None:
    cid = _customer(tmp_path)  # EUR, no subscription: the budget is in the customer's currency
    done = billing("credits", "budget", "set", cid, "--amount", "200.00", "--alerts", "50,80,100", "--hard-stop",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["amount"], out["currency"], out["alerts"], out["hard_stop"]) == ("200.00", "EUR", [50, 80, 100], True)
    shown = json.loads(billing("credits", "budget", "show", cid, cwd=tmp_path).stdout)
    assert shown["amount"] == "200.00" and shown["spent"] is None  # no billing period yet
    bad = billing("credits", "budget", "set", cid, "--amount", "100", "--alerts", "50,50", cwd=tmp_path)
    assert bad.returncode == 1 and "alerts[1]" in bad.stderr and bad.stdout == ""
    assert json.loads(billing("credits", "budget", "show", cid, cwd=tmp_path).stdout)["alerts"] == [50, 80, 100]
    assert json.loads(billing("credits", "budget", "delete", cid, cwd=tmp_path).stdout) == {"deleted": True}
    assert billing("credits", "budget", "show", cid, cwd=tmp_path).stdout.strip() == "null"
