"""End-to-end event throughput and latency against the client alone, in the same run.

    .venv/bin/python benchmarks/events.py [--events 20000] [--rounds 2] [--latency-rate 300]

End to end: outbox rows committed on PostgreSQL -> relay (run_relay, its own
process) -> RabbitMQ -> worker (run_worker, its own process) whose handler writes an
effect row and commits with the processed-record. Baseline: the same message bodies
published with aio-pika alone (durable queue, persistent messages, confirms, 500 in
flight) and consumed with manual acks (one `multiple` ack per 100 messages) in another
process; no outbox, no database.

Two phases each: throughput (all N events at once; the best of --rounds alternating
rounds of each side) and latency (events paced at --latency-rate per second, one commit
per event, so queueing does not dominate).
The last line printed is one JSON object with the figures, `ratio` and `target`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aio_pika  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column  # noqa: E402

from engine.events import BusConfig, Envelope, HandlerRegistry, Outcome  # noqa: E402

TARGET = {"events_per_s": 2000, "ratio": 0.25}
PG_ADMIN = os.environ.get("BILLING_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
RABBIT = os.environ.get("BILLING_TEST_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/")
IN_FLIGHT = 500


class BenchBase(DeclarativeBase):
    pass


class BenchEffect(BenchBase):
    """What the benchmark's handler writes: one row per applied event."""

    __tablename__ = "bench_event_effects"
    pk: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(64))
    customer_id: Mapped[str] = mapped_column(sa.String(64))
    amount: Mapped[int]


def bench_registry() -> HandlerRegistry:
    reg = HandlerRegistry()

    def on_usage(session: Session, env: Envelope) -> None:
        session.add(
            BenchEffect(
                event_id=env.id,
                customer_id=env.customer_id or "",
                amount=int(env.properties.get("amount", 0)),
            )
        )

    reg.register("sales", "bench.#", on_usage)
    return reg


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def body_for(i: int) -> bytes:
    env = {
        "id": f"evt_bench_{i:08d}_{secrets.token_hex(4)}",
        "type": "bench.usage",
        "customer_id": f"cus_{i % 50}",
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "properties": {"amount": i % 100},
    }
    return json.dumps(env, separators=(",", ":")).encode()


def event_time(body: bytes) -> float:
    return datetime.fromisoformat(json.loads(body)["time"].replace("Z", "+00:00")).timestamp()


def write_atomic(path: str, data: dict[str, Any]) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.rename(path)


# -- subprocess roles -----------------------------------------------------------------------


