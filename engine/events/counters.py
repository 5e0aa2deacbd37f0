"""The event counters of every process, in the shared database.

Counters are counted in memory by the process that relays or consumes (engine.events.metrics).
With separate processes (an API with `--no-workers`, `billing worker`s, the scheduler) the
API's own counters stay 0, so each process that runs a bus writes its counters here, about
once a second and when it stops, as absolute values under its own process id; `/metrics`
adds the other processes' rows to its own live counters. A process that ends keeps its rows,
so the totals never go down.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import BigInteger, String, delete, func, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from engine.events.metrics import COUNTERS, EventMetrics
from engine.events.metrics import metrics as default_metrics
from engine.store import Database
from engine.store.base import Base

log = logging.getLogger("engine.events.counters")

# This process, as the rows it writes name it (a restarted process is a new one).
PROCESS = f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(3)}"
FLUSH_SECONDS = 1.0

Snapshot = dict[str, dict[str, int]]


class EventCounter(Base):
    __tablename__ = "event_counters"

    process: Mapped[str] = mapped_column(String(64), primary_key=True)
    queue: Mapped[str] = mapped_column(String(100), primary_key=True)
    counter: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


def write_counters(db: Database, snapshot: Snapshot, process: str = PROCESS) -> None:
    """Replace this process's rows with `snapshot` (absolute values), in one transaction."""
    now = datetime.now(UTC)
    rows = [{"process": process, "queue": q, "counter": c, "value": v, "updated_at": now}
            for q, values in snapshot.items() for c, v in values.items()]
    with db.session() as session:
        session.execute(delete(EventCounter).where(EventCounter.process == process))
        if rows:
            session.execute(insert(EventCounter), rows)


def other_processes(db: Database, process: str = PROCESS) -> Snapshot:
    """The counters the other processes wrote, summed per queue."""
    with db.read_session() as session:
        rows = session.execute(
            select(EventCounter.queue, EventCounter.counter, func.sum(EventCounter.value))
            .where(EventCounter.process != process)
            .group_by(EventCounter.queue, EventCounter.counter)
        ).all()
    out: Snapshot = defaultdict(dict)
    for queue, counter, value in rows:
        if counter in COUNTERS:
            out[queue][counter] = int(value)  # a group has rows, and value is NOT NULL
    return dict(out)


def all_processes(db: Database, metrics: EventMetrics | None = None) -> Snapshot:
    """This process's live counters plus every other process's stored ones."""
    total: Snapshot = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    try:
        others = other_processes(db)
    except Exception:  # a database without the table (not migrated yet) or unreachable
        log.warning("could not read the other processes' event counters", exc_info=True)
        others = {}
    for snap in ((metrics or default_metrics).snapshot(), others):
        for queue, values in snap.items():
            for counter, value in values.items():
                total[queue][counter] += value
    return dict(total)


def flush_counters(db: Database, stop: threading.Event, metrics: EventMetrics | None = None,
                   every: float = FLUSH_SECONDS) -> None:
    """Write this process's counters when they changed, every `every` seconds, and once more
    when `stop` is set (a thread of every process that runs a bus)."""
    m = metrics or default_metrics
    last: Snapshot = {}
    while True:
        stopping = stop.wait(every)
        snap = m.snapshot()
        if snap != last:
            try:
                write_counters(db, snap)
                last = snap
            except Exception:  # the next round writes the totals again
                log.warning("could not store the event counters", exc_info=True)
        if stopping:
            return


def start_flusher(db: Database, stop: threading.Event, metrics: EventMetrics | None = None) -> threading.Thread:
    thread = threading.Thread(target=flush_counters, args=(db, stop, metrics), name="event-counters", daemon=True)
    thread.start()
    return thread
