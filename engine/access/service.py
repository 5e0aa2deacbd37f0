"""Answering "may customer X use feature Y?" with the view, the rules and the side effects
(access.denied, usage.threshold_reached)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select

from engine import errors
from engine.access.decision import NO_RULES, Decision, RulesAnswer, Snapshot, combine, plan_decision, rule_context
from engine.access.outbox_cursor import OutboxCursor
from engine.access.readers import AccessReaders
from engine.access.snapshot import add_usage, load_snapshot, reload_usage, reload_usages
from engine.access.thresholds import crossed, record_thresholds
from engine.access.view import AccessView
from engine.clock import Clock
from engine.pricing.usage import UsageEvent
from engine.rules import access_denial_row, write_decision, write_decisions
from engine.store import Database, OutboxEvent, add_event, add_events, new_event_id

log = logging.getLogger("engine.access")

# The events after which a customer's decision may differ (what the bus handlers invalidate on).
_CHANGES_ACCESS = or_(
    OutboxEvent.type.like("subscription.%"),
    OutboxEvent.type.like("customer.%"),
    OutboxEvent.type.like("credits.%"),  # a hard-stop plan's spendable credit changed
    OutboxEvent.type.in_(("dunning.state_changed", "invoice.paid", "payment.succeeded", "usage.recorded")),
)

# (context) -> what the published access rules said (allow/deny actions, a decision-log writer)
RulesHook = Callable[[Mapping[str, Any]], RulesAnswer]
Record = Callable[[Any], object]
# Decisions memoised per snapshot (key: feature, quantity, in use); a client sending ever new
# `in_use` figures must not grow one snapshot's memo without bound.
MEMO_LIMIT = 256
OWN_EVENTS_LIMIT = 10_000


@dataclass
class _Buffered:
    """Identical checks waiting for the denial writer: the first one's time, and how many."""

    customer_id: str
    decision: Decision
    when: Any
    record: Record | None
    count: int = 1


@dataclass
class UsageWrite:
    """What `before_usage` took before a batch of usage is stored."""

    recorded_id: str  # the id of the batch's usage.recorded
    held: dict[str, Snapshot]  # the snapshots the stored events are added to


def _logged(customer_id: str, decision: Decision, answer: RulesAnswer, now: Any) -> tuple[Decision, Record | None]:
    """A denial, or an answer a rule took part in, gets a decision id and a decision-log
    writer (run with the check's other effects, folded per window like access.denied); what the plan
    simply granted is neither (the hot path writes nothing)."""
    if decision.allowed and answer.record is None:
        return decision, None
    decision = replace(decision, decision_id=new_event_id("dec"))
    decision_id, rules_record = str(decision.decision_id), answer.record
    if rules_record is not None:

        def record(session: Any) -> object:
            return rules_record(session, decision_id)
    else:
        record = _DenialRow(access_denial_row(decision_id, now, customer_id, decision.to_dict()))
    return decision, record


