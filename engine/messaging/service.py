"""Recording and delivering notifications.

`notify` runs in the caller's transaction: it renders each channel's message and records it
(or records why it will not go out). Nothing is sent there, so a rolled-back caller sends
nothing. `deliver_pending` later claims the due notifications, sends them, and marks each
sent, retried with backoff, or failed, in its own short transactions:

    notify (caller's tx) -> pending -> [claim tx] sending -> send -> [result tx] sent
                                                                 \\-> pending (retry) / dead

A run that dies between sending and recording leaves a `sending` row whose lease expires;
the next run sends it again (at least once). Email keeps its Message-ID and webhooks their
`Billing-Webhook-Id` across such a resend so receivers can drop the copy; in-app writes the
feed row in the result transaction itself, so it is exactly once.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from queue import Empty, SimpleQueue
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    Dialect,
    Table,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.clock import Clock, SystemClock, ensure_aware
from engine.messaging import models as m
from engine.messaging.channels import (
    Channel,
    Channels,
    Outgoing,
    PermanentError,
    TransientError,
    check_webhook_url,
)
from engine.messaging.models import InAppMessage, Notification, NotificationPreference
from engine.messaging.models import WebhookEndpoint as WebhookEndpointRow
from engine.messaging.templates import CHANNELS, Rendered, Renderer, TemplateError
from engine.store import Database, add_event, add_events, new_event_id

log = logging.getLogger(__name__)

# Core tables for the hot paths (no ORM unit of work per message).
NOTIFICATIONS: Table = Notification.__table__  # type: ignore[assignment]
PREFERENCES: Table = NotificationPreference.__table__  # type: ignore[assignment]
_SELECT_PREFS = select(PREFERENCES).where(PREFERENCES.c.customer_id == bindparam("cid"))

# Categories a customer cannot turn off: they carry money or the state of the account.
TRANSACTIONAL_CATEGORIES = frozenset({"invoices", "payments", "account", "security"})

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

# Quiet hours hold back what would wake someone; a feed entry or a webhook does not.
QUIET_HOURS_CHANNELS = frozenset({"email", "sms"})
DEFAULT_LEASE = timedelta(minutes=5)


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotifyResult:
    channel: str
    status: str  # pending | skipped | failed | digest | duplicate
    notification_id: str | None
    reason: str | None = None
    deliver_at: datetime | None = None
    target: str = ""


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0  # permanent failures
    dead: int = 0  # dead-lettered after the last attempt
    digests: int = 0  # digest notifications created
    errors: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return self.sent + self.retried + self.failed + self.dead


# -- preferences ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Preferences:
    customer_id: str
    opted_out_channels: frozenset[str] = frozenset()
    opted_out_categories: frozenset[str] = frozenset()
    quiet_hours: tuple[time, time] | None = None
    timezone: str | None = None

    def allows(self, channel: str, category: str) -> bool:
        if category in TRANSACTIONAL_CATEGORIES:
            return True
        return channel not in self.opted_out_channels and \
            category not in self.opted_out_categories


def _parse_hhmm(text: str, what: str) -> time:
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError as exc:
        raise ValueError(f"{what}: {text!r} is not HH:MM") from exc


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _prefs_from_row(customer_id: str, row: NotificationPreference | None) -> Preferences:
    # `row` is the ORM object or a Core row with the same attribute names.
    if row is None:
        return Preferences(customer_id)
    quiet = None
    if row.quiet_start and row.quiet_end:
        quiet = (_parse_hhmm(row.quiet_start, "quiet_start"), _parse_hhmm(row.quiet_end,
                                                                          "quiet_end"))
    return Preferences(customer_id, frozenset(row.opted_out_channels or ()),
                       frozenset(row.opted_out_categories or ()), quiet, row.timezone)


def get_preferences(session: Session, customer_id: str) -> Preferences:
    row = session.execute(_SELECT_PREFS, {"cid": customer_id}).first()
    return _prefs_from_row(customer_id, row)  # type: ignore[arg-type]


_UNSET: Any = object()


def set_preferences(
    session: Session,
    customer_id: str,
    *,
    now: datetime,
    opted_out_channels: Sequence[str] | None = None,
    opted_out_categories: Sequence[str] | None = None,
    quiet_hours: tuple[str, str] | None = _UNSET,
    timezone: str | None = _UNSET,
) -> Preferences:
    """Change a customer's preferences; arguments left out stay as they are.

    Raises ValueError for an unknown channel or time zone, a malformed quiet-hours time,
    or an opt-out of a transactional category (invoices, payments, account, security)."""
    row = session.get(NotificationPreference, customer_id)
    if row is None:
        row = NotificationPreference(customer_id=customer_id, opted_out_channels=[],
                                     opted_out_categories=[], updated_at=now)
        session.add(row)
    if opted_out_channels is not None:
        unknown = set(opted_out_channels) - set(CHANNELS)
        if unknown:
            raise ValueError(f"opted_out_channels: unknown channel(s) {sorted(unknown)}")
        row.opted_out_channels = sorted(set(opted_out_channels))
    if opted_out_categories is not None:
        locked = set(opted_out_categories) & TRANSACTIONAL_CATEGORIES
        if locked:
            raise ValueError(f"opted_out_categories: {sorted(locked)} are transactional "
                             "and cannot be turned off")
        row.opted_out_categories = sorted(set(opted_out_categories))
    if quiet_hours is not _UNSET:
        if quiet_hours is None:
            row.quiet_start = row.quiet_end = None
        else:
            start, end = quiet_hours
            _parse_hhmm(start, "quiet_hours start")
            _parse_hhmm(end, "quiet_hours end")
            row.quiet_start, row.quiet_end = start, end
    if timezone is not _UNSET:
        if timezone is not None:
            try:
                ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"timezone: unknown time zone {timezone!r}") from exc
        row.timezone = timezone
    row.updated_at = now
    session.flush()
    return _prefs_from_row(customer_id, row)


def quiet_hours_end(now: datetime, prefs: Preferences, customer_tz: str | None) -> \
        datetime | None:
    """When the customer's quiet hours end, if `now` falls inside them; else None."""
    if prefs.quiet_hours is None:
        return None
    start, end = prefs.quiet_hours
    if start == end:
        return None
    tz = _zone(prefs.timezone or customer_tz)
    local = now.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= t < end
        end_day = local.date()
    else:  # spans midnight, e.g. 22:00-07:00
        inside = t >= start or t < end
        end_day = local.date() + timedelta(days=1) if t >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=tz).astimezone(UTC)


