"""Notifications rendered and delivered per second, to a local SMTP server and to the in-app
store, against a baseline in the same run.

Baseline: the same messages, rendered and built into MIME bytes beforehand, sent with
smtplib alone (`sendmail`) over one connection to the same aiosmtpd server (a separate process). Engine: `notify()` (render + record, 500 per
transaction) then `deliver_pending()` (claim, send over one kept-open connection, mark sent
with a `notification.sent` event, one transaction per message). Target (issue 8): the
engine's email rate is at least 0.5 of the baseline's.

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
PHASES: dict[str, list[tuple[float, float]]] = {}  # channel -> (notify ms, deliver ms) per msg
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


def customer(i: int) -> dict[str, Any]:
    return {"id": f"cus_{i % 500}", "name": f"Customer {i}", "email": f"c{i}@example.com",
            "locale": "en" if i % 3 else "de", "timezone": "UTC"}


def baseline(n: int, port: int, renderer: Renderer, settings: SmtpSettings) -> float:
    """smtplib alone: pre-rendered messages over one connection. Returns messages/s."""
    now = datetime.now(UTC)
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


def engine_run(db: Database, channels: Channels, channel: str, n: int, tag: str,
               renderer: Renderer) -> tuple[float, int]:
    """notify + deliver_pending for n messages. Returns (messages/s, sent)."""
    now = datetime.now(UTC)
    data = sample_data(TEMPLATE)
    started = time.perf_counter()
    for start in range(0, n, 500):
        with db.session() as s:
            for i in range(start, min(start + 500, n)):
                notify(s, customer=customer(i), template=TEMPLATE, channels=[channel],
                       data=data, event_id=f"evt_{tag}_{i}", rule_id="bench", now=now,
                       renderer=renderer)
    recorded = time.perf_counter()
    report = deliver_pending(db, channels, now=now, limit=n)
    elapsed = time.perf_counter() - started
    PHASES.setdefault(channel, []).append(
        (1000 * (recorded - started) / n, 1000 * (time.perf_counter() - recorded) / n))
    if report.sent != n:
        raise SystemExit(f"{tag}: sent {report.sent} of {n}: {report.errors[:3]}")
    return n / elapsed, report.sent


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
    db.create_all()
    url = f"smtp://127.0.0.1:{port}?from=billing@example.com"
    settings = SmtpSettings.from_url(url)
    renderer = Renderer()
    renderer.render(TEMPLATE, "email", sample_data(TEMPLATE), "en", customer(1))  # compile
    try:
        base_rates, email_rates, in_app_rates, ratios = [], [], [], []
        for r in range(args.rounds):
            # Each round times the baseline and the engine back to back, so a machine whose
            # load changes during the run moves both; the ratio is the median of the rounds.
            base_rates.append(baseline(args.n, port, renderer, settings))
            email = Channels([EmailChannel(settings)])
            email_rates.append(engine_run(db, email, "email", args.n, f"e{r}", renderer)[0])
            email.close()
            ratios.append(email_rates[-1] / base_rates[-1])
            in_app = Channels([InAppChannel()])
            in_app_rates.append(engine_run(db, in_app, "in_app", args.n, f"i{r}", renderer)[0])
            print(f"round {r + 1}: baseline smtplib {base_rates[-1]:.0f}/s, engine email "
                  f"{email_rates[-1]:.0f}/s (ratio {ratios[-1]:.2f}), engine in-app "
                  f"{in_app_rates[-1]:.0f}/s")
        server.stdin.close()
        received = int(server.stdout.readline() or -1)
    finally:
        if server.poll() is None:
            server.stdin.close()
            server.wait(timeout=10)
        db.dispose()
        tmp.cleanup()
    expected = args.n * args.rounds * 2
    if received != expected:
        raise SystemExit(f"the SMTP server got {received} messages, expected {expected}")

    ratio = statistics.median(ratios)
    print(json.dumps({
        "benchmark": "notifications",
        "n": args.n,
        "rounds": args.rounds,
        "database": "postgresql" if args.db.startswith("postgres") else "sqlite",
        "baseline_smtplib_per_s": round(statistics.median(base_rates), 1),
        "engine_email_per_s": round(statistics.median(email_rates), 1),
        "engine_in_app_per_s": round(statistics.median(in_app_rates), 1),
        "round_ratios": [round(x, 3) for x in ratios],
        "ms_per_message": {ch: {"notify": round(statistics.median(p[0] for p in v), 3),
                                "deliver": round(statistics.median(p[1] for p in v), 3)}
                           for ch, v in PHASES.items()},
        "ratio": round(ratio, 3),
        "target": TARGET,
        "ok": ratio >= TARGET,
    }))


if __name__ == "__main__":
    main()
