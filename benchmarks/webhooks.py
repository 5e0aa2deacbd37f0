"""Product webhooks: deliveries per second to a local receiver against a plain httpx POST loop
in the same run, and what registered endpoints add to publishing events.

Receiver: a separate process (tests/webhooks/receiver.py's server, HTTP/1.1 keep-alive)
answering 200.

1. Delivery rate. Baseline: the same bodies POSTed one after another with one httpx.Client,
   unsigned, nothing recorded. Engine: the pending deliveries the webhooks consumer wrote
   (one per event, events of 20 customers) sent by `Sender.drain()`: claimed in batches,
   signed (Standard Webhooks, HMAC-SHA256), posted in order per customer, and each answer
   recorded (status, code, latency). Target (issue 19): ratio >= 0.5.
2. Publishing cost. Engine events written to the outbox (100 per transaction) and dispatched
   by the in-process bus to every consumer, with 3 endpoints registered (each matching) vs
   none: `publish_overhead` is the extra time of the whole path (the outbox write itself does
   not change: the fan-out happens in the webhooks consumer, printed as `write_overhead`).
   Target: under 10 %.

    .venv/bin/python benchmarks/webhooks.py [--n 2000] [--events 2000] [--rounds 3]

The last line printed is one JSON object with the figures, `ratio` and `target`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import webhooks  # noqa: E402
from engine.clock import TestClock  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.events import Envelope  # noqa: E402
from engine.store import Database, add_events, mark_processed  # noqa: E402
from engine.system import build_system  # noqa: E402

TARGET = 0.5
PUBLISH_TARGET = 0.10
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
POLICY = webhooks.UrlPolicy(allow_http=True, allow_private=True)
SERVER = """
import sys, time
from tests.webhooks.receiver import Receiver
r = Receiver()
print(r.url, flush=True)
sys.stdin.read()
"""


def _envelope(i: int, round_: int) -> Envelope:
    return Envelope(id=f"evt_b{round_}_{i}", type="invoice.paid", customer_id=f"cus_{i % 20}", time=T0,
                    properties={"invoice_id": f"inv_{i}", "amount": "119.00", "currency": "EUR"})


def baseline(url: str, bodies: list[str]) -> float:
    with httpx.Client(timeout=10) as client:
        started = time.perf_counter()
        for body in bodies:
            r = client.post(url, content=body.encode(), headers={"content-type": "application/json"})
            r.raise_for_status()
        return len(bodies) / (time.perf_counter() - started)


def engine_rate(url: str, n: int, round_: int, folder: Path) -> float:
    db = Database(f"sqlite:///{folder}/deliver{round_}.db")
    db.migrate()
    with db.session() as s:
        webhooks.create_endpoint(s, url, ["invoice.*"], now=T0, policy=POLICY)
    with db.session() as s:
        for i in range(n):
            env = _envelope(i, round_)
            mark_processed(s, webhooks.CONSUMER, env.id, T0)  # as the bus does around the consumer
            webhooks.fan_out(s, env)
    sender = webhooks.Sender(db, TestClock(T0), POLICY)
    started = time.perf_counter()
    report = sender.drain()
    elapsed = time.perf_counter() - started
    sender.close()
    db.dispose()
    if report.delivered != n:
        raise SystemExit(f"delivered {report.delivered} of {n}")
    return n / elapsed


def publish_time(events: int, endpoints: int, round_: int, folder: Path) -> tuple[float, float]:
    """(seconds to write the events to the outbox, seconds to write and dispatch them)."""
    # What `billing serve` dispatches to: automation's rules too (no payment provider).
    # On a test clock at T0, as the events are: the rules' answers do not depend on today's date.
    system = build_system(Settings(database_url=f"sqlite:///{folder}/publish{round_}_{endpoints}.db",
                                   test_clock=T0.isoformat()), automation=True, payments=None)
    with system.db.session() as s:
        for k in range(endpoints):
            webhooks.create_endpoint(s, f"http://127.0.0.1:9/{k}", ["invoice.*", "payment.*"], now=T0, policy=POLICY)
    rows = [("invoice.paid", f"cus_{i % 20}", {"invoice_id": f"inv_{i}", "amount": "119.00"}, T0)
            for i in range(events)]
    started = time.perf_counter()
    write = 0.0
    for at in range(0, events, 100):
        w = time.perf_counter()
        with system.db.session() as s:
            add_events(s, rows[at:at + 100])
        write += time.perf_counter() - w
        system.drain()
    total = time.perf_counter() - started
    system.close()
    return write, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    tmp = tempfile.TemporaryDirectory()
    folder = Path(tmp.name)
    rates: dict[str, list[float]] = {"baseline": [], "engine": []}
    ratios: list[float] = []
    write_over: list[float] = []
    publish_over: list[float] = []
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        bodies = [webhooks.payload(_envelope(i, -1)) for i in range(args.n)]
        baseline(url, bodies[:200])  # warm up both sides
        for r in range(args.rounds):
            base = baseline(url, bodies)
            ours = engine_rate(url, args.n, r, folder)
            rates["baseline"].append(base)
            rates["engine"].append(ours)
            ratios.append(ours / base)
            w0, t0 = publish_time(args.events, 0, r, folder)
            w3, t3 = publish_time(args.events, 3, r, folder)
            write_over.append(w3 / w0 - 1)
            publish_over.append(t3 / t0 - 1)
            print(f"round {r}: baseline {base:.0f}/s engine {ours:.0f}/s ratio {ours / base:.3f}; "
                  f"publish none {args.events / t0:.0f}/s, 3 endpoints {args.events / t3:.0f}/s "
                  f"(+{t3 / t0 - 1:.1%}), outbox write +{w3 / w0 - 1:.1%}", file=sys.stderr)
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)
        tmp.cleanup()
    ratio = statistics.median(ratios)
    overhead = statistics.median(publish_over)
    out: dict[str, Any] = {
        "benchmark": "webhooks",
        "n": args.n,
        "events": args.events,
        "rounds": args.rounds,
        "baseline_httpx_per_s": round(statistics.median(rates["baseline"]), 1),
        "engine_deliveries_per_s": round(statistics.median(rates["engine"]), 1),
        "round_ratios": [round(x, 3) for x in ratios],
        "publish_overhead": round(overhead, 4),
        "write_overhead": round(statistics.median(write_over), 4),
        "publish_target": PUBLISH_TARGET,
        "ratio": round(ratio, 3),
        "target": TARGET,
        "ok": ratio >= TARGET and overhead < PUBLISH_TARGET,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
