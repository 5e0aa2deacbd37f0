"""Notifications rendered and delivered per second, to a local SMTP server and to the in-app
store, against a baseline in the same run.

Baseline: the same messages, rendered and built into MIME bytes beforehand, sent with
smtplib alone (`sendmail`) over one connection to the same aiosmtpd server (a separate
process, as a real server is).

Engine, as it runs in production: `notify()` records notifications (render + insert, 100
per transaction, as event handlers do) while a delivery worker (the scheduler's job) loops
`deliver_pending()` (claim, send over pooled SMTP connections, mark sent with a
`notification.sent` event). The rate counts until the last message is sent. Also printed:
record-everything-then-deliver, and the same pipeline into the in-app store.
Target (issue 8): the engine's email rate is at least 0.5 of the baseline's; `ratio` is the
median of per-round ratios (baseline and engine timed back to back in each round).

    .venv/bin/python benchmarks/notifications.py [--n 1000] [--rounds 5] [--db URL]

The last line printed is one JSON object with the figures, `ratio` and `target`.
"""

from __future__ import annotations

import argparse
import json
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.messaging import Channels, EmailChannel, InAppChannel, deliver_pending, notify
from engine.messaging.channels import Outgoing, SmtpSettings, build_email
from engine.messaging.samples import sample_data
from engine.messaging.templates import Renderer
from engine.store import Database

TARGET = 0.5
TEMPLATE = "payment_failed"