def role_baseline_consumer(args: argparse.Namespace) -> None:
    async def go() -> None:
        conn = await aio_pika.connect(args.rabbit)
        latencies: list[float] = []
        done = asyncio.Event()
        async with conn:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=1000)
            q = await ch.declare_queue(args.queue, durable=True)

            async def on_message(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
                json.loads(msg.body)  # a consumer decodes what it gets
                latencies.append(time.time() - event_time(msg.body))
                # Acks in batches (one `multiple` ack per 100), as the worker does: the
                # baseline gets the client's fast path too.
                if len(latencies) % 100 == 0 or len(latencies) >= args.expect:
                    await msg.ack(multiple=True)
                if len(latencies) >= args.expect:
                    done.set()

            await q.consume(on_message, no_ack=False)
            Path(args.out + ".ready").write_text("1")
            await done.wait()
        write_atomic(args.out, {"t_last": time.time(), "latencies": latencies})

    asyncio.run(go())


def role_worker(args: argparse.Namespace) -> None:
    from engine.config import Settings
    from engine.events import run_worker
    from engine.store import Database

    db = Database(args.db)
    latencies: list[float] = []
    stop = threading.Event()

    def after_commit(_subsystem: str, outcomes: list[Outcome]) -> None:
        now = time.time()
        latencies.extend(now - o.envelope.time.timestamp() for o in outcomes if o.status == "applied")
        if len(latencies) >= args.expect:
            write_atomic(args.out, {"t_last": now, "latencies": latencies})
            stop.set()

    Path(args.out + ".ready").write_text("1")
    run_worker(
        "sales",
        bench_registry(),
        Settings(database_url=args.db, broker_url=args.rabbit),
        stop,
        db=db,
        config=BusConfig(prefix=args.prefix),
        after_commit=after_commit,
        with_relay=False,  # the relay runs in its own process here
    )


def role_relay(args: argparse.Namespace) -> None:
    import signal

    from engine.config import Settings
    from engine.events import install_signal_handlers, run_relay
    from engine.store import Database

    stop = threading.Event()
    install_signal_handlers(stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_relay(
        Settings(database_url=args.db, broker_url=args.rabbit),
        stop,
        db=Database(args.db),
        config=BusConfig(prefix=args.prefix),
        handlers=bench_registry(),
    )


# -- the coordinator --------------------------------------------------------------------------


def spawn(role: str, out: Path, **kw: Any) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, __file__, "--role", role, "--out", str(out)]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    return subprocess.Popen(cmd, cwd=ROOT)


def wait_file(path: Path, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.stat().st_size > 0:
            result: dict[str, Any] = json.loads(path.read_text())
            return result
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        time.sleep(0.01)
    raise TimeoutError(f"no result in {path} after {timeout}s")


def wait_ready(path: Path) -> None:
    end = time.monotonic() + 30
    while not Path(str(path) + ".ready").exists():
        if time.monotonic() > end:
            raise TimeoutError(f"{path}: consumer never became ready")
        time.sleep(0.02)
    time.sleep(0.3)  # the consumer subscribes right after


async def publish_bodies(url: str, queue: str, bodies: list[bytes] | None, rate: float, count: int) -> float:
    """Publish with confirms, IN_FLIGHT at once; or paced at `rate`/s. Returns the start."""
    conn = await aio_pika.connect(url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue(queue, durable=True)
        ex = ch.default_exchange
        sem = asyncio.Semaphore(IN_FLIGHT)

        async def one(body: bytes) -> None:
            try:
                await ex.publish(
                    aio_pika.Message(
                        body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, content_type="application/json"
                    ),
                    routing_key=queue,
                )
            finally:
                sem.release()

        tasks = []
        t0 = time.time()
        for i in range(count):
            if rate:
                delay = t0 + i / rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await sem.acquire()
            tasks.append(asyncio.create_task(one(bodies[i] if bodies else body_for(i))))
        await asyncio.gather(*tasks)
        return t0


def baseline(args: argparse.Namespace, work: Path, count: int, rate: float, tag: str) -> dict[str, Any]:
    queue = f"{args.prefix}.baseline.{tag}"
    out = work / f"baseline-{tag}.json"
    proc = spawn("baseline-consumer", out, rabbit=args.rabbit, queue=queue, expect=count)
    wait_ready(out)
    bodies = [body_for(i) for i in range(count)] if not rate else None
    t0 = asyncio.run(publish_bodies(args.rabbit, queue, bodies, rate, count))
    result = wait_file(out, 300, proc)
    proc.wait(timeout=30)

    async def drop() -> None:
        conn = await aio_pika.connect(args.rabbit)
        async with conn:
            await (await conn.channel()).queue_delete(queue)

    asyncio.run(drop())
    return {"seconds": result["t_last"] - t0, "latencies": result["latencies"]}


def end_to_end(args: argparse.Namespace, work: Path, db_url: str, count: int, rate: float, tag: str) -> dict[str, Any]:
    from engine.store import Database, add_event

    db = Database(db_url)
    out = work / f"e2e-{tag}.json"
    worker = spawn("worker", out, rabbit=args.rabbit, db=db_url, prefix=args.prefix, expect=count)
    wait_ready(out)
    time.sleep(0.5)
    t0 = time.time()
    if rate:  # one business transaction per event, paced
        for i in range(count):
            delay = t0 + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
            with db.session() as s:
                add_event(s, "bench.usage", f"cus_{i % 50}", {"amount": i % 100}, time=datetime.now(UTC))
    else:
        # A burst: the same rows add_event writes, inserted in bulk (1,000 per transaction)
        # so the producer stays ahead of the bus without taking its CPU.
        from engine.store import OutboxEvent, new_event_id

        for start in range(0, count, 1000):
            now = datetime.now(UTC)
            rows = [
                {
                    "id": new_event_id(),
                    "type": "bench.usage",
                    "customer_id": f"cus_{i % 50}",
                    "time": now,
                    "properties": {"amount": i % 100},
                    "attempts": 0,
                }
                for i in range(start, min(count, start + 1000))
            ]
            with db.session() as s:
                s.execute(sa.insert(OutboxEvent), rows)
    result = wait_file(out, 600, worker)
    worker.wait(timeout=30)
    with db.session() as s:
        applied = s.scalar(sa.select(sa.func.count()).select_from(BenchEffect))
        s.execute(sa.delete(BenchEffect))
    db.dispose()
    return {"seconds": result["t_last"] - t0, "latencies": result["latencies"], "applied": applied}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-events", type=int, default=1500)
    parser.add_argument("--latency-rate", type=float, default=300.0)
    parser.add_argument("--rabbit", default=RABBIT)
    parser.add_argument("--pg-admin", default=PG_ADMIN)
    # subprocess roles
    parser.add_argument("--role", default="")
    parser.add_argument("--out", default="")
    parser.add_argument("--queue", default="")
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--db", default="")
    parser.add_argument("--prefix", default="")
    args = parser.parse_args()
    if args.role:
        {"baseline-consumer": role_baseline_consumer, "worker": role_worker, "relay": role_relay}[args.role](args)
        return

    import tempfile

    from engine.events import delete_topology
    from engine.store import Database

    args.prefix = f"bench-{secrets.token_hex(3)}"
    name = f"billing_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(args.pg_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    db_url = args.pg_admin.rsplit("/", 1)[0] + f"/{name}"
    db = Database(db_url)
    db.migrate()
    BenchBase.metadata.create_all(db.engine)
    db.dispose()
    relay: subprocess.Popen[bytes] | None = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            relay = spawn("relay", work / "relay", rabbit=args.rabbit, db=db_url, prefix=args.prefix)
            print(f"events={args.events} in-flight={IN_FLIGHT} prefix={args.prefix}", flush=True)
            # Rounds alternate baseline and end to end; the best of each is reported, so a
            # burst of load from elsewhere on a shared machine does not decide the ratio.
            base_rates, e2e_rates = [], []
            for r in range(args.rounds):
                base = baseline(args, work, args.events, 0, f"tp{r}")
                base_rates.append(args.events / base["seconds"])
                print(f"round {r + 1}: baseline   {base_rates[-1]:8.0f} events/s", flush=True)
                e2e = end_to_end(args, work, db_url, args.events, 0, f"tp{r}")
                e2e_rates.append(args.events / e2e["seconds"])
                print(
                    f"round {r + 1}: end-to-end {e2e_rates[-1]:8.0f} events/s, {e2e['applied']} effects committed",
                    flush=True,
                )
                if e2e["applied"] != args.events:
                    raise SystemExit(f"{e2e['applied']} effects for {args.events} events")
            base_rate, e2e_rate = max(base_rates), max(e2e_rates)
            base_lat = baseline(args, work, args.latency_events, args.latency_rate, "lat")
            e2e_lat = end_to_end(args, work, db_url, args.latency_events, args.latency_rate, "lat")
            ms = {}
            for label, run in (("baseline", base_lat), ("e2e", e2e_lat)):
                for p in (50, 99):
                    ms[f"{label}_p{p}"] = round(percentile(run["latencies"], p) * 1000, 2)
            ms["added_p50"] = round(ms["e2e_p50"] - ms["baseline_p50"], 2)
            ms["added_p99"] = round(ms["e2e_p99"] - ms["baseline_p99"], 2)
            print(f"latency at {args.latency_rate:.0f}/s (ms): {ms}", flush=True)
    finally:
        if relay is not None:
            relay.terminate()
            relay.wait(timeout=30)
        asyncio.run(delete_topology(args.rabbit, BusConfig(prefix=args.prefix), bench_registry()))
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    ratio = e2e_rate / base_rate
    result = {
        "benchmark": "events",
        "events": args.events,
        "baseline_events_per_s": round(base_rate, 1),
        "e2e_events_per_s": round(e2e_rate, 1),
        "ratio": round(ratio, 3),
        "rounds": {
            "baseline_events_per_s": [round(x, 1) for x in base_rates],
            "e2e_events_per_s": [round(x, 1) for x in e2e_rates],
        },
        "latency_rate_per_s": args.latency_rate,
        "latency_ms": ms,
        "latency_mean_ms": {
            "baseline": round(statistics.fmean(base_lat["latencies"]) * 1000, 2),
            "e2e": round(statistics.fmean(e2e_lat["latencies"]) * 1000, 2),
        },
        "target": TARGET,
        "meets_target": e2e_rate >= TARGET["events_per_s"] and ratio >= TARGET["ratio"],
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
