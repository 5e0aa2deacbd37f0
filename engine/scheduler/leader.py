"""Leader election: one active scheduler among the processes.

On PostgreSQL the leader holds a session-level advisory lock on a dedicated connection
(AUTOCOMMIT, TCP keepalives, outside the pool). The lock lives exactly as long as that
server session: if the process dies or the connection drops, PostgreSQL releases it and
another scheduler takes over. The leader checks its connection every heartbeat and steps
down the moment a check fails. On SQLite there is one process by design: it is the leader.

Between a leader losing its connection and noticing (at most one heartbeat), two schedulers
may both believe they lead; the (job, slot) keys in `scheduler_runs` keep that overlap from
running anything twice.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any, Protocol

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

LOCK_NAME = "billing-engine:scheduler"


def lock_key(name: str = LOCK_NAME) -> int:
    """A stable signed 64-bit key for pg_advisory_lock."""
    value = zlib.crc32(name.encode()) | (zlib.crc32(name[::-1].encode()) << 32)
    return value - (1 << 64) if value >= (1 << 63) else value


class Leadership(Protocol):
    def acquire(self) -> bool: ...

    def check(self) -> bool: ...

    def release(self) -> None: ...

    @property
    def held(self) -> bool: ...


class SingleProcess:
    """SQLite: the only process is the leader."""

    def __init__(self) -> None:
        self._held = False

    def acquire(self) -> bool:
        self._held = True
        return True

    def check(self) -> bool:
        return self._held

    def release(self) -> None:
        self._held = False

    @property
    def held(self) -> bool:
        return self._held


class AdvisoryLock:
    """pg_try_advisory_lock on a connection of its own."""

    def __init__(self, url: str, name: str = LOCK_NAME, *, connect_timeout: int = 5,
                 keepalive_idle: int = 10) -> None:
        self.key = lock_key(name)
        self._engine = create_engine(url, poolclass=NullPool, connect_args={
            "connect_timeout": connect_timeout, "keepalives": 1,
            "keepalives_idle": keepalive_idle, "keepalives_interval": 5, "keepalives_count": 3,
            "application_name": "billing-scheduler-leader"})
        self._conn: Any = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    def backend_pid(self) -> int | None:
        if self._conn is None:
            return None
        return int(self._conn.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def acquire(self) -> bool:
        if self._conn is not None:
            return self.check()
        try:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except Exception as exc:
            log.warning("scheduler leader election: cannot connect: %s", exc)
            return False
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar_one())
        except Exception as exc:
            log.warning("scheduler leader election failed: %s", exc)
            _close(conn)
            return False
        if not got:
            _close(conn)
            return False
        self._conn = conn
        log.info("scheduler: this process is the leader")
        return True

    def check(self) -> bool:
        """Still the leader? Asks the lock's own session; any error means no."""
        if self._conn is None:
            return False
        try:
            # The lock lives as long as this server session: a live session still holds it.
            self._conn.execute(text("SELECT 1")).scalar_one()
        except Exception as exc:
            log.warning("scheduler: lost the leader connection (%s); stepping down", exc)
            self._drop()
            return False
        return True

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        except Exception:
            pass
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            _close(conn)

    def dispose(self) -> None:
        self.release()
        self._engine.dispose()


def _close(conn: Any) -> None:
    try:
        conn.close()
    except Exception:
        pass


def leadership_for(url: str) -> Leadership:
    if url.startswith("postgresql") or url.startswith("postgres"):
        if not url.startswith("postgresql+"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return AdvisoryLock(url)
    return SingleProcess()
