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

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from queue import Empty, SimpleQueue
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, text, tuple_, update
from sqlalchemy.orm import Session

from engine.clock import Clock, SystemClock, ensure_aware
from engine.messaging import models as m
from engine.messaging.channels import Channel, Channels, Outgoing, PermanentError, TransientError
from engine.messaging.digests import flush_digests
from engine.messaging.due import DueWatch
from engine.messaging.models import WebhookEndpoint as WebhookEndpointRow
from engine.messaging.notify import NOTIFICATIONS
from engine.messaging.templates import Rendered, Renderer
from engine.store import Database, add_events

log = logging.getLogger(__name__)


DEFAULT_LEASE = timedelta(minutes=5)


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


_CLAIM_COLUMNS = [
    NOTIFICATIONS.c[name]
    for name in (
        "id",
        "customer_id",
        "channel",
        "template",
        "category",
        "rule_id",
        "event_id",
        "target",
        "recipient",
        "content",
        "attempts",
        "created_at",
    )
]


def _no_fsync_wait(db: Database, session: Session) -> None:
    """PostgreSQL: this transaction's commit does not wait for its WAL flush. Safe for the
    claim and the marks: a crash that loses them leaves the rows claimable again, so they are
    sent again (at least once, same Message-ID / webhook id; in-app rows go with the marks),
    which is the same promise as a crash before the commit. It saves a disk flush per group."""
    if db.is_postgres:
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))


def _claim(
    db: Database, channel_names: Sequence[str], now: datetime, limit: int, lease: timedelta, wall_now: datetime
) -> list[_Claimed]:
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
    claimable = or_(
        and_(n.status == m.PENDING, n.next_attempt_at <= now), and_(n.status == m.SENDING, n.lease_until <= wall_now)
    )
    with db.session() as session:
        _no_fsync_wait(db, session)
        ids: list[str] = []
        for status, when, due in ((m.SENDING, n.lease_until, wall_now), (m.PENDING, n.next_attempt_at, now)):
            if len(ids) >= limit:
                break
            stmt = (
                select(n.id)
                .where(n.status == status, when <= due, n.channel.in_(channel_names))
                .order_by(when, n.id)
                .limit(limit - len(ids))
            )
            if db.is_postgres:
                stmt = stmt.with_for_update(skip_locked=True)
            ids.extend(session.scalars(stmt))
        rows: list[Any] = []
        for start in range(0, len(ids), 500):
            rows.extend(
                session.execute(
                    update(NOTIFICATIONS)
                    .where(n.id.in_(ids[start : start + 500]), claimable)
                    .values(status=m.SENDING, lease_until=wall_now + lease, attempts=n.attempts + 1, updated_at=now)
                    .returning(*_CLAIM_COLUMNS)
                ).all()
            )
        order = {nid: i for i, nid in enumerate(ids)}
        rows.sort(key=lambda r: order[r.id])
        # RETURNING gives the row after the update: `attempts` is this claim's attempt.
        return [
            _Claimed(
                r.id,
                r.customer_id,
                r.channel,
                r.template,
                r.category,
                r.rule_id,
                r.event_id,
                r.target,
                r.recipient,
                r.content,
                r.attempts,
                r.created_at,
            )
            for r in rows
        ]


def _secrets(db: Database, claimed: Sequence[_Claimed]) -> dict[str, str]:
    ids = {c.target for c in claimed if c.channel == "webhook" and c.target}
    if not ids:
        return {}
    with db.session() as session:
        return {
            r.id: r.secret
            for r in session.scalars(
                select(WebhookEndpointRow).where(WebhookEndpointRow.id.in_(ids), WebhookEndpointRow.enabled.is_(True))
            )
        }


