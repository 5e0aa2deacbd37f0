"""`billing webhooks` as an operator runs it: register an endpoint and get
its secret once, list, disable, rotate, read the delivery log, replay; bad input exits 1
naming the field and writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from engine import webhooks
from engine.events import Envelope
from engine.store import Database, mark_processed
from tests.cli.runner import invoke

BILLING = str(Path(sys.executable).with_name("billing"))


def billing(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "BILLING_DATABASE_URL": f"sqlite:///{cwd}/hooks.db", **env}
    return invoke(*argv, cwd=cwd, env=full)


LOCAL = {"BILLING_WEBHOOKS_ALLOW_HTTP": "true", "BILLING_WEBHOOKS_ALLOW_PRIVATE": "true"}


def test_register_list_rotate_and_replay(tmp_path: Path) -> None:
    assert billing("migrate", cwd=tmp_path).returncode == 0
    added = billing("webhooks", "add", "http://127.0.0.1:9/hooks", "--events", "invoice.*", "customer.created",
                    "--description", "product", cwd=tmp_path, **LOCAL)
    assert added.returncode == 0, added.stderr
    secret = added.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    listed = billing("webhooks", "list", cwd=tmp_path)
    [line] = listed.stdout.splitlines()
    endpoint_id = line.split()[0]
    assert "enabled" in line and "invoice.*,customer.created" in line and secret not in listed.stdout
    rotated = billing("webhooks", "rotate", endpoint_id, cwd=tmp_path)
    assert rotated.returncode == 0 and rotated.stdout.strip().splitlines()[-1] not in (secret, "")
    # An event reaches the endpoint's log (the consumer's work, done here directly).
    db = Database(f"sqlite:///{tmp_path}/hooks.db")
    with db.session() as s:
        mark_processed(s, webhooks.CONSUMER, "evt_cli_1", datetime(2026, 11, 1, tzinfo=UTC))
        webhooks.fan_out(s, Envelope(id="evt_cli_1", type="invoice.paid", customer_id="cus_1",
                                     time=datetime(2026, 11, 1, tzinfo=UTC), properties={}))
    db.dispose()
    log = billing("webhooks", "deliveries", endpoint_id, cwd=tmp_path)
    [row] = log.stdout.splitlines()
    assert "pending" in row and "evt_cli_1" in row
    replayed = billing("webhooks", "replay", row.split()[0], cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    ranged = billing("webhooks", "replay-range", endpoint_id, "--from", "2026-11-01T00:00:00Z",
                     "--to", "2026-11-02T00:00:00Z", cwd=tmp_path)
    assert ranged.returncode == 0 and "replaying 1 deliveries" in ranged.stdout
    assert len(billing("webhooks", "deliveries", endpoint_id, cwd=tmp_path).stdout.splitlines()) == 3
    assert billing("webhooks", "disable", endpoint_id, cwd=tmp_path).returncode == 0
    assert "disabled" in billing("webhooks", "list", cwd=tmp_path).stdout


def test_bad_input_exits_1_naming_the_field(tmp_path: Path) -> None:
    assert billing("migrate", cwd=tmp_path).returncode == 0
    cases = [
        (("webhooks", "add", "http://127.0.0.1:9/h", "--events", "*"), "url"),  # http: not allowed here
        (("webhooks", "add", "https://example.com/h", "--events", "invoice.payed"), "event_types[0]"),
        (("webhooks", "replay", "wd_nothing"), "delivery_id"),
        (("webhooks", "deliveries", "we_nothing"), "endpoint_id"),
    ]
    for argv, field in cases:
        done = billing(*argv, cwd=tmp_path)
        assert done.returncode == 1 and field in done.stderr, (argv, done.stderr)
    assert billing("webhooks", "list", cwd=tmp_path).stdout == ""
