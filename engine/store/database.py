from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from engine.store.outbox import OutboxWrites
from engine.store.urls import normalise_url

if TYPE_CHECKING:
    from engine.config import Settings


def is_postgres(engine_or_session: Engine | Session) -> bool:
    bind = engine_or_session.get_bind() if isinstance(engine_or_session, Session) else engine_or_session
    return bind.dialect.name == "postgresql"


@dataclass(frozen=True)
class PoolSize:
    """How many PostgreSQL connections one process keeps open (`size`) and may open beyond
    them while busy (`overflow`, closed again when returned). The defaults are a production
    process's: 10 kept covers the API's concurrent requests and a worker's subscribers
    without reconnecting, 20 more absorb a burst. Every process of a system (API, worker,
    scheduler) has its own pool, so a deployment's share of the server's max_connections is
    (size + overflow) per process: BILLING_DATABASE_POOL_SIZE and
    BILLING_DATABASE_MAX_OVERFLOW lower it. SQLite files keep their own pool (no server)."""

    size: int = 10
    overflow: int = 20

class Database:
    """One engine and session factory. `session()` commits on success, rolls back on error,
    so a failed operation leaves no partial rows."""

    def __init__(self, url: str, *, echo: bool = False, pool: PoolSize = PoolSize()) -> None:
        self.url = normalise_url(url)
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if self.url in ("sqlite://", "sqlite:///:memory:"):
                kwargs["poolclass"] = StaticPool
            else:
                # The API's worker threads (up to 40) each read through a connection. Above the
                # default 5 kept connections, every checkout opened a new SQLite connection
                # (and its PRAGMAs) and closed it again; under 16 concurrent snapshot loads
                # that churn and the waits for a free one took most of a check's time.
                kwargs["pool_size"] = 20
                kwargs["max_overflow"] = 30
        else:
            kwargs["pool_pre_ping"] = True
            kwargs["pool_size"] = pool.size
            kwargs["max_overflow"] = pool.overflow
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        # Transactions of this process that wrote outbox rows (the in-process bus skips a
        # drain when none committed since its last empty one).
        self.outbox_writes = OutboxWrites()
        self.outbox_writes.watch(self._factory)
        # Read-only sessions: on SQLite a deferred BEGIN, so readers run beside the writer (WAL).
        self._read_factory = sessionmaker(self.engine.execution_options(billing_readonly=True), expire_on_commit=False)

    def listen(self, identifier: str, fn: Callable[..., Any]) -> None:
        """Listen to a session event of this database's writing sessions (`session()`): how a
        package counts its own committed writes, as `outbox_writes` does for the outbox."""
        event.listen(self._factory, identifier, fn)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def migrate(self) -> None:
        """Bring this database to the latest migration (engine.store.migrate.migrate): the
        only way the engine's tables are created."""
        from engine.store.migrate import migrate

        migrate(self)

    def drop_all(self) -> None:
        """Drop every table, the migrations' `alembic_version` included: `migrate` then
        starts over."""
        tables = MetaData()
        tables.reflect(self.engine)
        tables.drop_all(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for reading only: never commits, and on SQLite never waits for the
        write lock. Writing through it is a bug (SQLite would refuse the upgrade)."""
        session = self._read_factory()
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc: object) -> None:
        # A command run in a long-lived process (the tests run `billing` in theirs) hands its
        # connections back to the server, not to a pool nobody uses again.
        self.dispose()


def database_of(settings: Settings) -> Database:
    """The database a process of these settings uses: BILLING_DATABASE_URL, with the pool
    BILLING_DATABASE_POOL_SIZE / BILLING_DATABASE_MAX_OVERFLOW give."""
    return Database(settings.database_url, pool=PoolSize(settings.database_pool_size, settings.database_max_overflow))


def _sqlite_begin(conn: Any) -> None:
    # pysqlite defers BEGIN on its own; we emit it. A writing session takes the write lock
    # up front (IMMEDIATE), so SELECT-then-INSERT is one serialisable transaction and never
    # fails on a lock upgrade; a read session begins deferred and never blocks on writers.
    readonly = conn.get_execution_options().get("billing_readonly", False)
    conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Autocommit mode at the driver level; SQLAlchemy's "begin" hook opens transactions.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
