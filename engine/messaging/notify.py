"""Recording notifications in the caller's transaction.

`notify` / `notify_many` render each channel's message and record it, or record why it will
not go out (preferences, quiet hours, digest, duplicate). Nothing is sent here: a rolled-back
caller sends nothing, and `engine.messaging.delivery` sends what was recorded.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import chain
from typing import Any

from sqlalchemy import Dialect, Table, bindparam, exists, func, select, tuple_, union_all
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.clock import ensure_aware
from engine.messaging import models as m
from engine.messaging.due import NOTED, note_due
from engine.messaging.endpoints import WebhookEndpoint
from engine.messaging.models import Notification
from engine.messaging.models import WebhookEndpoint as WebhookEndpointRow
from engine.messaging.preferences import (
    PREFERENCES,
    QUIET_HOURS_CHANNELS,
    Preferences,
    _prefs_from_row,
    quiet_hours_end,
)
from engine.messaging.templates import CHANNELS, Renderer, TemplateError
from engine.store import add_event, new_event_id

log = logging.getLogger(__name__)


# Core tables for the hot paths (no ORM unit of work per message).
NOTIFICATIONS: Table = Notification.__table__  # type: ignore[assignment]


# The category of each shipped template, used when `notify` is not given one.
TEMPLATE_CATEGORIES: dict[str, str] = {
    "invoice_issued": "invoices",
    "payment_failed": "payments",
    "payment_succeeded": "payments",
    "payment_retry_scheduled": "payments",
    "payment_method_needed": "payments",
    "account_warning": "account",
    "account_suspended": "account",
    "subscription_cancelled": "account",
    "trial_ending": "subscription",
    "quota_warning": "usage",
    "quota_reached": "usage",
    "upgrade_offer": "offers",
    "digest": "digest",
}


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotifyResult:
    channel: str
    status: str  # pending | skipped | failed | digest | duplicate
    notification_id: str | None
    reason: str | None = None
    deliver_at: datetime | None = None
    target: str = ""


# -- notify --------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


# The writes of `notify` say when their messages are due (`note_due`, engine/messaging/due.py).
_NOTED = {NOTED: True}
_INSERT_IGNORE: dict[str, Any] = {
    "postgresql": pg_insert(NOTIFICATIONS)
    .on_conflict_do_nothing(constraint="uq_notification_dedup")
    .returning(NOTIFICATIONS.c.id)
    .execution_options(**_NOTED),
    "sqlite": sqlite_insert(NOTIFICATIONS)
    .on_conflict_do_nothing()
    .returning(NOTIFICATIONS.c.id)
    .execution_options(**_NOTED),
}


def _failed_event(session: Session, row: Mapping[str, Any], now: datetime, error: str, dead: bool = False) -> None:
    add_event(
        session,
        "notification.failed",
        row["customer_id"],
        {
            "notification_id": row["id"],
            "template": row["template"],
            "channel": row["channel"],
            "category": row["category"],
            "rule_id": row["rule_id"] or None,
            "event_id": row["event_id"],
            "attempts": row.get("attempts", 0),
            "error": error,
            "dead_lettered": dead,
        },
        time=now,
    )


@dataclass(frozen=True)
class NotifyRequest:
    """One `notify` call's arguments (see `notify`), for `notify_many`."""

    customer: Mapping[str, Any]
    template: str
    channels: Sequence[str]
    data: Mapping[str, Any]
    event_id: str
    rule_id: str | None = None
    category: str | None = None
    urgent: bool = False
    digest: timedelta | None = None
    # Email only: files to attach, by reference (see Rendered.attachments).
    attachments: tuple[dict[str, str], ...] = ()


def notify(
    session: Session,
    *,
    customer: Mapping[str, Any],
    template: str,
    channels: Sequence[str],
    data: Mapping[str, Any],
    event_id: str,
    rule_id: str | None = None,
    category: str | None = None,
    urgent: bool = False,
    now: datetime,
    digest: timedelta | None = None,
    renderer: Renderer | None = None,
    attachments: Sequence[Mapping[str, str]] = (),
) -> list[NotifyResult]:
    """Record one notification per channel in the caller's transaction; send nothing.

    `customer` is a plain dict with at least `id`, and `email` / `phone` / `locale` /
    `timezone` as the channels need. The same (rule_id, event_id, channel) is recorded once:
    a redelivered event gives `duplicate`. An opted-out channel or category gives
    `skipped` unless the category is transactional. A template that fails to render gives
    `failed` (with the reason, and a `notification.failed` event). Outside `urgent`, email
    and SMS wait for the end of the customer's quiet hours. With `digest`, the message
    waits up to that long and goes out together with the others of the same template
    and channel that arrive in the window (one digest message). `attachments` go with the
    email (by reference, made when it is sent: e.g. an invoice's PDF).
    """
    request = NotifyRequest(
        customer,
        template,
        channels,
        data,
        event_id,
        rule_id,
        category,
        urgent,
        digest,
        tuple({str(k): str(v) for k, v in a.items()} for a in attachments),
    )
    return notify_many(session, [request], now=now, renderer=renderer)[0]


