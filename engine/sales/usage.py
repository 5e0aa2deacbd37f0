"""Usage ingestion, idempotent by event id, and the usage a customer has used so far.

A batch is validated whole first: one bad event rejects the batch with the field named and
nothing is written. Stored with INSERT ... ON CONFLICT (id) DO NOTHING, so a repeated id
has no second effect, across batches and concurrent requests alike.

A batch that stored new usage also publishes, in its transaction, one `usage.recorded`
event naming the customers whose usage changed (`{"customers": {id: new events}, "events":
n}`; `customer_id` is set when there is one customer): other processes (API processes that
cache access decisions, rules) hear of new usage without reading the table. One event per
batch, not per customer: a batch of 1,000 events over 200 customers would otherwise write
200 outbox rows and cost a third of the ingestion rate. A batch of repeated ids changes no
usage and publishes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.pricing import UsageEvent, parse_event
from engine.sales.burn_totals import Version, add_to_totals, customers_with_versions
from engine.sales.common import now_of
from engine.sales.errors import Conflict, NotFound, SalesError
from engine.sales.models import Subscription, UsageRecord
from engine.store import add_event

MAX_BATCH = 10_000


@dataclass(frozen=True)
class IngestResult:
    received: int
    accepted: int  # new events stored
    duplicates: int  # ids seen before (in this batch or earlier): accepted and ignored
    # The usage.recorded event the batch published (None: it stored nothing new), so the
    # process that ingested can tell its own event from other processes' in the outbox.
    recorded_event_id: str | None = None
    # The events stored now (not the repeats), so the process that ingested can add them to
    # what it holds in memory instead of reading the usage again.
    stored: tuple[UsageEvent, ...] = ()

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
    recorded_id: str | None = None,
) -> IngestResult:
    """Store a batch of usage events; ids already stored are ignored. Raises SalesError
    (nothing written) for an invalid event or an unknown customer. `recorded_id` is the id
    for the batch's usage.recorded, for a caller that must know it before the commit."""
    events = validate_events(envelopes)
    if not events:
        return IngestResult(0, 0, 0)
    holders = (_check_customers(session, events) if check_customers
               else customers_with_versions(session, [str(e.customer_id) for e in events]))
    now = now_of(clock)
    rows = _rows(events, now)
    stored_ids = _INSERTERS.get(session.get_bind().dialect.name, _insert_sqlite)(session, rows)
    by_id: dict[str, UsageEvent] = {}
    for e in events:
        by_id.setdefault(e.id, e)  # a repeated id within the batch: its first, as stored
    stored = tuple(by_id[i] for i in stored_ids)
    if len(stored) < len(events):
        refuse_changed_repeats(session, events, by_id, set(stored_ids))
    event_id = None
    if stored:
        mark_late_usage(session, stored, now)
        add_to_totals(session, stored, holders)
        event_id = add_event(session, "usage.recorded", *_recorded(stored), time=now, id=recorded_id).id
    return IngestResult(len(events), len(stored), len(events) - len(stored), event_id, stored)


def _check_customers(session: Session, events: Sequence[UsageEvent]) -> dict[str, Version | None]:
    """Refuse an event of an unknown customer (NotFound naming it); the wallet holders'
    catalog versions, read with the ids (their token burn totals grow with the batch)."""
    known = customers_with_versions(session, [str(e.customer_id) for e in events])
    for i, e in enumerate(events):
        if e.customer_id not in known:
            raise NotFound(f"events[{i}].customer_id", f"unknown customer {e.customer_id!r}")
    return known


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _billed_until(
    status: str,
    period_start: date | None,
    period_end: date | None,
    next_run_at: datetime | None,
    ended_at: datetime | None,
    now: datetime,
) -> datetime | None:
    """Usage dated before this was billed already (None: nothing billed to look back on): a
    cancelled subscription's end, a paused one's last period end, an active one's current
    period start (its end when the close is due now)."""
    if status == "canceled":
        return ended_at
    if status == "paused":  # its last period is closed
        return _midnight(period_end) if period_end is not None else None
    if period_start is None or period_end is None:
        return None
    return _midnight(period_end) if next_run_at is not None and next_run_at <= now else _midnight(period_start)


