"""Sending the pending deliveries: at least once, in order per (endpoint, customer), with
exponential backoff over more than 24 hours, then a dead letter.

A run claims due deliveries with a lease (so several processes never send the same one at
once), posts them, and records every answer in one transaction. A lane (endpoint, customer)
moves only when its earliest pending delivery is sent or dead: after a failure the rest of
the lane waits for that delivery's retry. A process that dies mid-send leaves its claims to
expire; the deliveries are sent again (the same `webhook-id`: receivers drop the copy).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import aliased

from engine.clock import Clock
from engine.store import Database
from engine.webhooks import signing
from engine.webhooks.idle import WebhookWrites
from engine.webhooks.models import EventDelivery, EventEndpoint
from engine.webhooks.urls import UrlError, UrlPolicy

log = logging.getLogger(__name__)

# The wait after the n-th failed attempt (Standard Webhooks' suggested schedule): 27 h 35 min
# from the first attempt to the last, then the delivery is dead.
SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
    timedelta(hours=5), timedelta(hours=10), timedelta(hours=10),
)


def _wall() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Claimed:
    seq: int
    lane: tuple[str, str]
    event_id: str
    payload: str
    attempts: int
    url: str
    secrets: tuple[str, ...]


@dataclass
class Report:
    delivered: int = 0
    failed: int = 0
    dead: int = 0


@dataclass
class Sender:
    """Sends the due deliveries of one database, on `clock` (backoff) and the wall (leases,
    signature timestamps)."""

    db: Database
    clock: Clock
    policy: UrlPolicy = field(default_factory=UrlPolicy)
    timeout: float = 10.0
    batch: int = 200
    lease: timedelta = timedelta(seconds=60)
    schedule: tuple[timedelta, ...] = SCHEDULE
    wall: Callable[[], datetime] = _wall
    client: httpx.Client | None = None
    _wake: threading.Event = field(default_factory=threading.Event)
    _writes: WebhookWrites = field(init=False)
    # Within a clock advance (> 0): what the last look found, (the write count before it,
    # whether an enabled endpoint exists); None: not looked since the advance began.
    _advancing: int = 0
    _looked: tuple[int, bool] | None = None

    def __post_init__(self) -> None:
        self._writes = WebhookWrites(self.db)
        if self.client is None:
            self.client = httpx.Client(timeout=self.timeout, follow_redirects=False,
                                       headers={"user-agent": "billing-engine-webhooks"})

    def wake(self) -> None:
        self._wake.set()

    def run(self, stop: threading.Event, poll: float = 0.5) -> None:
        """Send until `stop` (a worker thread)."""
        while not stop.is_set():
            try:
                report = self.run_once()
            except Exception:  # a bad moment of the database or the network must not kill it
                log.exception("webhook delivery run failed")
                report = Report()
            if not (report.delivered or report.failed):
                self._wake.wait(poll)
                self._wake.clear()

    def run_once(self, now: datetime | None = None) -> Report:
        """One batch: claim, send, record."""
        now = now or self.clock.now()
        claimed = self._claim(now)
        report = Report()
        if claimed:
            self._record(now, self._send(claimed), report)
        return report

    @contextmanager
    def advance(self) -> Iterator[None]:
        """A clock advance (System.advance_to): within it `drain` skips the claim while this
        process knows no endpoint is enabled (engine.webhooks.idle); its start and end forget
        what it knew, so what another process wrote is seen at the next advance at the latest."""
        self._advancing += 1
        self._looked = None
        try:
            yield
        finally:
            self._advancing -= 1
            self._looked = None

    def drain(self, now: datetime | None = None, rounds: int = 1000) -> Report:
        """Send until nothing is due now (tests, a clock advance's stop)."""
        total = Report()
        if self._advancing and not self._any_enabled():
            return total
        for _ in range(rounds):
            report = self.run_once(now)
            total.delivered += report.delivered
            total.failed += report.failed
            total.dead += report.dead
            if not (report.delivered or report.failed):
                break
        return total

    def _any_enabled(self) -> bool:
        """Whether an enabled endpoint exists, looked up again only after this process wrote
        endpoints or deliveries (a test clock's stops, hundreds a simulated year, claimed
        nothing where no endpoint exists: a query and a transaction each)."""
        writes = self._writes.committed  # read before the query: a later write is seen next time
        if self._looked is not None and self._looked[0] == writes:
            return self._looked[1]
        with self.db.read_session() as session:
            found = session.scalar(select(EventEndpoint.id).where(EventEndpoint.enabled.is_(True)).limit(1))
        self._looked = (writes, found is not None)
        return found is not None

    # -- claiming ----------------------------------------------------------------------------

    def _claim(self, now: datetime) -> list[_Claimed]:
        d, earlier, e = EventDelivery, aliased(EventDelivery), EventEndpoint
        wall = self.wall()
        blocked = exists().where(
            earlier.endpoint_id == d.endpoint_id, earlier.customer_id == d.customer_id,
            earlier.status == "pending", earlier.seq < d.seq,
            or_(earlier.next_attempt_at > now, earlier.claimed_until > wall))
        query = (
            select(d.seq, d.endpoint_id, d.customer_id, d.event_id, d.payload, d.attempts,
                   e.url, e.secret, e.previous_secret, e.previous_secret_until)
            .join(e, and_(e.id == d.endpoint_id, e.enabled.is_(True)))
            .where(d.status == "pending", or_(d.next_attempt_at.is_(None), d.next_attempt_at <= now),
                   or_(d.claimed_until.is_(None), d.claimed_until < wall), ~blocked)
            .order_by(d.seq).limit(self.batch)
        )
        with self.db.session() as session:
            rows = session.execute(query).all()
            if not rows:
                return []
            took = set(session.scalars(
                update(d).where(d.seq.in_([r.seq for r in rows]),
                                or_(d.claimed_until.is_(None), d.claimed_until < wall))
                .values(claimed_until=wall + self.lease).returning(d.seq)))
        return [_Claimed(r.seq, (r.endpoint_id, r.customer_id), r.event_id, r.payload, r.attempts, r.url,
                         _secrets(r.secret, r.previous_secret, r.previous_secret_until, now))
                for r in rows if r.seq in took]

    # -- sending -----------------------------------------------------------------------------

    def _send(self, claimed: list[_Claimed]) -> list[tuple[_Claimed, _Outcome | None]]:
        """Each lane in order; after a lane's first failure its later deliveries are released
        unsent (None), to go after that one's retry."""
        stopped: set[tuple[str, str]] = set()
        checked: dict[str, str | None] = {}
        out: list[tuple[_Claimed, _Outcome | None]] = []
        for item in claimed:
            if item.lane in stopped:
                out.append((item, None))
                continue
            if item.url not in checked:
                checked[item.url] = _refused(self.policy, item.url)
            refused = checked[item.url]
            outcome = _Outcome(None, refused, 0) if refused else self._post(item)
            if not outcome.ok:
                stopped.add(item.lane)
            out.append((item, outcome))
        return out

    def _post(self, item: _Claimed) -> _Outcome:
        assert self.client is not None
        body = item.payload.encode("utf-8")
        started = time.perf_counter()
        try:
            response = self.client.post(item.url, content=body,
                                        headers=signing.headers(item.event_id, body, item.secrets, self.wall()))
        except httpx.HTTPError as exc:
            return _Outcome(None, f"{type(exc).__name__}: {exc}"[:1000], _ms(started))
        error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        return _Outcome(response.status_code, error, _ms(started))

    # -- recording ---------------------------------------------------------------------------

    def _record(self, now: datetime, sent: list[tuple[_Claimed, _Outcome | None]], report: Report) -> None:
        changes: list[dict[str, Any]] = []
        for item, outcome in sent:
            if outcome is None:
                changes.append({"seq": item.seq, "claimed_until": None})
                continue
            changes.append(self._result(item, outcome, now, report))
        with self.db.session() as session:
            session.execute(update(EventDelivery), changes)

    def _result(self, item: _Claimed, outcome: _Outcome, now: datetime, report: Report) -> dict[str, Any]:
        attempts = item.attempts + 1
        change: dict[str, Any] = {
            "seq": item.seq, "attempts": attempts, "claimed_until": None, "last_status_code": outcome.code,
            "last_error": outcome.error, "last_latency_ms": outcome.latency_ms, "last_attempt_at": now,
        }
        if outcome.ok:
            report.delivered += 1
            return change | {"status": "delivered", "finished_at": now}
        report.failed += 1
        if attempts > len(self.schedule):
            report.dead += 1
            log.warning("webhook delivery %s dead after %d attempts: %s", item.seq, attempts, outcome.error)
            return change | {"status": "dead", "finished_at": now}
        return change | {"next_attempt_at": now + self.schedule[attempts - 1]}

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


@dataclass(frozen=True)
class _Outcome:
    code: int | None
    error: str | None
    latency_ms: int

    @property
    def ok(self) -> bool:
        return self.error is None


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _refused(policy: UrlPolicy, url: str) -> str | None:
    """Checked again at send time: a name may resolve elsewhere now than at registration."""
    try:
        policy.check(url)
    except UrlError as exc:
        return str(exc)
    return None


def _secrets(secret: str, previous: str | None, until: datetime | None, now: datetime) -> tuple[str, ...]:
    if previous and until is not None and until > now:
        return (secret, previous)
    return (secret,)