def _check(request: NotifyRequest) -> str:
    customer_id = str(request.customer.get("id") or "")
    if not customer_id:
        raise ValueError("notify: customer has no id")
    for channel in request.channels:
        if channel not in CHANNELS:
            raise ValueError(f"notify: unknown channel {channel!r}; channels are {CHANNELS}")
    return customer_id


def _preferences_of(session: Session, customer_ids: Sequence[str]) -> dict[str, Preferences]:
    out: dict[str, Preferences] = {}
    for start in range(0, len(customer_ids), 1000):
        part = customer_ids[start : start + 1000]
        for row in session.execute(select(PREFERENCES).where(PREFERENCES.c.customer_id.in_(part))):
            out[row.customer_id] = _prefs_from_row(row.customer_id, row)  # type: ignore[arg-type]
    return {cid: out.get(cid) or Preferences(cid) for cid in customer_ids}


def _endpoints_of(session: Session, customer_ids: Sequence[str]) -> dict[str, list[WebhookEndpoint]]:
    out: dict[str, list[WebhookEndpoint]] = {cid: [] for cid in customer_ids}
    if customer_ids:
        rows = session.scalars(
            select(WebhookEndpointRow)
            .where(WebhookEndpointRow.customer_id.in_(list(customer_ids)), WebhookEndpointRow.enabled.is_(True))
            .order_by(WebhookEndpointRow.created_at)
        )
        for r in rows:
            out[r.customer_id].append(WebhookEndpoint(r.id, r.customer_id, r.url, r.secret, r.enabled))
    return out


def notify_many(
    session: Session, requests: Sequence[NotifyRequest], *, now: datetime, renderer: Renderer | None = None
) -> list[list[NotifyResult]]:
    """`notify` for many messages in a few statements (one read of the preferences, one
    insert of every notification): what a scheduler sweep or a batch of events records.
    Every request is checked before anything is written; a bad one raises ValueError and
    records nothing. Returns each request's results, in order."""
    now = ensure_aware(now, "now")
    customer_ids = [_check(r) for r in requests]
    if not requests:
        return []
    # The caller's (its system's) templates; a caller without a system renders with its own.
    renderer = renderer or Renderer()
    if len(requests) == 1:
        fast = _notify_one_fast(session, requests[0], customer_ids[0], renderer, now)
        if fast is not None:
            return [fast]
    unique = list(dict.fromkeys(customer_ids))
    prefs = _preferences_of(session, unique)
    endpoints = _endpoints_of(
        session,
        list(dict.fromkeys(cid for cid, r in zip(customer_ids, requests, strict=True) if "webhook" in r.channels)),
    )
    planned: list[list[dict[str, Any]]] = []
    for customer_id, request in zip(customer_ids, requests, strict=True):
        planned.append(
            _plan(session, request, customer_id, prefs[customer_id], endpoints.get(customer_id, []), renderer, now)
        )
    inserted = _insert_many(session, list(chain.from_iterable(planned)))
    return [_results(session, rows_, inserted, now) for rows_ in planned]


def _results(session: Session, rows: Sequence[dict[str, Any]], inserted: set[str], now: datetime) -> list[NotifyResult]:
    seen = _recorded(session, [r for r in rows if r["id"] not in inserted])
    out: list[NotifyResult] = []
    for row in rows:
        if row["id"] not in inserted:
            # Recorded before (a redelivered event): nothing new, no event.
            found = seen.get((row["rule_id"], row["event_id"], row["channel"], row["target"]))
            out.append(
                NotifyResult(
                    row["channel"],
                    "duplicate",
                    found[0] if found else None,
                    f"already recorded ({found[1] if found else 'concurrently'})",
                    target=row["target"],
                )
            )
            continue
        if row["status"] == m.FAILED:
            log.warning("notification %s failed: %s", row["id"], row["error"])
            _failed_event(session, row, now, row["error"] or "failed")
        out.append(
            NotifyResult(row["channel"], row["status"], row["id"], row["error"], row["next_attempt_at"], row["target"])
        )
    return out


_FAST_INSERTS: dict[tuple[str, tuple[str, ...], int], Any] = {}