# -- webhook endpoints ---------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    customer_id: str
    url: str
    secret: str
    enabled: bool


def add_webhook_endpoint(session: Session, customer_id: str, url: str, *, now: datetime,
                         secret: str | None = None) -> WebhookEndpoint:
    """Register a URL for a customer's notifications. The secret (generated unless given)
    signs every delivery; hand it to the customer once."""
    try:
        check_webhook_url(url, allow_private=True)
    except PermanentError as exc:
        raise ValueError(str(exc)) from exc
    row = WebhookEndpointRow(id=new_event_id("whe"), customer_id=customer_id, url=url,
                             secret=secret or "whsec_" + secrets.token_urlsafe(32),
                             enabled=True, created_at=now)
    session.add(row)
    session.flush()
    return WebhookEndpoint(row.id, row.customer_id, row.url, row.secret, row.enabled)


def list_webhook_endpoints(session: Session, customer_id: str) -> list[WebhookEndpoint]:
    rows = session.scalars(select(WebhookEndpointRow).where(
        WebhookEndpointRow.customer_id == customer_id).order_by(WebhookEndpointRow.created_at))
    return [WebhookEndpoint(r.id, r.customer_id, r.url, r.secret, r.enabled) for r in rows]


def disable_webhook_endpoint(session: Session, endpoint_id: str) -> bool:
    result = session.execute(update(WebhookEndpointRow).where(
        WebhookEndpointRow.id == endpoint_id).values(enabled=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


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


_INSERT_IGNORE: dict[str, Any] = {
    "postgresql": pg_insert(NOTIFICATIONS).on_conflict_do_nothing(
        constraint="uq_notification_dedup").returning(NOTIFICATIONS.c.id),
    "sqlite": sqlite_insert(NOTIFICATIONS).on_conflict_do_nothing().returning(
        NOTIFICATIONS.c.id),
}


def _failed_event(session: Session, row: Mapping[str, Any], now: datetime, error: str,
                  dead: bool = False) -> None:
    add_event(session, "notification.failed", row["customer_id"], {
        "notification_id": row["id"], "template": row["template"], "channel": row["channel"],
        "category": row["category"], "rule_id": row["rule_id"] or None,
        "event_id": row["event_id"], "attempts": row.get("attempts", 0), "error": error,
        "dead_lettered": dead,
    }, time=now)


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
    request = NotifyRequest(customer, template, channels, data, event_id, rule_id, category,
                            urgent, digest, tuple({str(k): str(v) for k, v in a.items()}
                                                  for a in attachments))
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
        part = customer_ids[start:start + 1000]
        for row in session.execute(select(PREFERENCES).where(PREFERENCES.c.customer_id.in_(part))):
            out[row.customer_id] = _prefs_from_row(row.customer_id, row)  # type: ignore[arg-type]
    return {cid: out.get(cid) or Preferences(cid) for cid in customer_ids}


def _endpoints_of(session: Session, customer_ids: Sequence[str]) -> dict[str, list[WebhookEndpoint]]:
    out: dict[str, list[WebhookEndpoint]] = {cid: [] for cid in customer_ids}
    if customer_ids:
        rows = session.scalars(select(WebhookEndpointRow).where(
            WebhookEndpointRow.customer_id.in_(list(customer_ids)),
            WebhookEndpointRow.enabled.is_(True)).order_by(WebhookEndpointRow.created_at))
        for r in rows:
            out[r.customer_id].append(WebhookEndpoint(r.id, r.customer_id, r.url, r.secret, r.enabled))
    return out


def notify_many(session: Session, requests: Sequence[NotifyRequest], *, now: datetime,
                renderer: Renderer | None = None) -> list[list[NotifyResult]]:
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
    endpoints = _endpoints_of(session, list(dict.fromkeys(
        cid for cid, r in zip(customer_ids, requests, strict=True) if "webhook" in r.channels)))
    planned: list[list[dict[str, Any]]] = []
    for customer_id, request in zip(customer_ids, requests, strict=True):
        planned.append(_plan(session, request, customer_id, prefs[customer_id],
                             endpoints.get(customer_id, []), renderer, now))
    rows = [row for rows_ in planned for row in rows_]
    inserted = _insert_many(session, rows)
    return [_results(session, rows_, inserted, now) for rows_ in planned]


def _results(session: Session, rows: Sequence[dict[str, Any]], inserted: set[str],
             now: datetime) -> list[NotifyResult]:
    seen = _recorded(session, [r for r in rows if r["id"] not in inserted])
    out: list[NotifyResult] = []
    for row in rows:
        if row["id"] not in inserted:
            # Recorded before (a redelivered event): nothing new, no event.
            found = seen.get((row["rule_id"], row["event_id"], row["channel"], row["target"]))
            out.append(NotifyResult(
                row["channel"], "duplicate", found[0] if found else None,
                f"already recorded ({found[1] if found else 'concurrently'})",
                target=row["target"]))
            continue
        if row["status"] == m.FAILED:
            log.warning("notification %s failed: %s", row["id"], row["error"])
            _failed_event(session, row, now, row["error"] or "failed")
        out.append(NotifyResult(row["channel"], row["status"], row["id"], row["error"],
                                row["next_attempt_at"], row["target"]))
    return out


_FAST_INSERTS: dict[tuple[str, tuple[str, ...], int], Any] = {}


def _fast_insert(dialect: str, columns: tuple[str, ...], n: int) -> Any:
    """INSERT n rows unless the customer has preferences, ignoring duplicates; built once
    per shape (building it per message cost as much as its round trip)."""
    key = (dialect, columns, n)
    stmt = _FAST_INSERTS.get(key)
    if stmt is None:
        no_prefs = ~exists().where(PREFERENCES.c.customer_id == bindparam("fast_cid"))
        selects = [select(*[bindparam(f"{c}_{i}", type_=NOTIFICATIONS.c[c].type).label(c)
                            for c in columns]).where(no_prefs) for i in range(n)]
        source = selects[0] if n == 1 else union_all(*selects)
        if dialect == "postgresql":
            stmt = pg_insert(NOTIFICATIONS).from_select(list(columns), source) \
                .on_conflict_do_nothing(constraint="uq_notification_dedup")
        else:
            stmt = sqlite_insert(NOTIFICATIONS).from_select(list(columns), source) \
                .on_conflict_do_nothing()
        stmt = _FAST_INSERTS[key] = stmt.returning(NOTIFICATIONS.c.id)
    return stmt


_FAST_SQL: dict[tuple[tuple[str, ...], int], tuple[str, list[tuple[int, str, bool]]]] = {}
_JSON_COLUMNS = frozenset({"customer", "content"})
_NAMED_PARAM = re.compile(r"%\((\w+)\)s")


def _fast_insert_pg(session: Session, dialect: Dialect, columns: tuple[str, ...],
                    rows: Sequence[Mapping[str, Any]], customer_id: str) -> set[str]:
    """`_fast_insert` on PostgreSQL through the driver's cursor, in the session's own
    transaction: SQLAlchemy's per-execution work (cache key, parameter processing) cost
    twice the driver's. The SQL is SQLAlchemy's, compiled once per shape with positional
    parameters; the values are converted as its types would (JSON as text, None as JSON
    null; aware datetimes as they are)."""
    key = (columns, len(rows))
    cached = _FAST_SQL.get(key)
    if cached is None:
        named = str(_fast_insert("postgresql", columns, len(rows)).compile(dialect=dialect))
        where = {f"{c}_{i}": (i, c, c in _JSON_COLUMNS)
                 for i in range(len(rows)) for c in columns} | {"fast_cid": (-1, "", False)}
        order = [where[name] for name in _NAMED_PARAM.findall(named)]
        cached = _FAST_SQL[key] = (_NAMED_PARAM.sub("%s", named), order)
    sql, order = cached
    params = [customer_id if i < 0 else json.dumps(rows[i][c]) if is_json else rows[i][c]
              for i, c, is_json in order]
    if session.autoflush:
        session.flush()  # what session.execute would do: the NOT EXISTS must see it
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute(sql, params)
        return {str(r[0]) for r in cursor.fetchall()}


def _notify_one_fast(session: Session, request: NotifyRequest, customer_id: str,
                     renderer: Renderer, now: datetime) -> list[NotifyResult] | None:
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


def _plan(session: Session, request: NotifyRequest, customer_id: str, prefs: Preferences,
          endpoints: Sequence[WebhookEndpoint], renderer: Renderer, now: datetime) \
        -> list[dict[str, Any]]:
    """The notification rows of one request: decided (preferences, quiet hours, digest) and
    rendered, not yet written."""
    customer, template = request.customer, request.template
    category = request.category or TEMPLATE_CATEGORIES.get(template, "general")
    locale = str(customer.get("locale") or "en")
    snapshot = _jsonable({k: customer[k] for k in ("id", "name", "email", "phone", "locale",
                                                   "timezone") if k in customer})
    rows: list[dict[str, Any]] = []
    for channel in dict.fromkeys(request.channels):
        targets: list[tuple[str, str | None]]
        if channel == "webhook":
            targets = [(e.id, e.url) for e in endpoints] or [("", None)]
        elif channel == "email":
            targets = [("", customer.get("email"))]
        elif channel == "sms":
            targets = [("", customer.get("phone"))]
        else:
            targets = [("", customer_id)]
        for target, recipient in targets:
            row: dict[str, Any] = {
                "id": new_event_id("ntf"), "customer_id": customer_id, "template": template,
                "channel": channel, "category": category, "rule_id": request.rule_id or "",
                "event_id": request.event_id, "target": target, "recipient": recipient,
                "locale": locale, "urgent": request.urgent, "customer": snapshot,
                "attempts": 0, "next_attempt_at": now, "created_at": now, "updated_at": now,
                "content": None, "error": None, "digest_key": None,
            }
            status, reason, deliver_at = _decide(row, prefs, channel, category, recipient,
                                                 request.urgent, now, request.digest, session)
            if status == m.PENDING or status == m.DIGEST:
                try:
                    rendered = renderer.render(template, channel, request.data, locale, customer)
                except TemplateError as exc:
                    status, reason = m.FAILED, str(exc)
                else:
                    if channel == "email" and request.attachments:
                        rendered = replace(rendered, attachments=request.attachments)
                    row["content"] = rendered.to_dict()
                    row["locale"] = rendered.locale
            row["status"] = status
            row["error"] = reason if status in (m.FAILED, m.SKIPPED) else None
            if deliver_at is not None:
                row["next_attempt_at"] = deliver_at
            rows.append(row)
    return rows


def _insert_many(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert the rows whose dedup key is new, in one statement; the ids inserted."""
    if not rows:
        return set()
    stmt = _INSERT_IGNORE.get(session.get_bind().dialect.name, _INSERT_IGNORE["sqlite"])
    if len(rows) == 1:
        return {r.id for r in session.execute(stmt, rows[0])}
    return {r.id for r in session.execute(stmt, list(rows))}


def _recorded(session: Session, rows: Sequence[dict[str, Any]]) \
        -> dict[tuple[str, str, str, str], tuple[str, str]]:
    """The notifications already recorded under the dedup keys of `rows`."""
    if not rows:
        return {}
    n = NOTIFICATIONS.c
    keys = list({(r["rule_id"], r["event_id"], r["channel"], r["target"]) for r in rows})
    found = session.execute(select(n.rule_id, n.event_id, n.channel, n.target, n.id, n.status)
                            .where(tuple_(n.rule_id, n.event_id, n.channel, n.target).in_(keys)))
    return {(r.rule_id, r.event_id, r.channel, r.target): (r.id, r.status) for r in found}


def _decide(row: dict[str, Any], prefs: Preferences, channel: str, category: str,
            recipient: str | None, urgent: bool, now: datetime, digest: timedelta | None,
            session: Session) -> tuple[str, str | None, datetime | None]:
    if not prefs.allows(channel, category):
        what = "channel" if channel in prefs.opted_out_channels else "category"
        return m.SKIPPED, f"customer opted out of {what} " \
            f"{channel if what == 'channel' else category}", None
    if channel == "webhook" and recipient is None:
        return m.SKIPPED, "customer has no webhook endpoint", None
    if not recipient:
        missing = {"email": "email address", "sms": "phone number"}.get(channel, "address")
        return m.FAILED, f"customer has no {missing}", None
    if digest is not None and channel != "webhook":
        key = f"{row['customer_id']}|{channel}|{row['template']}"
        row["digest_key"] = key
        window_end = session.scalar(select(func.min(Notification.next_attempt_at)).where(
            Notification.digest_key == key, Notification.status == m.DIGEST))
        return m.DIGEST, None, window_end or now + digest
    if not urgent and channel in QUIET_HOURS_CHANNELS:
        until = quiet_hours_end(now, prefs, row["customer"].get("timezone"))
        if until is not None:
            return m.PENDING, None, until
    return m.PENDING, None, None


# -- digests -------------------------------------------------------------------------------


def flush_digests(session: Session, *, now: datetime, renderer: Renderer | None = None) -> int:
    """Close every digest window that has ended: one waiting message goes out as itself,
    several go out as one `digest` message. Returns how many digest messages were made."""
    rows = session.scalars(select(Notification).where(
        Notification.status == m.DIGEST, Notification.next_attempt_at <= now
    ).order_by(Notification.digest_key, Notification.created_at, Notification.id)).all()
    groups: dict[str, list[Notification]] = defaultdict(list)
    for row in rows:
        groups[row.digest_key or row.id].append(row)
    if not groups:
        return 0
    renderer = renderer or Renderer()  # the caller's (its system's) templates, or its own
    made = 0
    for items in groups.values():
        first = items[0]
        prefs = get_preferences(session, first.customer_id)
        deliver_at = now
        if first.channel in QUIET_HOURS_CHANNELS and not any(i.urgent for i in items):
            deliver_at = quiet_hours_end(now, prefs, (first.customer or {}).get("timezone")) \
                or now
        if len(items) == 1:
            first.status, first.next_attempt_at, first.updated_at = m.PENDING, deliver_at, now
            continue
        summaries = [{"template": i.template,
                      "summary": Rendered.from_dict(i.content).summary() if i.content
                      else i.template, "time": i.created_at.isoformat()} for i in items]
        digest_row: dict[str, Any] = {
            "id": new_event_id("ntf"), "customer_id": first.customer_id, "template": "digest",
            "channel": first.channel, "category": first.category, "rule_id": "digest",
            "event_id": first.id, "target": first.target, "recipient": first.recipient,
            "locale": first.locale, "urgent": False, "customer": first.customer,
            "attempts": 0, "next_attempt_at": deliver_at, "created_at": now,
            "updated_at": now, "digest_key": None, "error": None, "content": None,
            "status": m.PENDING,
        }
        try:
            rendered = renderer.render("digest", first.channel, {"items": summaries},
                                       first.locale, first.customer or {"id": first.customer_id})
            digest_row["content"] = rendered.to_dict()
        except TemplateError as exc:
            digest_row["status"], digest_row["error"] = m.FAILED, str(exc)
            _failed_event(session, digest_row, now, str(exc))
        session.execute(insert(Notification).values(**digest_row))
        for item in items:
            item.status, item.digest_id, item.updated_at = m.DIGESTED, digest_row["id"], now
        made += 1
    session.flush()
    return made


# -- delivery ------------------------------------------------------------------------------


@dataclass
class _Claimed:
    id: str
    customer_id: str
    channel: str
    template: str
    category: str
    rule_id: str
    event_id: str
    target: str
    recipient: str | None
    content: dict[str, Any] | None
    attempts: int
    created_at: datetime


_CLAIM_COLUMNS = [NOTIFICATIONS.c[name] for name in (
    "id", "customer_id", "channel", "template", "category", "rule_id", "event_id", "target",
    "recipient", "content", "attempts", "created_at")]


def _no_fsync_wait(db: Database, session: Session) -> None:
    """PostgreSQL: this transaction's commit does not wait for its WAL flush. Safe for the
    claim and the marks: a crash that loses them leaves the rows claimable again, so they are
    sent again (at least once, same Message-ID / webhook id; in-app rows go with the marks),
    which is the same promise as a crash before the commit. It saves a disk flush per group."""
    if db.is_postgres:
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))


def _claim(db: Database, channel_names: Sequence[str], now: datetime, limit: int,
           lease: timedelta, wall_now: datetime) -> list[_Claimed]:
    """Take up to `limit` due notifications: pending ones whose time (`now`, the engine's
    clock) has come, and ones a dead run left `sending` past their lease. Each claim bumps
    `attempts`.

    The lease is wall-clock time (`wall_now`), never the engine's clock: a test clock that
    jumps days ahead must not make a live run's claim look expired to another process. And
    the claim is one UPDATE that re-checks "still claimable" per row and RETURNs what it
    took, so of two runs that picked the same candidates only the one whose UPDATE won a
    row sends it (PostgreSQL re-evaluates the WHERE after the other's commit; SQLite
    serialises writers)."""
    n = NOTIFICATIONS.c
    claimable = or_(and_(n.status == m.PENDING, n.next_attempt_at <= now),
                    and_(n.status == m.SENDING, n.lease_until <= wall_now))
    with db.session() as session:
        _no_fsync_wait(db, session)
        ids: list[str] = []
        for status, when, due in ((m.SENDING, n.lease_until, wall_now),
                                  (m.PENDING, n.next_attempt_at, now)):
            if len(ids) >= limit:
                break
            stmt = (select(n.id)
                    .where(n.status == status, when <= due, n.channel.in_(channel_names))
                    .order_by(when, n.id).limit(limit - len(ids)))
            if db.is_postgres:
                stmt = stmt.with_for_update(skip_locked=True)
            ids.extend(session.scalars(stmt))
        rows: list[Any] = []
        for start in range(0, len(ids), 500):
            rows.extend(session.execute(
                update(NOTIFICATIONS)
                .where(n.id.in_(ids[start:start + 500]), claimable)
                .values(status=m.SENDING, lease_until=wall_now + lease,
                        attempts=n.attempts + 1, updated_at=now)
                .returning(*_CLAIM_COLUMNS)).all())
        order = {nid: i for i, nid in enumerate(ids)}
        rows.sort(key=lambda r: order[r.id])
        # RETURNING gives the row after the update: `attempts` is this claim's attempt.
        return [_Claimed(r.id, r.customer_id, r.channel, r.template, r.category, r.rule_id,
                         r.event_id, r.target, r.recipient, r.content, r.attempts,
                         r.created_at) for r in rows]


def _secrets(db: Database, claimed: Sequence[_Claimed]) -> dict[str, str]:
    ids = {c.target for c in claimed if c.channel == "webhook" and c.target}
    if not ids:
        return {}
    with db.session() as session:
        return {r.id: r.secret for r in session.scalars(select(WebhookEndpointRow).where(
            WebhookEndpointRow.id.in_(ids), WebhookEndpointRow.enabled.is_(True)))}


def _event_props(c: _Claimed) -> dict[str, Any]:
    return {"notification_id": c.id, "template": c.template, "channel": c.channel,
            "category": c.category, "rule_id": c.rule_id or None, "event_id": c.event_id,
            "attempts": c.attempts}


def deliveries_in_flight(db: Database) -> int:
    """Notifications another delivery run has claimed and not recorded yet (`sending`): a
    test clock's advance waits for them, so it returns with its messages delivered."""
    with db.read_session() as session:
        return int(session.scalar(select(func.count()).where(m.Notification.status == m.SENDING)) or 0)


def deliver_pending(
    db: Database,
    channels: Channels,
    *,
    now: datetime,
    limit: int = 1000,
    batch: int = 200,
    record_every: int = 20,
    concurrency: int = 4,
    lease: timedelta = DEFAULT_LEASE,
    renderer: Renderer | None = None,
    wall: Clock | None = None,
) -> DeliveryReport:
    """Send what is due at `now` (at most `limit` messages), claiming `batch` at a time.

    Up to `concurrency` senders run at once, each taking the claimed messages one after the
    other over its own kept-open connection, because a remote server's round trips, not this
    process, bound a single connection. After its send, each message is marked sent (with
    `notification.sent`), pending again with exponential backoff after a transient error,
    or failed / dead-lettered (with `notification.failed`). Each sender commits its marks
    together for up to `record_every` sends: a crash before that commit resends at most
    those (and the ones in flight), with the same Message-ID / webhook id, and never loses
    one. In-app messages are written in the marking transaction itself (one per claimed
    batch: nothing leaves the database before it commits), so they are never duplicated.
    Digest windows that ended are closed first. Channels that are not configured keep their
    messages pending. `lease` counts on `wall` (real time unless a test gives its own clock),
    not on `now`: several runs at once (a worker and the scheduler) each send only what
    their own claim won, however the engine's test clock jumps."""
    wall_clock = wall or SystemClock()
    now = ensure_aware(now, "now")
    report = DeliveryReport()
    with db.session() as session:
        report.digests = flush_digests(session, now=now, renderer=renderer)
    names = channels.names()
    remaining = limit
    seen: set[str] = set()
    lock = threading.Lock()
    every = max(record_every, 1)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="notify-send") \
        if concurrency > 1 else None
    try:
        while remaining > 0:
            claimed = [c for c in _claim(db, names, now, min(batch, remaining), lease,
                                          ensure_aware(wall_clock.now(), "wall"))
                       if c.id not in seen]
            if not claimed:
                break
            remaining -= len(claimed)
            seen.update(c.id for c in claimed)
            secrets_by_endpoint = _secrets(db, claimed)
            local: list[_Outcome] = []
            queue: SimpleQueue[tuple[Channel, _Claimed, str | None]] = SimpleQueue()
            senders = 0
            for c in claimed:
                channel = channels.require(c.channel)
                if channel.transactional:
                    local.append(_send_one(channel, c, None))
                else:
                    queue.put((channel, c, secrets_by_endpoint.get(c.target)))
                    senders += 1
            if local:
                _record(db, local, now, report, lock)
            senders = min(senders, concurrency)
            if pool is None or senders <= 1:
                if senders:
                    _send_queue(db, queue, now, every, report, lock)
                continue
            futures = [pool.submit(_send_queue, db, queue, now, every, report, lock)
                       for _ in range(senders)]
            wait(futures)
            for future in futures:
                future.result()  # a sender that could not record stops the run
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return report


def _send_queue(db: Database, queue: SimpleQueue[tuple[Channel, _Claimed, str | None]],
                now: datetime, every: int, report: DeliveryReport, lock: threading.Lock) -> None:
    """One sender: take messages until the queue is empty, send each, and commit the marks
    of every `every` sends together (the connection stays with this sender meanwhile)."""
    outcomes: list[_Outcome] = []
    while True:
        try:
            channel, c, secret = queue.get_nowait()
        except Empty:
            break
        outcomes.append(_send_one(channel, c, secret))
        if len(outcomes) >= every:
            _record(db, outcomes, now, report, lock)
            outcomes = []
    if outcomes:
        _record(db, outcomes, now, report, lock)


@dataclass
class _Outcome:
    claimed: _Claimed
    channel: Channel
    message: Outgoing | None
    error: str | None = None
    permanent: bool = False
    provider_id: str | None = None


def _send_one(channel: Channel, c: _Claimed, secret: str | None) -> _Outcome:
    """Build the message and, unless the channel writes to the database, send it."""
    if c.content is None:
        return _Outcome(c, channel, None, "nothing rendered to send", permanent=True)
    message = Outgoing(c.id, c.customer_id, c.channel, c.template, c.category, c.recipient,
                       Rendered.from_dict(c.content), c.created_at, c.attempts, secret)
    out = _Outcome(c, channel, message)
    if not channel.transactional:
        try:
            out.provider_id = channel.send(message)
        except PermanentError as exc:
            out.error, out.permanent = str(exc), True
        except TransientError as exc:
            out.error = str(exc)
        except Exception as exc:  # a bug in a provider must not stop the run
            log.exception("channel %s crashed on %s", c.channel, c.id)
            out.error = f"{type(exc).__name__}: {exc}"
    return out


def _mark(values: dict[str, Any]) -> Any:
    """UPDATE of one claimed row, only while this run's claim holds: a row reclaimed after
    its lease expired belongs to the other run."""
    n = NOTIFICATIONS.c
    return update(NOTIFICATIONS).where(
        n.id == bindparam("nid"), n.status == m.SENDING, n.attempts == bindparam("att")
    ).values(**values)


_SET_PROVIDER_ID = update(NOTIFICATIONS).where(
    NOTIFICATIONS.c.id == bindparam("nid")).values(provider_id=bindparam("pid"))
_MARK_RETRY = _mark({"status": m.PENDING, "next_attempt_at": bindparam("next"),
                     "updated_at": bindparam("now"), "lease_until": None,
                     "error": bindparam("err")})
_MARK_FINAL = _mark({"status": bindparam("st"), "updated_at": bindparam("now"),
                     "lease_until": None, "error": bindparam("err")})


def _record(db: Database, outcomes: Sequence[_Outcome], now: datetime,
            total: DeliveryReport, lock: threading.Lock) -> None:
    """Mark a group of sends in one transaction; counted in `total` once it committed."""
    n = NOTIFICATIONS.c
    events: list[tuple[str, str | None, dict[str, Any], datetime]] = []
    report = DeliveryReport()
    with db.session() as session:
        _no_fsync_wait(db, session)
        ok = [o for o in outcomes if o.error is None]
        if ok:
            # One statement marks every successful send of the group, but only rows whose
            # claim is still this run's (same attempt, still sending).
            marked = set(session.scalars(
                update(NOTIFICATIONS)
                .where(tuple_(n.id, n.attempts).in_([(o.claimed.id, o.claimed.attempts)
                                                     for o in ok]), n.status == m.SENDING)
                .values(status=m.SENT, sent_at=now, updated_at=now, lease_until=None,
                        error=None)
                .returning(n.id)))
            in_db: dict[str, tuple[Channel, list[Outgoing]]] = {}
            # The providers' ids in one executemany (one round trip), not one UPDATE each.
            provider_ids = [{"nid": o.claimed.id, "pid": o.provider_id} for o in ok
                            if o.claimed.id in marked and o.provider_id is not None]
            if provider_ids:
                session.execute(_SET_PROVIDER_ID, provider_ids)
            for out in ok:
                c = out.claimed
                if c.id not in marked:
                    continue
                if out.channel.transactional and out.message is not None:
                    in_db.setdefault(out.channel.name, (out.channel, []))[1].append(out.message)
                events.append(("notification.sent", c.customer_id, _event_props(c), now))
                report.sent += 1
            # In-app: the feed rows commit with the marks, or neither does (an error here rolls
            # the group back; its rows stay claimed until their lease ends, then go again).
            for channel, messages in in_db.values():
                send_many = getattr(channel, "send_many", None)
                if send_many is not None:
                    send_many(messages, session)
                else:
                    for message in messages:
                        channel.send(message, session)
        for out in outcomes:
            if out.error is None:
                continue
            c, policy = out.claimed, out.channel.retry
            key = {"nid": c.id, "att": c.attempts, "now": now, "err": out.error}
            report.errors.append(f"{c.id}: {out.error}")
            if not out.permanent and c.attempts < policy.max_attempts:
                session.execute(_MARK_RETRY, key | {"next": now + policy.delay(c.attempts)})
                report.retried += 1
                continue
            status = m.FAILED if out.permanent else m.DEAD
            done = session.execute(_MARK_FINAL, key | {"st": status})
            if done.rowcount:  # type: ignore[attr-defined]
                props = _event_props(c) | {"error": out.error, "dead_lettered": not out.permanent}
                events.append(("notification.failed", c.customer_id, props, now))
            if out.permanent:
                report.failed += 1
            else:
                report.dead += 1
        # One bulk INSERT, not an ORM object per event.
        add_events(session, events)
    with lock:
        total.sent += report.sent
        total.retried += report.retried
        total.failed += report.failed
        total.dead += report.dead
        total.errors.extend(report.errors)


# -- dead letters and queries --------------------------------------------------------------


def _notification_dict(row: Notification) -> dict[str, Any]:
    return {"id": row.id, "customer_id": row.customer_id, "template": row.template,
            "channel": row.channel, "category": row.category, "rule_id": row.rule_id or None,
            "event_id": row.event_id, "target": row.target or None, "recipient": row.recipient,
            "status": row.status, "attempts": row.attempts, "error": row.error,
            "next_attempt_at": row.next_attempt_at, "created_at": row.created_at,
            "sent_at": row.sent_at, "digest_id": row.digest_id}


def list_notifications(session: Session, *, customer_id: str | None = None,
                       status: str | None = None, channel: str | None = None,
                       limit: int = 100) -> list[dict[str, Any]]:
    """Recorded notifications, newest first (for the console and the API)."""
    stmt = select(Notification).order_by(Notification.created_at.desc(),
                                         Notification.id.desc()).limit(limit)
    if customer_id is not None:
        stmt = stmt.where(Notification.customer_id == customer_id)
    if status is not None:
        stmt = stmt.where(Notification.status == status)
    if channel is not None:
        stmt = stmt.where(Notification.channel == channel)
    return [_notification_dict(r) for r in session.scalars(stmt)]


def list_dead_letters(session: Session, *, limit: int = 100) -> list[dict[str, Any]]:
    return list_notifications(session, status=m.DEAD, limit=limit)


def retry_dead_letter(session: Session, notification_id: str, *, now: datetime) -> bool:
    """Put a dead-lettered notification back in the queue with fresh attempts."""
    result = session.execute(update(Notification).where(
        Notification.id == notification_id, Notification.status == m.DEAD).values(
        status=m.PENDING, attempts=0, next_attempt_at=now, updated_at=now))
    return bool(result.rowcount)  # type: ignore[attr-defined]


# -- the in-app feed -----------------------------------------------------------------------


def list_feed(session: Session, customer_id: str, *, unread_only: bool = False,
              limit: int = 50, before: datetime | None = None) -> list[dict[str, Any]]:
    """A customer's in-app notifications, newest first. `before` pages back in time."""
    stmt = select(InAppMessage).where(InAppMessage.customer_id == customer_id)
    if unread_only:
        stmt = stmt.where(InAppMessage.read_at.is_(None))
    if before is not None:
        stmt = stmt.where(InAppMessage.created_at < before)
    stmt = stmt.order_by(InAppMessage.created_at.desc(), InAppMessage.id.desc()).limit(limit)
    return [{"id": r.id, "template": r.template, "category": r.category, "title": r.title,
             "body": r.body, "action_url": r.action_url, "created_at": r.created_at,
             "read": r.read_at is not None, "read_at": r.read_at}
            for r in session.scalars(stmt)]


def unread_count(session: Session, customer_id: str) -> int:
    return int(session.scalar(select(func.count()).select_from(InAppMessage).where(
        InAppMessage.customer_id == customer_id, InAppMessage.read_at.is_(None))) or 0)


def mark_read(session: Session, customer_id: str, ids: Sequence[str] | None = None, *,
              now: datetime) -> int:
    """Mark the given feed entries (all when `ids` is None) read. Only the customer's own
    entries change; returns how many did."""
    stmt = update(InAppMessage).where(InAppMessage.customer_id == customer_id,
                                      InAppMessage.read_at.is_(None))
    if ids is not None:
        stmt = stmt.where(InAppMessage.id.in_(list(ids)))
    return int(session.execute(stmt.values(read_at=now)).rowcount)  # type: ignore[attr-defined]
