"""The multi-process shape as an operator runs it: `billing serve --no-workers`, a
`billing worker` and `billing scheduler` as separate processes on PostgreSQL + RabbitMQ. The
API's GET /metrics shows the event counters of the worker processes (they are not the API's
own), and `billing broker status` lists every queue, automation's included."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from events_support import cleanup_rabbit, fast_config, wait_until

from engine.system import build_system
from tests.conftest import create_pg_database, drop_pg_database
from tests.journeys.harness import TEST_POOL

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]
BILLING = str(Path(sys.executable).with_name("billing"))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def shape(pg_server: str, rabbit_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    # A database of its own: `billing migrate` on the session's database would meet the tables
    # other tests created without migrations.
    pg_url = create_pg_database(pg_server)
    prefix = f"test-{secrets.token_hex(4)}"
    env = {**os.environ, **TEST_POOL, "BILLING_DATABASE_URL": pg_url, "BILLING_BROKER_URL": rabbit_url,
           "BILLING_BROKER_PREFIX": prefix, "BILLING_PSP_URL": "", "BILLING_SMTP_URL": ""}
    run = {"env": env, "cwd": tmp_path, "capture_output": True, "text": True, "timeout": 120}
    assert subprocess.run([BILLING, "migrate"], **run).returncode == 0  # type: ignore[call-overload]
    key = subprocess.run([BILLING, "apikey", "create", "--scope", "admin"], **run)  # type: ignore[call-overload]
    port = _port()
    procs = [subprocess.Popen([BILLING, *argv], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
             for argv in (["serve", "--no-workers", "--port", str(port)], ["worker", "--subsystem", "all"],
                          ["scheduler"])]
    try:
        yield {"url": f"http://127.0.0.1:{port}", "key": key.stdout.strip().splitlines()[-1], "prefix": prefix,
               "cwd": str(tmp_path), **{k: v for k, v in env.items() if k.startswith("BILLING_")}}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        registry = build_system_registry(pg_url)
        cleanup_rabbit(rabbit_url, fast_config(prefix), registry)
        drop_pg_database(pg_server, pg_url)


def build_system_registry(pg_url: str):  # type: ignore[no-untyped-def]
    from engine.config import Settings

    system = build_system(Settings(database_url=pg_url), create_tables=False, automation=True)
    system.db.dispose()
    return system.registry


def counter(text: str, name: str, queue: str) -> int:
    found = re.search(rf'^billing_events_{name}_total{{queue="{re.escape(queue)}"}} (\d+)$', text, re.M)
    return int(found.group(1)) if found else 0


def test_metrics_show_the_worker_processes_counters(shape: dict[str, str]) -> None:
    client = httpx.Client(base_url=shape["url"], headers={"Authorization": f"Bearer {shape['key']}"}, timeout=10)

    def up() -> bool:
        try:
            return client.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, timeout=120, what="the API")  # a loaded 2-core machine starts slowly
    for i in range(3):
        r = client.post("/v1/customers", json={"id": f"cus_m{i}", "email": f"m{i}@x.io", "name": "M"})
        assert r.status_code == 201, r.text

    def consumed() -> bool:
        text = client.get("/metrics").text
        return counter(text, "applied", "access") >= 3 and counter(text, "published", "access") >= 3

    wait_until(consumed, timeout=60, what="the worker's counters in the API's /metrics")
    text = client.get("/metrics").text
    assert counter(text, "consumed", "automation") >= 3  # customer.created reaches automation's `#`

    env = {**os.environ, **{k: v for k, v in shape.items() if k.startswith("BILLING_")}}
    status = subprocess.run([BILLING, "broker", "status", "--json"], env=env, cwd=shape["cwd"],
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    queues = {q["subsystem"]: q for q in json.loads(status.stdout)["queues"]}
    assert queues["automation"]["queue"] == f"{shape['prefix']}.automation"
    assert queues["automation"]["consumers"] >= 1