def _fast_insert(dialect: str, columns: tuple[str, ...], n: int) -> Any:
    """INSERT n rows unless the customer has preferences, ignoring duplicates; built once
    per shape (building it per message cost as much as its round trip)."""
    key = (dialect, columns, n)
    stmt = _FAST_INSERTS.get(key)
    if stmt is None:
        no_prefs = ~exists().where(PREFERENCES.c.customer_id == bindparam("fast_cid"))
        selects = [
            select(*[bindparam(f"{c}_{i}", type_=NOTIFICATIONS.c[c].type).label(c) for c in columns]).where(no_prefs)
            for i in range(n)
        ]
        source = selects[0] if n == 1 else union_all(*selects)
        if dialect == "postgresql":
            stmt = (
                pg_insert(NOTIFICATIONS)
                .from_select(list(columns), source)
                .on_conflict_do_nothing(constraint="uq_notification_dedup")
            )
        else:
            stmt = sqlite_insert(NOTIFICATIONS).from_select(list(columns), source).on_conflict_do_nothing()
        stmt = _FAST_INSERTS[key] = stmt.returning(NOTIFICATIONS.c.id).execution_options(**_NOTED)
    return stmt


_FAST_SQL: dict[tuple[tuple[str, ...], int], tuple[str, list[tuple[int, str, bool]]]] = {}
_JSON_COLUMNS = frozenset({"customer", "content"})
_NAMED_PARAM = re.compile(r"%\((\w+)\)s")


def _fast_insert_pg(
    session: Session, dialect: Dialect, columns: tuple[str, ...], rows: Sequence[Mapping[str, Any]], customer_id: str
) -> set[str]:
    """`_fast_insert` on PostgreSQL through the driver's cursor, in the session's own
    transaction: SQLAlchemy's per-execution work (cache key, parameter processing) cost
    twice the driver's. The SQL is SQLAlchemy's, compiled once per shape with positional
    parameters; the values are converted as its types would (JSON as text, None as JSON
    null; aware datetimes as they are)."""
    key = (columns, len(rows))
    cached = _FAST_SQL.get(key)
    if cached is None:
        named = str(_fast_insert("postgresql", columns, len(rows)).compile(dialect=dialect))
        where = {f"{c}_{i}": (i, c, c in _JSON_COLUMNS) for i in range(len(rows)) for c in columns} | {
            "fast_cid": (-1, "", False)
        }
        order = [where[name] for name in _NAMED_PARAM.findall(named)]
        cached = _FAST_SQL[key] = (_NAMED_PARAM.sub("%s", named), order)
    sql, order = cached
    params = [customer_id if i < 0 else json.dumps(rows[i][c]) if is_json else rows[i][c] for i, c, is_json in order]
    if session.autoflush:
        session.flush()  # what session.execute would do: the NOT EXISTS must see it
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute(sql, params)
        return {str(r[0]) for r in cursor.fetchall()}


def _notify_one_fast(
    session: Session, request: NotifyRequest, customer_id: str, renderer: Renderer, now: datetime
) -> list[NotifyResult] | None:
    """One request in one round trip, for the common case: a customer with no preferences
    (so nothing is opted out and there are no quiet hours). The rows are decided with the
    default preferences and inserted only if the customer still has none (`NOT EXISTS` in
    the same statement). None when nothing was inserted (preferences exist, or every row is
    a duplicate): the caller then takes the full path, which tells the two apart. Not for
    webhooks (their targets are read first) nor digests (their window is)."""
    if request.digest is not None or "webhook" in request.channels:
        return None
    rows = _plan(session, request, customer_id, Preferences(customer_id), [], renderer, now)
    if not rows:
        return None
    columns = tuple(rows[0])
    dialect = session.get_bind().dialect
    note_due(session, rows)
    if dialect.name == "postgresql":
        inserted = _fast_insert_pg(session, dialect, columns, rows, customer_id)
    else:
        stmt = _fast_insert(dialect.name, columns, len(rows))
        params: dict[str, Any] = {"fast_cid": customer_id}
        for i, row in enumerate(rows):
            params.update({f"{c}_{i}": row[c] for c in columns})
        inserted = {r.id for r in session.execute(stmt, params)}
    if not inserted:
        return None
    return _results(session, rows, inserted, now)


