"""The product's client (engine.client) against a plain httpx loop to the same engine in the
same run: access checks one by one (typed answers, retry policy) and events in batches of
500 (ids made per event); and checks through AccessCache (held decisions: no call).

Target: the client's checks at >= 0.8 of the plain loop's rate (`ratio`); events alike
(`ratio_events`). `cache_ratio` says what the cache buys a product that asks again.

    .venv/bin/python benchmarks/client.py [--seconds 5] [--rounds 5] [--customers 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import sales  # noqa: E402
from engine.api import create_app, create_key  # noqa: E402
from engine.client import AccessCache, BillingClient, Event  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.system import build_system  # noqa: E402

START = "2026-11-01T09:00:00+00:00"


def rate(seconds: float, step: Callable[[int], int]) -> float:
    """Units per second of `step(i)` (which returns how many units it did) over `seconds`."""
    done, i, began = 0, 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        done += step(i)
        i += 1
    return done / (time.perf_counter() - began)


def serve(tmp: str, customers: int) -> tuple[uvicorn.Server, str, str]:
    settings = Settings(database_url=f"sqlite:///{tmp}/bench.db", test_clock=START, access_cache_ttl=3600)
    system = build_system(settings)
    now = datetime.fromisoformat(START)
    with system.db.session() as s:
        sales.publish_catalog(s, "catalogs/saas.yaml", "bench", clock=system.clock)
        _, key = create_key(s, "admin", now=now)
        for n in range(customers):
            sales.create_customer(s, {"id": f"cus_{n}", "email": f"c{n}@example.com", "name": "C"}, clock=system.clock)
            sales.create_subscription(s, f"cus_{n}", "pro", clock=system.clock)
    system.start_workers(threading.Event())
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(system.api_context()), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{port}", key


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0, help="per figure, over all rounds")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server, url, key = serve(tmp, args.customers)
        n = args.customers
        raw = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        client = BillingClient(url, key, timeout=30)
        cache = AccessCache(client.access, ttl=3600)
        when = START

        def raw_check(i: int) -> int:
            r = raw.post("/v1/access/check", json={"customer_id": f"cus_{i % n}", "feature": "api", "quantity": 1})
            r.raise_for_status()
            r.json()
            return 1

        def client_check(i: int) -> int:
            client.access.check(f"cus_{i % n}", "api")
            return 1

        def cached_check(i: int) -> int:
            cache.check(f"cus_{i % n}", "api")
            return 1

        def raw_events(i: int) -> int:
            body = [{"id": f"evt_{uuid.uuid4().hex}", "type": "api.request", "customer_id": f"cus_{(i + k) % n}",
                     "time": when, "properties": {}} for k in range(500)]
            raw.post("/v1/events", json=body).raise_for_status()
            return 500

        def client_events(i: int) -> int:
            at = datetime.fromisoformat(when).astimezone(UTC)
            client.events.send(Event("api.request", f"cus_{(i + k) % n}", time=at) for k in range(500))
            return 500

        for i in range(n):  # every customer's snapshot loaded, every decision held: the steady state
            cached_check(i)
        steps = {"checks_raw": raw_check, "checks_client": client_check, "checks_cache": cached_check,
                 "events_raw": raw_events, "events_client": client_events}
        runs: dict[str, list[float]] = {name: [] for name in steps}
        # Rounds alternating ours and the baseline, the median of each: a shared machine's
        # load moves within seconds, and would otherwise favour whichever ran in a calm moment.
        for _ in range(args.rounds):
            for name, step in steps.items():
                runs[name].append(rate(args.seconds / args.rounds, step))
        figures = {f"{name}_per_s": round(statistics.median(found), 1) for name, found in runs.items()}
        server.should_exit = True
    figures.update(
        ratio=round(figures["checks_client_per_s"] / figures["checks_raw_per_s"], 3),
        ratio_events=round(figures["events_client_per_s"] / figures["events_raw_per_s"], 3),
        cache_ratio=round(figures["checks_cache_per_s"] / figures["checks_raw_per_s"], 1),
        target=0.8,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