# The SMTP server runs in its own process, as a real one would: in this process it would
# compete with the code being measured for the GIL.
SERVER = """
import sys, threading
from aiosmtpd.controller import Controller

class Counter:
    count = 0
    lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
        return "250 OK"

handler = Counter()
controller = Controller(handler, hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
print(handler.count, flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Notifications are recorded and delivered at one fixed instant: nothing measured depends on
# the day the benchmark runs (deliver_pending sends what is due by `now`).
NOW = datetime(2026, 11, 1, 9, tzinfo=UTC)


def customer(i: int) -> dict[str, Any]:
    return {"id": f"cus_{i % 500}", "name": f"Customer {i}", "email": f"c{i}@example.com",
            "locale": "en" if i % 3 else "de", "timezone": "UTC"}


def baseline(n: int, port: int, renderer: Renderer, settings: SmtpSettings) -> float:
    """smtplib alone: pre-rendered messages over one connection. Returns messages/s."""
    now = NOW
    data = sample_data(TEMPLATE)
    messages = []
    for i in range(n):
        c = customer(i)
        rendered = renderer.render(TEMPLATE, "email", data, c["locale"], c)
        messages.append(build_email(Outgoing(f"ntf_base_{i}", c["id"], "email", TEMPLATE,
                                             "payments", c["email"], rendered, now, 1),
                                    settings))
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as conn:
        for msg in messages:
            conn.sendmail(msg.sender, [msg.recipient], msg.data)
    return n / (time.perf_counter() - started)


def record(db: Database, channel: str, n: int, tag: str, renderer: Renderer,
           per_tx: int = 100) -> None:
    now = NOW
    data = sample_data(TEMPLATE)
    for start in range(0, n, per_tx):
        with db.session() as s:
            for i in range(start, min(start + per_tx, n)):
                notify(s, customer=customer(i), template=TEMPLATE, channels=[channel],
                       data=data, event_id=f"evt_{tag}_{i}", rule_id="bench", now=now,
                       renderer=renderer)


def engine_sequential(db: Database, channels: Channels, channel: str, n: int, tag: str,
                      renderer: Renderer) -> float:
    """Record all n, then deliver them. Returns messages/s."""
    started = time.perf_counter()
    record(db, channel, n, tag, renderer, per_tx=500)
    report = deliver_pending(db, channels, now=NOW, limit=n)
    if report.sent != n:
        raise SystemExit(f"{tag}: sent {report.sent} of {n}: {report.errors[:3]}")
    return n / (time.perf_counter() - started)


def engine_pipelined(db: Database, channels: Channels, channel: str, n: int, tag: str,
                     renderer: Renderer) -> float:
    """As the engine runs: events record notifications while a delivery worker (the
    scheduler's job) keeps sending what is pending. Returns messages/s until all are sent."""
    sent = 0
    failure: list[BaseException] = []

    def worker() -> None:
        nonlocal sent
        try:
            deadline = time.monotonic() + 300
            while sent < n and time.monotonic() < deadline:
                report = deliver_pending(db, channels, now=NOW, limit=200)
                sent += report.sent
                if report.errors:
                    raise RuntimeError(report.errors[:3])
                if not report.attempted:
                    time.sleep(0.005)
        except BaseException as exc:
            failure.append(exc)

    started = time.perf_counter()
    thread = threading.Thread(target=worker)
    thread.start()
    record(db, channel, n, tag, renderer)
    thread.join()
    if failure or sent != n:
        raise SystemExit(f"{tag}: sent {sent} of {n}: {failure}")
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", default="", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdin is not None
    if server.stdout.readline().strip() != "ready":
        raise SystemExit("the SMTP server did not start")
    received = -1
    tmp = tempfile.TemporaryDirectory()
    db = Database(args.db or f"sqlite:///{Path(tmp.name) / 'bench.db'}")
    db.drop_all()
    db.migrate()
    url = f"smtp://127.0.0.1:{port}?from=billing@example.com"
    settings = SmtpSettings.from_url(url)
    renderer = Renderer()
    renderer.render(TEMPLATE, "email", sample_data(TEMPLATE), "en", customer(1))  # compile
    try:
        rates: dict[str, list[float]] = {k: [] for k in
                                         ("baseline", "email", "email_seq", "in_app")}
        ratios, seq_ratios = [], []
        for r in range(args.rounds):
            # Each round times the baseline and the engine back to back, so a machine whose
            # load changes during the run moves both; the ratio is the median of the rounds.
            rates["baseline"].append(baseline(args.n, port, renderer, settings))
            email = Channels([EmailChannel(settings)])
            rates["email"].append(engine_pipelined(db, email, "email", args.n, f"e{r}",
                                                   renderer))
            rates["email_seq"].append(engine_sequential(db, email, "email", args.n, f"s{r}",
                                                        renderer))
            email.close()
            ratios.append(rates["email"][-1] / rates["baseline"][-1])
            seq_ratios.append(rates["email_seq"][-1] / rates["baseline"][-1])
            in_app = Channels([InAppChannel()])
            rates["in_app"].append(engine_pipelined(db, in_app, "in_app", args.n, f"i{r}",
                                                    renderer))
            print(f"round {r + 1}: baseline smtplib {rates['baseline'][-1]:.0f}/s, engine "
                  f"email {rates['email'][-1]:.0f}/s (ratio {ratios[-1]:.2f}; record-then-"
                  f"deliver {rates['email_seq'][-1]:.0f}/s), in-app {rates['in_app'][-1]:.0f}/s")
        server.stdin.close()
        received = int(server.stdout.readline() or -1)
    finally:
        if server.poll() is None:
            server.stdin.close()
            server.wait(timeout=10)
        db.dispose()
        tmp.cleanup()
    expected = args.n * args.rounds * 3
    if received != expected:
        raise SystemExit(f"the SMTP server got {received} messages, expected {expected}")

    ratio = statistics.median(ratios)
    print(json.dumps({
        "benchmark": "notifications",
        "n": args.n,
        "rounds": args.rounds,
        "database": "postgresql" if args.db.startswith("postgres") else "sqlite",
        "baseline_smtplib_per_s": round(statistics.median(rates["baseline"]), 1),
        "engine_email_per_s": round(statistics.median(rates["email"]), 1),
        "engine_email_record_then_deliver_per_s": round(statistics.median(rates["email_seq"]),
                                                        1),
        "engine_in_app_per_s": round(statistics.median(rates["in_app"]), 1),
        "round_ratios": [round(x, 3) for x in ratios],
        "record_then_deliver_ratio": round(statistics.median(seq_ratios), 3),
        "ratio": round(ratio, 3),
        "target": TARGET,
        "ok": ratio >= TARGET,
    }))


if __name__ == "__main__":
    main()