def _plan(
    session: Session,
    request: NotifyRequest,
    customer_id: str,
    prefs: Preferences,
    endpoints: Sequence[WebhookEndpoint],
    renderer: Renderer,
    now: datetime,
) -> list[dict[str, Any]]:
    """The notification rows of one request: decided (preferences, quiet hours, digest) and
    rendered, not yet written."""
    customer = request.customer
    base: dict[str, Any] = {
        "customer_id": customer_id,
        "template": request.template,
        "category": request.category or TEMPLATE_CATEGORIES.get(request.template, "general"),
        "rule_id": request.rule_id or "",
        "event_id": request.event_id,
        "locale": str(customer.get("locale") or "en"),
        "urgent": request.urgent,
        "customer": _jsonable({k: customer[k] for k in _SNAPSHOT_FIELDS if k in customer}),
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
        "content": None,
        "error": None,
        "digest_key": None,
    }
    rows: list[dict[str, Any]] = []
    for channel in dict.fromkeys(request.channels):
        for target, recipient in _targets(channel, customer, customer_id, endpoints):
            row = {"id": new_event_id("ntf"), **base, "channel": channel, "target": target, "recipient": recipient}
            status, reason, deliver_at = _decide(
                row, prefs, channel, row["category"], recipient, request.urgent, now, request.digest, session
            )
            if status in (m.PENDING, m.DIGEST):
                status, reason = _render_into(row, renderer, request, channel, status)
            # `_decide` gives a reason only with SKIPPED or FAILED, as does the rendering.
            row["status"], row["error"] = status, reason
            row["next_attempt_at"] = deliver_at or now
            rows.append(row)
    return rows


_SNAPSHOT_FIELDS = ("id", "name", "email", "phone", "locale", "timezone")
# The customer field a channel's recipient is (webhooks: the endpoints; others: the customer).
_ADDRESS_FIELDS = {"email": "email", "sms": "phone"}


def _targets(
    channel: str, customer: Mapping[str, Any], customer_id: str, endpoints: Sequence[WebhookEndpoint]
) -> list[tuple[str, str | None]]:
    """(target, recipient) of each message a channel sends for one request."""
    if channel == "webhook":
        return [(e.id, e.url) for e in endpoints] or [("", None)]
    field = _ADDRESS_FIELDS.get(channel)
    return [("", customer.get(field) if field else customer_id)]


def _render_into(
    row: dict[str, Any], renderer: Renderer, request: NotifyRequest, channel: str, status: str
) -> tuple[str, str | None]:
    """Render a message due (or gathered in a digest) into its row: its status and error
    after rendering (FAILED with the template's error)."""
    try:
        rendered = renderer.render(request.template, channel, request.data, row["locale"], request.customer)
    except TemplateError as exc:
        return m.FAILED, str(exc)
    if channel == "email" and request.attachments:
        rendered = replace(rendered, attachments=request.attachments)
    row["content"] = rendered.to_dict()
    row["locale"] = rendered.locale
    return status, None


def _insert_many(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert the rows whose dedup key is new, in one statement; the ids inserted."""
    if not rows:
        return set()
    stmt = _INSERT_IGNORE.get(session.get_bind().dialect.name, _INSERT_IGNORE["sqlite"])
    note_due(session, rows)
    if len(rows) == 1:
        return {r.id for r in session.execute(stmt, rows[0])}
    return {r.id for r in session.execute(stmt, list(rows))}


def _recorded(session: Session, rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str, str, str], tuple[str, str]]:
    """The notifications already recorded under the dedup keys of `rows`."""
    if not rows:
        return {}
    n = NOTIFICATIONS.c
    keys = list({(r["rule_id"], r["event_id"], r["channel"], r["target"]) for r in rows})
    found = session.execute(
        select(n.rule_id, n.event_id, n.channel, n.target, n.id, n.status).where(
            tuple_(n.rule_id, n.event_id, n.channel, n.target).in_(keys)
        )
    )
    return {(r.rule_id, r.event_id, r.channel, r.target): (r.id, r.status) for r in found}


def _decide(
    row: dict[str, Any],
    prefs: Preferences,
    channel: str,
    category: str,
    recipient: str | None,
    urgent: bool,
    now: datetime,
    digest: timedelta | None,
    session: Session,
) -> tuple[str, str | None, datetime | None]:
    if not prefs.allows(channel, category):
        what, name = ("channel", channel) if channel in prefs.opted_out_channels else ("category", category)
        return m.SKIPPED, f"customer opted out of {what} {name}", None
    if channel == "webhook" and recipient is None:
        return m.SKIPPED, "customer has no webhook endpoint", None
    if not recipient:
        missing = {"email": "email address", "sms": "phone number"}.get(channel, "address")
        return m.FAILED, f"customer has no {missing}", None
    if digest is not None and channel != "webhook":
        key = f"{row['customer_id']}|{channel}|{row['template']}"
        row["digest_key"] = key
        window_end = session.scalar(
            select(func.min(Notification.next_attempt_at)).where(
                Notification.digest_key == key, Notification.status == m.DIGEST
            )
        )
        return m.DIGEST, None, window_end or now + digest
    if not urgent and channel in QUIET_HOURS_CHANNELS:
        until = quiet_hours_end(now, prefs, row["customer"].get("timezone"))
        if until is not None:
            return m.PENDING, None, until
    return m.PENDING, None, None
