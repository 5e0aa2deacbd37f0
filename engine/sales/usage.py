"""Usage ingestion, idempotent by event id, and the usage a customer has used so far.

A batch is validated whole first: one bad event rejects the batch with the field named and
nothing is written. Stored with INSERT ... ON CONFLICT (id) DO NOTHING, so a repeated id
has no second effect, across batches and concurrent requests alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.pricing import UsageEvent, parse_event
from engine.sales.common import now_of
from engine.sales.errors import NotFound, SalesError
from engine.sales.models import Customer, UsageRecord

MAX_BATCH = 10_000


@dataclass(frozen=True)
class IngestResult:
    received: int
    accepted: int  # new events stored
    duplicates: int  # ids seen before (in this batch or earlier): accepted and ignored

    def as_dict(self) -> dict[str, int]:
        return {"received": self.received, "accepted": self.accepted, "duplicates": self.duplicates}


def validate_events(envelopes: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> list[UsageEvent]:
    """Parse a batch of envelopes (FORMATS §3); the first bad one raises SalesError naming it."""
    if isinstance(envelopes, Mapping):
        envelopes = [envelopes]
    if not isinstance(envelopes, Sequence) or isinstance(envelopes, str | bytes):
        raise SalesError("events", "an event object or a list of them")
    if len(envelopes) > MAX_BATCH:
        raise SalesError("events", f"at most {MAX_BATCH} events per batch, got {len(envelopes)}")
    out: list[UsageEvent] = []
    for i, env in enumerate(envelopes):
        where = f"events[{i}]"
        try:
            event = parse_event(env, where)
        except ValueError as exc:
            text = str(exc)
            field, _, message = text.partition(": ")
            sub, _, rest = message.partition(": ")
            if sub in ("id", "type", "time", "properties", "customer_id"):
                raise SalesError(f"{field}.{sub}", rest) from None
            raise SalesError(field, message) from None
        if not event.customer_id:
            raise SalesError(f"{where}.customer_id", "required: whose usage this is")
        if len(event.id) > 200:
            raise SalesError(f"{where}.id", "at most 200 characters")
        out.append(event)
    return out


def _rows(events: Iterable[UsageEvent], received_at: datetime) -> list[dict[str, Any]]:
    seen: set[str] = set()
    rows = []
    for e in events:
        if e.id in seen:
            continue
        seen.add(e.id)
        rows.append(
            {
                "id": e.id,
                "customer_id": e.customer_id,
                "type": e.type,
                "time": e.time.astimezone(UTC),
                "properties": dict(e.properties),
                "received_at": received_at,
            }
        )
    return rows


def ingest_events(
    session: Session,
    envelopes: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    *,
    clock: Clock,
    check_customers: bool = True,
) -> IngestResult:
    """Store a batch of usage events; ids already stored are ignored. Raises SalesError
    (nothing written) for an invalid event or an unknown customer."""
    events = validate_events(envelopes)
    if not events:
        return IngestResult(0, 0, 0)
    if check_customers:
        wanted = {e.customer_id for e in events}
        known = set(session.scalars(select(Customer.id).where(Customer.id.in_(wanted))))
        for i, e in enumerate(events):
            if e.customer_id not in known:
                raise NotFound(f"events[{i}].customer_id", f"unknown customer {e.customer_id!r}")
    rows = _rows(events, now_of(clock))
    if session.get_bind().dialect.name == "postgresql":
        inserted = _insert_postgres(session, rows)
    else:
        # sqlite3's executemany reports the rows it inserted; conflicts count 0.
        stmt = sqlite_insert(UsageRecord).on_conflict_do_nothing(index_elements=["id"])
        inserted = session.connection().execute(stmt, rows).rowcount
    return IngestResult(len(events), inserted, len(events) - inserted)


_PG_INSERT = text(
    """
    INSERT INTO sales_usage_events (id, customer_id, type, time, properties, received_at)
    SELECT u.id, u.customer_id, u.type, u.time, CAST(u.properties AS json), :received_at
    FROM unnest(
        CAST(:ids AS text[]), CAST(:customers AS text[]), CAST(:types AS text[]),
        CAST(:times AS timestamptz[]), CAST(:properties AS text[])
    ) AS u(id, customer_id, type, time, properties)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
    """
)


def _insert_postgres(session: Session, rows: list[dict[str, Any]]) -> int:
    """One statement for the batch: the columns as arrays through unnest. A multi-row
    VALUES list of 6,000 parameters costs more to build and parse than to insert."""
    params = {
        "ids": [r["id"] for r in rows],
        "customers": [r["customer_id"] for r in rows],
        "types": [r["type"] for r in rows],
        "times": [r["time"] for r in rows],
        "properties": [json.dumps(r["properties"], separators=(",", ":")) for r in rows],
        "received_at": rows[0]["received_at"],
    }
    return len(session.execute(_PG_INSERT, params).all())


def load_usage(
    session: Session,
    customer_ids: Sequence[str],
    types: Iterable[str],
    start: datetime,
    end: datetime,
) -> dict[str, list[UsageEvent]]:
    """Events of these customers and types with start <= time < end, per customer."""
    types = sorted(set(types))
    out: dict[str, list[UsageEvent]] = {c: [] for c in customer_ids}
    if not types or not customer_ids:
        return out
    stmt = select(UsageRecord.id, UsageRecord.customer_id, UsageRecord.type, UsageRecord.time, UsageRecord.properties)
    stmt = stmt.where(
        UsageRecord.customer_id.in_(list(customer_ids)), UsageRecord.time >= start, UsageRecord.time < end
    )
    stmt = stmt.where(UsageRecord.type.in_(types))
    for rid, cid, typ, when, props in session.execute(stmt):
        out[cid].append(UsageEvent(rid, typ, when, cid, props or {}))
    return out


def event_count(session: Session, customer_id: str | None = None) -> int:
    from sqlalchemy import func

    stmt = select(func.count()).select_from(UsageRecord)
    if customer_id is not None:
        stmt = stmt.where(UsageRecord.customer_id == customer_id)
    return int(session.scalar(stmt) or 0)


def require_customer(session: Session, customer_id: str) -> None:
    if session.get(Customer, customer_id) is None:
        raise NotFound("customer_id", f"unknown customer {customer_id!r}")
