"""Careless input to the `billing` command gets an answer, not a traceback: exit 1 with one
message naming what is wrong (file, line, event, field, flag) and nothing else printed, or
exit 2 for a usage error (README, "Commands"). Issue 16, "Crashes instead of answers"."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import get_settings
from tests.cli.runner import run

ROOT = Path(__file__).resolve().parents[2]
BILLING = str(Path(sys.executable).with_name("billing"))




def _events(tmp_path: Path, *rows: dict[str, object]) -> Path:
    path = tmp_path / "usage.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# The shipped catalog's seats_held (latest) and cpu_cores (weighted_sum), priced per unit.
CATALOG = """\
catalog: hosting
currency: USD
metrics:
  seats_held: {event: seats.set, aggregation: latest, field: count, recurring: true}
  cpu_cores: {event: cores.changed, aggregation: weighted_sum, field: delta, recurring: true}
plans:
  metal:
    name: Metal
    interval: month
    prices:
      - {id: seats, model: per_unit, unit_amount: "10.00", metric: seats_held}
      - {id: cores, model: per_unit, unit_amount: "30.00", metric: cpu_cores}
"""


def _quote(capsys: pytest.CaptureFixture[str], events: Path, *extra: str) -> tuple[int, str, str]:
    catalog = events.with_name("hosting.yaml")
    catalog.write_text(CATALOG)
    return run(capsys, "quote", "--catalog", str(catalog), "--plan", "metal", "--events", str(events),
               "--period", "2026-11-01/2026-12-01", *extra)


def test_a_negative_latest_value_names_its_event_line_and_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = _events(
        tmp_path,
        {"id": "s1", "type": "seats.set", "time": "2026-11-02T00:00:00Z", "properties": {"count": 3}},
        {"id": "s2", "type": "seats.set", "time": "2026-11-05T00:00:00Z", "properties": {"count": -5}},
    )
    code, out, err = _quote(capsys, events)
    assert (code, out) == (1, "")
    assert err == (f"billing: --events {events}:2: event s2: properties.count: -5 is negative; "
                   "metric seats_held (latest) is a quantity, 0 or more\n")


def test_a_weighted_sum_going_below_zero_names_the_event_that_took_it_there(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = _events(
        tmp_path,
        {"id": "c1", "type": "cores.changed", "time": "2026-11-02T00:00:00Z", "properties": {"delta": 4}},
        {"id": "c2", "type": "cores.changed", "time": "2026-11-03T00:00:00Z", "properties": {"delta": -1}},
        {"id": "c3", "type": "cores.changed", "time": "2026-11-04T00:00:00Z", "properties": {"delta": -9}},
    )
    code, out, err = _quote(capsys, events)
    assert (code, out) == (1, "")
    assert err == (f"billing: --events {events}:3: event c3: properties.delta: -9 takes the running total of "
                   "metric cpu_cores (weighted_sum) to -6, below 0\n")


def test_a_weighted_sum_with_negative_deltas_that_stays_positive_is_priced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = _events(
        tmp_path,
        {"id": "c1", "type": "cores.changed", "time": "2026-11-01T00:00:00Z", "properties": {"delta": 4}},
        {"id": "c2", "type": "cores.changed", "time": "2026-11-16T00:00:00Z", "properties": {"delta": -2}},
    )
    code, out, err = _quote(capsys, events, "--json")
    assert code == 0, err
    cores = next(line for line in json.loads(out)["lines"] if line["price_id"] == "cores")
    assert (cores["quantity"], cores["amount"]) == ("3", "90.00")  # 4 cores for 15 days, 2 for 15


@pytest.fixture
def fresh_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """BILLING_DATABASE_URL at a SQLite file that nobody migrated, for in-process commands."""
    path = tmp_path / "never-migrated.db"
    monkeypatch.setenv("BILLING_DATABASE_URL", f"sqlite:///{path}")
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


@pytest.mark.parametrize("argv", [["broker", "status"], ["apikey", "list"], ["apikey", "revoke", "k_1"]])
def test_a_command_on_a_missing_database_says_to_migrate_and_creates_nothing(
        argv: list[str], fresh_database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (1, "")
    assert err == (f"billing: the database sqlite:///{fresh_database} does not exist: run `billing migrate` first "
                   "(with the same BILLING_DATABASE_URL)\n")
    assert not fresh_database.exists()


def test_broker_status_on_an_unmigrated_database_says_to_migrate(
        fresh_database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fresh_database.touch()  # an empty file: what a command that only connected leaves
    code, out, err = run(capsys, "broker", "status")
    assert (code, out) == (1, "")
    assert err == (f"billing: the database sqlite:///{fresh_database} is not migrated: run `billing migrate` first "
                   "(with the same BILLING_DATABASE_URL)\n")


def test_worker_with_an_unknown_subsystem_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "worker", "--subsystem", "nope")
    assert (code, out) == (2, "")
    assert "usage error: argument --subsystem: invalid choice: 'nope'" in err
    assert "Traceback" not in err


def test_serve_on_a_busy_port_says_so_first_and_exits_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "BILLING_DATABASE_URL": f"sqlite:///{tmp_path}/serve.db"}
        result = subprocess.run([BILLING, "serve", "--port", str(port)], capture_output=True, text=True,
                                timeout=60, env=env, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (f"billing: --port: cannot listen on 127.0.0.1:{port}: Address already in use; "
                             "stop what listens there or choose another port\n")
    assert not (tmp_path / "serve.db").exists()  # refused before anything was started or migrated