def mark_late_usage(session: Session, stored: Sequence[UsageEvent], now: datetime) -> list[str]:
    """Mark the subscriptions that these new events reach in a period already billed: usage
    dated before an active subscription's current period (a period closed or cut short by a
    change of interval), before a cancelled one's end, or inside a period whose close is due
    now (a billing run may be closing it as this batch commits). The billing run bills it the
    next day (`engine.sales.late_usage.bill_late_usage`); a mark that finds nothing late bills
    nothing. One read of the batch's customers' subscriptions; an update only for those hit.
    Returns the subscriptions marked."""
    earliest: dict[str, datetime] = {}
    for e in stored:
        c, t = str(e.customer_id), e.time.astimezone(UTC)
        earliest[c] = min(t, earliest.get(c, t))
    customers = sorted(earliest)
    hit: list[str] = []
    for start in range(0, len(customers), 900):  # under SQLite's bound-parameter limit
        stmt = select(
            Subscription.id,
            Subscription.customer_id,
            Subscription.status,
            Subscription.period_start,
            Subscription.period_end,
            Subscription.next_run_at,
            Subscription.ended_at,
        ).where(
            Subscription.customer_id.in_(customers[start : start + 900]),
            Subscription.status.in_(("active", "paused", "canceled")),
            Subscription.last_billed_at.is_not(None),
            Subscription.late_usage_since.is_(None),
        )
        for sid, cid, status, period_start, period_end, next_run_at, ended_at in session.execute(stmt):
            billed_until = _billed_until(status, period_start, period_end, next_run_at, ended_at, now)
            if billed_until is not None and earliest[cid] < billed_until:
                hit.append(sid)
    if hit:
        session.execute(
            update(Subscription)
            .where(Subscription.id.in_(hit), Subscription.late_usage_since.is_(None))
            .values(late_usage_since=now)
            .execution_options(synchronize_session=False)
        )
    return hit


def _fingerprint(customer_id: str, type_: str, time: datetime, properties: Mapping[str, Any]) -> str:
    """What must match for a repeated id to be the same event: the instant (in any zone) and
    the JSON of its properties (key order aside)."""
    utc = time.astimezone(UTC) if time.tzinfo else time.replace(tzinfo=UTC)
    body = json.dumps(properties, sort_keys=True, separators=(",", ":"), default=str)
    return f"{customer_id}\x00{type_}\x00{utc.isoformat()}\x00{body}"


def _of(e: UsageEvent) -> str:
    return _fingerprint(str(e.customer_id), e.type, e.time, e.properties)


def refuse_changed_repeats(
    session: Session, events: Sequence[UsageEvent], first: Mapping[str, UsageEvent], stored_now: set[str]
) -> None:
    """The id is the idempotency key, as with Stripe's: the same id with the same event is a
    replay (ignored); the same id with another event is a mistake the sender must hear of,
    not a silent drop. Raises Conflict naming the id; the caller's transaction rolls back."""
    for i, e in enumerate(events):
        if first[e.id] is not e and _of(first[e.id]) != _of(e):
            raise Conflict(f"events[{i}].id", f"event id {e.id!r} is repeated in this batch with another body")
    earlier = [e.id for e in first.values() if e.id not in stored_now]
    rows: dict[str, str] = {}
    for start in range(0, len(earlier), 900):
        chunk = earlier[start : start + 900]
        q = select(
            UsageRecord.id, UsageRecord.customer_id, UsageRecord.type, UsageRecord.time, UsageRecord.properties
        ).where(UsageRecord.id.in_(chunk))
        rows.update((r[0], _fingerprint(r[1], r[2], r[3], r[4] or {})) for r in session.execute(q))
    for i, e in enumerate(events):
        if e.id in rows and rows[e.id] != _of(e):
            raise Conflict(
                f"events[{i}].id",
                f"event id {e.id!r} was recorded before with another body; "
                "a replay must repeat the event as it was sent",
            )


def _recorded(stored: Sequence[UsageEvent]) -> tuple[str | None, dict[str, Any]]:
    """The customer and properties of a batch's usage.recorded: the customer is set when
    the batch is about one."""
    counts: dict[str, int] = {}
    for event in stored:
        customer_id = str(event.customer_id)  # validated: every event names its customer
        counts[customer_id] = counts.get(customer_id, 0) + 1
    only = next(iter(counts)) if len(counts) == 1 else None
    return only, {"customers": counts, "events": len(stored)}


def recorded_customers(properties: Mapping[str, Any]) -> list[str]:
    """The customers a usage.recorded event names."""
    customers = properties.get("customers")
    return [str(c) for c in customers] if isinstance(customers, Mapping) else []


def _insert_sqlite(session: Session, rows: list[dict[str, Any]]) -> list[str]:
    """The id of each row inserted. The write transaction holds SQLite's lock
    (BEGIN IMMEDIATE), so the ids found here stay new until the INSERT below."""
    known: set[str] = set()
    ids = [r["id"] for r in rows]
    for start in range(0, len(ids), 900):  # under SQLite's bound-parameter limit
        chunk = ids[start : start + 900]
        known.update(session.scalars(select(UsageRecord.id).where(UsageRecord.id.in_(chunk))))
    new = [r for r in rows if r["id"] not in known]
    if new:
        stmt = sqlite_insert(UsageRecord).on_conflict_do_nothing(index_elements=["id"])
        session.connection().execute(stmt, new)
    return [r["id"] for r in new]


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


def _insert_postgres(session: Session, rows: list[dict[str, Any]]) -> list[str]:
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
    return list(session.scalars(_PG_INSERT, params))


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


# The insert of a batch per database: unnest on PostgreSQL, a checked INSERT elsewhere.
_INSERTERS: dict[str, Callable[[Session, list[dict[str, Any]]], list[str]]] = {"postgresql": _insert_postgres}