class _DenialRow:
    """A plan denial's decision-log writer (a `Record`) whose row the denial writer can read,
    to insert a window's rows together (`write_decisions`), and which knows the `n` of its
    next use (`<decision id>.<n>`) while this process alone has logged it."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.uses: int | None = 0  # a new decision id: not in the log yet

    def __call__(self, session: Any) -> object:
        self.uses = None  # this transaction may not commit: counted in the log next time
        write_decision(session, self.row)
        return None


class UnknownFeature(LookupError, errors.NotFound):
    def __init__(self, feature: str, known: Sequence[str]) -> None:
        self.feature = feature
        self.field = "feature"
        self.message = f"unknown feature {feature!r}; the customer's catalog has {', '.join(sorted(known))}"
        super().__init__(self.message)


class AccessService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        readers: AccessReaders,
        view: AccessView | None = None,
        rules: RulesHook | None = None,
        *,
        denial_buffer_seconds: float = 0.0,
    ) -> None:
        self.db = db
        self.clock = clock
        self.readers = readers  # the sales and dunning queries a snapshot is read with
        self.view = view if view is not None else AccessView()  # an empty view is falsy (__len__)
        self.rules = rules
        # Thresholds already recorded, so a hot check does not write to find out again.
        self._announced: set[tuple[str, str, int, Any]] = set()
        # 0: each denial's event is written in the check's own transaction. Above 0: buffered
        # and written by `write_denials` (a crash can lose that window's denial events).
        self.denial_buffer_seconds = denial_buffer_seconds
        self.after_denials: Callable[[], None] = lambda: None
        # Denials and decision-log writes waiting for the writer, folded per customer and
        # (memoised, so identical) decision: a product asking the same denied question in a
        # loop makes one event per window with a `count`, not thousands of rows.
        self._denials: dict[tuple[str, int, int], _Buffered] = {}
        self._denials_lock = threading.Lock()
        self._denials_signal = threading.Event()
        self._pending: set[str] = set()
        # usage.recorded events this process applied already (insertion-ordered, bounded).
        self._own_events: dict[str, None] = {}
        self._cursor: OutboxCursor | None = None  # where the outbox follower has read to
        self._pending_lock = threading.Lock()
        self._pending_signal = threading.Event()

    @property
    def loads_inline(self) -> bool:
        """Whether a snapshot may be loaded on the event loop: reads that never wait for a
        writer and take no network round trip (SQLite in WAL mode, not PostgreSQL)."""
        return not self.db.is_postgres

    def snapshot(self, customer_id: str) -> Snapshot:
        def load() -> Snapshot:
            # A read: on SQLite a write session would queue every cold load behind the writers.
            with self.db.read_session() as session:
                return load_snapshot(session, customer_id, self.clock.now(), self.readers)

        def refresh(stale: Snapshot) -> Snapshot:
            with self.db.read_session() as session:
                return reload_usage(session, stale, self.clock.now(), self.readers)

        snapshot = self.view.get(customer_id, load, refresh)
        if snapshot.expires_at is not None and self.clock.now() >= snapshot.expires_at:
            # A quota window ended (a new day for a daily quota): its usage starts again.
            self.view.invalidate_usage(customer_id)
            snapshot = self.view.get(customer_id, load, refresh)
        return snapshot

    def _reload_many(self, stale: list[Snapshot]) -> list[Snapshot]:
        with self.db.read_session() as session:
            return reload_usages(session, stale, self.clock.now(), self.readers)

    def check(
        self, customer_id: str, feature: str, quantity: Decimal = Decimal(1), in_use: Decimal | None = None
    ) -> Decision:
        if quantity <= 0:
            raise ValueError("quantity: must be above zero")
        snapshot = self.snapshot(customer_id)
        now = self.clock.now()
        decision, record = self._decide(snapshot, feature, quantity, in_use, now)
        self._side_effects(snapshot, decision, now, record)
        return decision

    def check_cached(
        self, customer_id: str, feature: str, quantity: Decimal = Decimal(1), in_use: Decimal | None = None
    ) -> Decision | None:
        """`check` when it needs no I/O (the customer is in the view, nothing to write now);
        None otherwise, and the caller runs `check` where blocking is fine."""
        if quantity <= 0:
            raise ValueError("quantity: must be above zero")
        snapshot = self.view.peek(customer_id)
        if snapshot is None:
            return None
        now = self.clock.now()
        if snapshot.expires_at is not None and now >= snapshot.expires_at:
            return None
        decision, record = self._decide(snapshot, feature, quantity, in_use, now)
        if any((customer_id, c[0], c[1], c[4]) not in self._announced for c in crossed(snapshot, now)):
            return None
        if (not decision.allowed or record is not None) and self.denial_buffer_seconds <= 0:
            return None
        self._side_effects(snapshot, decision, now, record)
        return decision

    def _decide(
        self, snapshot: Snapshot, feature: str, quantity: Decimal, in_use: Decimal | None, now: Any
    ) -> tuple[Decision, Record | None]:
        # The decision is a function of the snapshot, the question and the rules (which are
        # replaced with every snapshot on a publish, and may change at a rule's window edge).
        key = (feature, quantity, in_use)
        hit = snapshot.memo.get(key)
        if hit is not None and (hit[2] is None or now < hit[2]):
            return hit[0], hit[1]
        if snapshot.catalog is not None and feature not in snapshot.catalog.features:
            raise UnknownFeature(feature, list(snapshot.catalog.features))
        base = plan_decision(snapshot, feature, quantity, in_use)
        answer = self.rules(rule_context(snapshot, feature, quantity, base)) if self.rules else NO_RULES
        decision, record = _logged(snapshot.customer_id, combine(base, answer.actions), answer, now)
        if len(snapshot.memo) > MEMO_LIMIT:
            snapshot.memo.clear()
        snapshot.memo[key] = (decision, record, answer.stable_until)
        return decision, record

    def _side_effects(self, snapshot: Snapshot, decision: Decision, now: Any, record: Record | None = None) -> None:
        fresh = [c for c in crossed(snapshot, now) if (snapshot.customer_id, c[0], c[1], c[4]) not in self._announced]
        if decision.allowed and not fresh and record is None:
            return
        if not fresh and self.denial_buffer_seconds > 0:
            # Denials (and the decision-log entries of rules) are frequent: written together,
            # one transaction per short window, off the request's path.
            key = (snapshot.customer_id, id(decision), id(record))
            with self._denials_lock:
                entry = self._denials.get(key)
                if entry is None:
                    self._denials[key] = _Buffered(snapshot.customer_id, decision, now, record)
                else:
                    entry.count += 1
            self._denials_signal.set()
            return
        with self.db.session() as session:
            if not decision.allowed:
                add_event(session, "access.denied", snapshot.customer_id, {**decision.to_dict(), "count": 1}, time=now)
            if record is not None:
                record(session)
            if fresh:
                record_thresholds(session, snapshot, now)
        for c in fresh:
            self._announced.add((snapshot.customer_id, c[0], c[1], c[4]))

    def flush_denials(self) -> int:
        """Write the buffered access.denied events and decision-log entries in one
        transaction; returns how many checks they stand for. A failed write puts them back
        for the next flush. While a slow write runs, new denials fold into the next window,
        so the writer's load follows the distinct denials, not the check rate."""
        with self._denials_lock:
            batch, self._denials = self._denials, {}
            self._denials_signal.clear()
        if batch:
            try:
                with self.db.session() as session:
                    add_events(
                        session,
                        (
                            ("access.denied", b.customer_id, {**b.decision.to_dict(), "count": b.count}, b.when)
                            for b in batch.values()
                            if not b.decision.allowed
                        ),
                    )
                    logged = [b.record for b in batch.values() if isinstance(b.record, _DenialRow)]
                    taken = write_decisions(session, [(r.row, r.uses) for r in logged])
                    for b in batch.values():
                        if b.record is not None and not isinstance(b.record, _DenialRow):
                            b.record(session)
            except Exception:
                with self._denials_lock:  # back in front of what came since, folded with it
                    for key, later in self._denials.items():
                        if key in batch:
                            batch[key].count += later.count
                        else:
                            batch[key] = later
                    self._denials = batch
                raise
            for r, n in zip(logged, taken, strict=True):  # committed: their next use is the one after
                r.uses = n + 1
            self.after_denials()
        return sum(b.count for b in batch.values())

    def write_denials(self, stop: threading.Event) -> None:
        """The denial writer thread: flush every `denial_buffer_seconds` while denials come,
        and once more at shutdown."""
        while not stop.is_set():
            if self._denials_signal.wait(0.5):
                stop.wait(self.denial_buffer_seconds)
                try:
                    self.flush_denials()
                except Exception:  # kept for the next flush: the rows were not taken out
                    log.exception("writing access.denied events failed")
        self.flush_denials()

    def before_usage(self, customer_ids: Iterable[str]) -> UsageWrite:
        """Called before new usage is stored: the snapshots held now, which `usage_changed`
        adds the stored events to instead of reading the usage again, and the id the batch's
        usage.recorded is to carry. That id is known as this process's own before the
        commit, or the outbox follower could read the event first and mark the usage stale."""
        held = {}
        for customer_id in set(customer_ids):
            snapshot = self.view.current(customer_id)
            if snapshot is not None:
                held[customer_id] = snapshot
        write = UsageWrite(new_event_id(), held)
        self._own(write.recorded_id)
        return write

    def _own(self, event_id: str) -> None:
        with self._pending_lock:
            self._own_events[event_id] = None
            while len(self._own_events) > OWN_EVENTS_LIMIT:  # no follower is reading them
                del self._own_events[next(iter(self._own_events))]

    def usage_changed(
        self,
        customer_ids: Sequence[str],
        event_id: str | None = None,
        *,
        stored: Sequence[UsageEvent] | None = None,
        before: UsageWrite | None = None,
    ) -> None:
        """After usage was ingested (and committed): the next check sees it, and thresholds
        are announced by the watcher, off the ingestion request's path. `event_id` is the
        batch's usage.recorded: the outbox follower need not drop these snapshots a second
        time (each drop costs a reload).

        With `stored` (the events stored now) and `before` (`before_usage`, taken before the
        transaction), a snapshot held from before is given the new events' usage in memory,
        when its metrics add up (count, sum). Otherwise its usage is read again on the next
        check. A customer whose events were all repeats keeps its snapshot."""
        if before is not None:
            if event_id != before.recorded_id:  # nothing stored: no such event will come
                with self._pending_lock:
                    self._own_events.pop(before.recorded_id, None)
        elif event_id is not None:
            self._own(event_id)
        new: dict[str, list[UsageEvent]] = {}
        for event in stored or ():
            new.setdefault(str(event.customer_id), []).append(event)
        ids = set(customer_ids) if stored is None else set(new)
        for customer_id in ids:
            held = before.held.get(customer_id) if before is not None and stored is not None else None
            added = add_usage(held, new.get(customer_id, ())) if held is not None else None
            if held is None or added is None or not self.view.swap(customer_id, held, added):
                self.view.invalidate_usage(customer_id)
        with self._pending_lock:
            self._pending.update(ids)
        self._pending_signal.set()

    def announce_thresholds(self) -> int:
        """Announce the thresholds reached by customers whose usage changed; returns how many
        customers were looked at. The watcher thread calls it; tests and the test clock may."""
        with self._pending_lock:
            ids, self._pending = self._pending, set()
            self._pending_signal.clear()
        now = self.clock.now()
        self.view.refresh_many(sorted(ids), self._reload_many)  # the batch's customers at once
        for customer_id in sorted(ids):
            snapshot = self.snapshot(customer_id)
            if any((customer_id, c[0], c[1], c[4]) not in self._announced for c in crossed(snapshot, now)):
                self._side_effects(snapshot, Decision(True, "", "plan"), now)
        return len(ids)

    def watch_thresholds(self, stop: threading.Event, interval: float = 0.2) -> None:
        """Run `announce_thresholds` whenever usage changed, until `stop` (a worker thread)."""
        while not stop.is_set():
            if self._pending_signal.wait(interval):
                try:
                    self.announce_thresholds()
                except Exception:  # the next batch retries; thresholds are idempotent
                    log.exception("announcing quota thresholds failed")

    def follow_changes(self, stop: threading.Event, interval: float = 0.5) -> None:
        """Read the outbox for the changes other processes made to usage, plans, payments and
        dunning states, and drop those customers' snapshots, so their next check here sees the
        change within `interval`, not the TTL. Every process that answers checks runs it: an
        API-only one handles no events, and with several dispatchers (PostgreSQL) or a broker
        another process may handle the event that concerns this process's view."""
        self.start_following()
        while not stop.wait(interval):
            try:
                self.follow_once()
            except Exception:  # a bad moment of the database: the next poll reads on
                log.exception("following the outbox for access changes failed")

    def start_following(self) -> None:
        """Follow the outbox from its present end."""
        with self.db.read_session() as session:
            head = int(session.scalar(select(func.max(OutboxEvent.seq))) or 0)
        self._cursor = OutboxCursor(head)

    def follow_once(self) -> int:
        """Drop the snapshots of customers named by access-changing events committed since
        the last poll; returns how many such events were read."""
        if self._cursor is None:
            self.start_following()
        assert self._cursor is not None
        with self.db.read_session() as session:
            rows = self._cursor.poll(session, _CHANGES_ACCESS)
        for row in rows:
            if row.type == "usage.recorded":  # one per ingestion batch, naming its customers
                with self._pending_lock:
                    own = row.id in self._own_events
                    self._own_events.pop(row.id, None)
                if own:  # ingested here: dropped already, after its commit
                    continue
                for named in self.readers.recorded_customers(row.properties or {}):
                    self.view.invalidate_usage(named)
            elif row.customer_id:
                self.view.invalidate(row.customer_id)
        return len(rows)

    def invalidate(self, customer_id: str | None = None) -> None:
        self.view.invalidate(customer_id)