def _event_props(c: _Claimed) -> dict[str, Any]:
    return {
        "notification_id": c.id,
        "template": c.template,
        "channel": c.channel,
        "category": c.category,
        "rule_id": c.rule_id or None,
        "event_id": c.event_id,
        "attempts": c.attempts,
    }


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
    watch: DueWatch | None = None,
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
    their own claim won, however the engine's test clock jumps. `watch`: within a clock
    advance, nothing is claimed while it knows nothing can be due (engine/messaging/due.py);
    after a run it looks again."""
    now = ensure_aware(now, "now")
    if watch is not None and not watch.may_be_due(now, channels.names()):
        return DeliveryReport()
    try:
        return _deliver(db, channels, now, limit, batch, record_every, concurrency, lease, renderer, wall)
    finally:
        if watch is not None:
            watch.forget()


def _deliver(
    db: Database,
    channels: Channels,
    now: datetime,
    limit: int,
    batch: int,
    record_every: int,
    concurrency: int,
    lease: timedelta,
    renderer: Renderer | None,
    wall: Clock | None,
) -> DeliveryReport:
    wall_clock = wall or SystemClock()
    report = DeliveryReport()
    with db.session() as session:
        report.digests = flush_digests(session, now=now, renderer=renderer)
    names = channels.names()
    remaining = limit
    seen: set[str] = set()
    lock = threading.Lock()
    every = max(record_every, 1)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="notify-send") if concurrency > 1 else None
    try:
        while remaining > 0:
            claimed = [
                c
                for c in _claim(db, names, now, min(batch, remaining), lease, ensure_aware(wall_clock.now(), "wall"))
                if c.id not in seen
            ]
            if not claimed:
                break
            remaining -= len(claimed)
            seen.update(c.id for c in claimed)
            _deliver_claimed(db, channels, claimed, now, every, report, lock, pool, concurrency)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return report


def _deliver_claimed(
    db: Database,
    channels: Channels,
    claimed: Sequence[_Claimed],
    now: datetime,
    every: int,
    report: DeliveryReport,
    lock: threading.Lock,
    pool: ThreadPoolExecutor | None,
    concurrency: int,
) -> None:
    """One claimed batch: the in-app messages written at once, the others sent by up to
    `concurrency` senders sharing a queue."""
    secrets_by_endpoint = _secrets(db, claimed)
    local: list[_Outcome] = []
    queue: SimpleQueue[tuple[Channel, _Claimed, str | None]] = SimpleQueue()
    for c in claimed:
        channel = channels.require(c.channel)
        if channel.transactional:
            local.append(_send_one(channel, c, None))
        else:
            queue.put((channel, c, secrets_by_endpoint.get(c.target)))
    if local:
        _record(db, local, now, report, lock)
    senders = min(queue.qsize(), concurrency)
    if pool is None or senders <= 1:  # an empty queue: nothing to send
        _send_queue(db, queue, now, every, report, lock)
        return
    futures = [pool.submit(_send_queue, db, queue, now, every, report, lock) for _ in range(senders)]
    wait(futures)
    for future in futures:
        future.result()  # a sender that could not record stops the run


def _send_queue(
    db: Database,
    queue: SimpleQueue[tuple[Channel, _Claimed, str | None]],
    now: datetime,
    every: int,
    report: DeliveryReport,
    lock: threading.Lock,
) -> None:
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
    message = Outgoing(
        c.id,
        c.customer_id,
        c.channel,
        c.template,
        c.category,
        c.recipient,
        Rendered.from_dict(c.content),
        c.created_at,
        c.attempts,
        secret,
    )
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
    return (
        update(NOTIFICATIONS)
        .where(n.id == bindparam("nid"), n.status == m.SENDING, n.attempts == bindparam("att"))
        .values(**values)
    )


_SET_PROVIDER_ID = (
    update(NOTIFICATIONS).where(NOTIFICATIONS.c.id == bindparam("nid")).values(provider_id=bindparam("pid"))
)
_MARK_RETRY = _mark(
    {
        "status": m.PENDING,
        "next_attempt_at": bindparam("next"),
        "updated_at": bindparam("now"),
        "lease_until": None,
        "error": bindparam("err"),
    }
)
_MARK_FINAL = _mark(
    {"status": bindparam("st"), "updated_at": bindparam("now"), "lease_until": None, "error": bindparam("err")}
)


def _record(
    db: Database, outcomes: Sequence[_Outcome], now: datetime, total: DeliveryReport, lock: threading.Lock
) -> None:
    """Mark a group of sends in one transaction; counted in `total` once it committed."""
    events: list[_Event] = []
    report = DeliveryReport()
    with db.session() as session:
        _no_fsync_wait(db, session)
        ok = [o for o in outcomes if o.error is None]
        if ok:
            _record_sent(session, ok, now, report, events)
        for out in outcomes:
            if out.error is not None:
                _record_failed(session, out, out.error, now, report, events)
        # One bulk INSERT, not an ORM object per event.
        add_events(session, events)
    with lock:
        total.sent += report.sent
        total.retried += report.retried
        total.failed += report.failed
        total.dead += report.dead
        total.errors.extend(report.errors)


# (type, customer id, properties, time): an event `add_events` writes.
_Event = tuple[str, str | None, dict[str, Any], datetime]


def _record_sent(
    session: Session, ok: Sequence[_Outcome], now: datetime, report: DeliveryReport, events: list[_Event]
) -> None:
    """Mark the successful sends (one statement), only rows whose claim is still this run's
    (same attempt, still sending); write the in-app ones' feed rows in the same transaction."""
    n = NOTIFICATIONS.c
    marked = set(
        session.scalars(
            update(NOTIFICATIONS)
            .where(
                tuple_(n.id, n.attempts).in_([(o.claimed.id, o.claimed.attempts) for o in ok]), n.status == m.SENDING
            )
            .values(status=m.SENT, sent_at=now, updated_at=now, lease_until=None, error=None)
            .returning(n.id)
        )
    )
    done = [o for o in ok if o.claimed.id in marked]
    # The providers' ids in one executemany (one round trip), not one UPDATE each.
    provider_ids = [{"nid": o.claimed.id, "pid": o.provider_id} for o in done if o.provider_id is not None]
    if provider_ids:
        session.execute(_SET_PROVIDER_ID, provider_ids)
    in_db: dict[str, tuple[Channel, list[Outgoing]]] = {}
    for out in done:
        if out.channel.transactional and out.message is not None:
            in_db.setdefault(out.channel.name, (out.channel, []))[1].append(out.message)
        events.append(("notification.sent", out.claimed.customer_id, _event_props(out.claimed), now))
    report.sent += len(done)
    # In-app: the feed rows commit with the marks, or neither does (an error here rolls
    # the group back; its rows stay claimed until their lease ends, then go again).
    for channel, messages in in_db.values():
        channel.send_many(messages, session)


def _record_failed(
    session: Session, out: _Outcome, error: str, now: datetime, report: DeliveryReport, events: list[_Event]
) -> None:
    """Pending again with backoff after a transient error with attempts left; else failed
    (permanent) or dead-lettered, with `notification.failed` if the claim was still ours."""
    c, policy = out.claimed, out.channel.retry
    key = {"nid": c.id, "att": c.attempts, "now": now, "err": error}
    report.errors.append(f"{c.id}: {error}")
    if not out.permanent and c.attempts < policy.max_attempts:
        session.execute(_MARK_RETRY, key | {"next": now + policy.delay(c.attempts)})
        report.retried += 1
        return
    status = m.FAILED if out.permanent else m.DEAD
    done = session.execute(_MARK_FINAL, key | {"st": status})
    if done.rowcount:  # type: ignore[attr-defined]
        props = _event_props(c) | {"error": error, "dead_lettered": not out.permanent}
        events.append(("notification.failed", c.customer_id, props, now))
    if out.permanent:
        report.failed += 1
    else:
        report.dead += 1
