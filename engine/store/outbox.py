"""The transactional outbox: a state change and the events it causes commit together.

Writers call `add_event(session, ...)` inside their own transaction; the relay (engine.events)
publishes committed rows to the bus. Consumers call `mark_processed` in the transaction of
their effects, so a redelivered event id has no second effect.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, UniqueConstraint, delete, event, insert, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, sessionmaker

from engine.store.base import Base, UTCDateTime

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_event_id(prefix: str = "evt") -> str:
    """A ULID-style id: sortable by creation time, random in the rest."""
    ms = int(time.time() * 1000)
    rnd = secrets.randbits(80)
    value = (ms << 80) | rnd
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


class OutboxEvent(Base):
    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_unsent", "published_at", "seq"),)

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(100), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(64), index=True)
    time: Mapped[datetime]
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # When the row left the outbox: confirmed by the broker (RabbitMQ), or applied by every
    # subscribed subsystem (in-process bus, where this table is the queue itself).
    published_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # In-process bus retries: the row is not due again before this time.
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    # In-process dead letter: set after the last failed attempt; the row is never retried.
    dead_at: Mapped[datetime | None] = mapped_column(default=None)

    def envelope(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "customer_id": self.customer_id,
            "time": self.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "properties": self.properties,
        }


class ProcessedEvent(Base):
    """Which consumer has applied which event: the idempotency record of every handler."""

    __tablename__ = "processed_events"
    __table_args__ = (UniqueConstraint("consumer", "event_id", name="uq_processed_consumer_event"),)

    pk: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    consumer: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(64))
    processed_at: Mapped[datetime]


# session.info key: this transaction wrote outbox rows (see OutboxWrites).
_WROTE = "outbox_wrote"


def note_outbox_write(session: Session) -> None:
    """Say that `session`'s transaction writes outbox rows by raw SQL (a driver cursor, which
    SQLAlchemy's events do not see); ORM adds and `session.execute(insert(OutboxEvent))` are
    noticed without it."""
    session.info[_WROTE] = True


class OutboxWrites:
    """How many transactions of this process that wrote outbox rows have committed, on one
    database (Database.outbox_writes). The in-process bus compares it with the count at its
    last drain that found nothing: unchanged, a drain would find nothing again (a test clock
    drains after every job of its hundreds of stops a simulated year). Another process's
    writes are not counted: `InProcessBus.drain` always looks; only `drain_written` trusts this."""

    def __init__(self) -> None:
        self.committed = 0

    def watch(self, factory: sessionmaker[Session]) -> None:
        event.listen(factory, "after_flush", _note_added)
        event.listen(factory, "do_orm_execute", _note_inserted)
        event.listen(factory, "after_commit", self._committed)

    def _committed(self, session: Session) -> None:
        if session.info.pop(_WROTE, False):
            self.committed += 1


def _note_added(session: Session, _flush: object) -> None:
    if any(isinstance(row, OutboxEvent) for row in session.new):
        session.info[_WROTE] = True


def _note_inserted(state: ORMExecuteState) -> None:
    # insert(OutboxEvent)'s table is an annotated copy of the table: compare by name.
    if state.is_insert and getattr(getattr(state.statement, "table", None), "name", None) == OutboxEvent.__tablename__:
        state.session.info[_WROTE] = True


def add_event(
    session: Session,
    type: str,
    customer_id: str | None,
    properties: dict[str, Any],
    *,
    time: datetime,
    id: str | None = None,
) -> OutboxEvent:
    row = OutboxEvent(
        id=id or new_event_id(),
        type=type,
        customer_id=customer_id,
        time=time,
        properties=properties,
    )
    session.add(row)
    return row


def add_events(session: Session, events: Iterable[tuple[str, str | None, dict[str, Any], datetime]]) -> int:
    """`add_event` for many (type, customer_id, properties, time) in one bulk INSERT: a busy
    writer holds the interpreter far less than with one ORM object per row."""
    rows = [
        {"id": new_event_id(), "type": t, "customer_id": c, "time": when, "properties": props}
        for t, c, props, when in events
    ]
    if not rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        _add_postgres(session, rows)
    else:
        session.execute(insert(OutboxEvent), rows)
    return len(rows)


# PostgreSQL: the columns as arrays through unnest, one statement text whatever the number of
# rows (a VALUES list of five parameters a row is built, sent and parsed anew for each size of
# batch, which cost about as much as the insert). The properties go as one JSON array, its
# elements kept verbatim (`json`, not `jsonb`): as text[] every quote of every object was
# escaped, in Python, for the array's text form. WITH ORDINALITY ... ORDER BY: the rows take
# their `seq` in the order given, as the VALUES list gave them.
_PG_EVENTS = text(
    """
    INSERT INTO outbox_events (id, type, customer_id, time, properties, attempts)
    SELECT e.id, e.type, e.customer_id, e.time, p.value, 0
    FROM unnest(
        CAST(:ids AS text[]), CAST(:types AS text[]), CAST(:customers AS text[]), CAST(:times AS timestamptz[])
    ) WITH ORDINALITY AS e(id, type, customer_id, time, n)
    JOIN json_array_elements(CAST(:properties AS json)) WITH ORDINALITY AS p(value, n) ON p.n = e.n
    ORDER BY e.n
    """
)


def _add_postgres(session: Session, rows: list[dict[str, Any]]) -> None:
    """The rows as the ORM insert writes them: a zoned time (UTCDateTime's check), each
    object's text as the JSON column's default serializer writes it (`json.dumps` of the list
    writes each element as `json.dumps` of it)."""
    stored = UTCDateTime()
    dialect = session.get_bind().dialect
    params = {
        "ids": [r["id"] for r in rows],
        "types": [r["type"] for r in rows],
        "customers": [r["customer_id"] for r in rows],
        "times": [stored.process_bind_param(r["time"], dialect) for r in rows],
        "properties": json.dumps([r["properties"] for r in rows]),
    }
    session.execute(_PG_EVENTS, params)
    note_outbox_write(session)  # a text() statement: the session's insert watch does not see it


# One statement per dialect, built once: every consumer marks each event it applies, and
# building the INSERT (and its cache key) on each call cost several times running it.
_MARK: dict[str, Any] = {}


def _mark_statement(dialect: str) -> Any:
    stmt = _MARK.get(dialect)
    if stmt is None:
        table: Any = ProcessedEvent.__table__
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        # RETURNING, not rowcount: an ORM-enabled INSERT reports rowcount -1 on psycopg.
        stmt = _MARK[dialect] = insert(table).on_conflict_do_nothing().returning(table.c.pk)
    return stmt


def mark_processed(session: Session, consumer: str, event_id: str, now: datetime) -> bool:
    """Record that `consumer` applied `event_id`. Returns False when it already had: the
    caller must then skip its effects. Safe under concurrency (unique constraint)."""
    values = {"consumer": consumer, "event_id": event_id, "processed_at": now}
    return session.execute(_mark_statement(session.get_bind().dialect.name), values).first() is not None


def mark_processed_many(session: Session, consumer: str, event_ids: Iterable[str], now: datetime) -> set[str]:
    """`mark_processed` for a batch in one statement: returns the ids recorded now (the
    ones whose effects must run); ids already processed are left out."""
    ids = list(dict.fromkeys(event_ids))
    if not ids:
        return set()
    bind = session.get_bind()
    rows = [{"consumer": consumer, "event_id": i, "processed_at": now} for i in ids]
    insert = pg_insert if bind.dialect.name == "postgresql" else sqlite_insert
    table: Any = ProcessedEvent.__table__  # Core, not ORM-enabled: no ORM bulk machinery per batch
    stmt = insert(table).values(rows).on_conflict_do_nothing().returning(table.c.event_id)
    return {r[0] for r in session.execute(stmt)}


def prune(session: Session, before: datetime) -> dict[str, int]:
    """Delete what is no longer needed: outbox rows published before `before`, and
    processed-records older than it. Choose `before` well past any redelivery (days, not
    minutes): an event redelivered after its record is gone would apply again. Pending
    and dead rows are kept."""
    published = session.execute(
        delete(OutboxEvent).where(OutboxEvent.published_at.is_not(None), OutboxEvent.published_at < before)
    )
    processed = session.execute(delete(ProcessedEvent).where(ProcessedEvent.processed_at < before))
    return {
        "outbox": int(published.rowcount or 0),  # type: ignore[attr-defined]
        "processed": int(processed.rowcount or 0),  # type: ignore[attr-defined]
    }
