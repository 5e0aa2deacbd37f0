"""Knowing, without a query, that a delivery run has nothing to claim: when the earliest
notification falls due.

A test clock stops hundreds of times a simulated year and each stop's delivery run claimed
due notifications and closed digest windows, two queries and a transaction, almost always
finding nothing (the lifecycle what-if: 486 claims a side, 33 of which found a message).
Messages are written at most stops but fall due later (retries with backoff, quiet hours,
digest windows) or never (a channel that is not configured keeps its messages pending), so
"none exists" is not enough: `DueWatch` keeps, per (status, channel), the earliest time a
pending or digest notification is due, and whether one is being sent. It looks once and then
follows this process's committed writes: the messages `notify` records say when they are due
(`note_due`), and any other write of a notification (a claim, a mark, a digest, a resend)
makes it look again. A run that found something due also makes it look again: what the run
left pending is read, not guessed.

Another process's writes are not seen, so the answer is trusted only within a clock advance
(`DueWatch.advance`, on a system whose events this process applies), which forgets it at its
start and end, as the bus's drains (InProcessBus.drain_written) and the webhook sender
(engine.webhooks.idle) do, and never outside one (the scheduler, a worker's loop)."""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import ORMExecuteState, Session, object_session

from engine.messaging import models as m
from engine.messaging.models import Notification
from engine.store import Database

# The execution option of a write whose due times the writer noted with `note_due`.
NOTED = "messaging_due_noted"
# session.info keys: this transaction wrote notifications without noting when they are due;
# the due times it noted, the earliest per (status, channel).
_UNNOTED = "messaging_unnoted"
_DUE = "messaging_due"
_TABLE = Notification.__tablename__
_WAITING = (m.PENDING, m.DIGEST)  # the statuses whose `next_attempt_at` is when they are due

Earliest = dict[tuple[str, str], datetime]


def note_due(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """The notification rows this transaction writes (`notify`), as their due times: the
    watch folds them in when it commits, without looking again."""
    due: Earliest = session.info.setdefault(_DUE, {})
    for row in rows:
        if row["status"] in _WAITING:
            _fold(due, (row["status"], row["channel"]), row["next_attempt_at"])


def _fold(earliest: Earliest, key: tuple[str, str], when: datetime) -> None:
    if key not in earliest or when < earliest[key]:
        earliest[key] = when


def _merged(looked: Earliest, noted: Earliest) -> Earliest:
    merged = dict(looked)
    for key, when in noted.items():
        _fold(merged, key, when)
    return merged


class DueWatch:
    """Whether a delivery run at a time can find anything, on one database, from what was
    looked up and this process's writes since. Thread-safe (the scheduler's thread may
    deliver while a clock advance runs)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._looking = threading.Lock()  # one look at a time: each sees the notes of the one before
        self._generation = 0  # committed transactions that wrote notifications unnoted
        self._looked: tuple[int, Earliest] | None = None  # (generation before the look, what it found)
        self._noted: Earliest = {}  # due times committed since the last look began
        self._advancing = 0
        # Mapper events fire for this class only (a flush listener looking at every flushed
        # object cost the webhooks' watch more than it saved, engine.webhooks.idle).
        for identifier in ("after_insert", "after_update", "after_delete"):
            if not event.contains(Notification, identifier, _note_row):
                event.listen(Notification, identifier, _note_row)
        db.listen("do_orm_execute", _note_executed)
        db.listen("after_commit", self._committed)

    @contextmanager
    def advance(self) -> Iterator[None]:
        """A clock advance: within it `may_be_due` answers from what it knows; its start and
        end forget it, so what another process wrote is seen at the next advance at the latest."""
        with self._lock:
            self._advancing += 1
            self._looked = None
        try:
            yield
        finally:
            with self._lock:
                self._advancing -= 1
                self._looked = None

    def forget(self) -> None:
        """Look again at the next ask (a delivery run wrote or found what is left pending)."""
        with self._lock:
            self._looked = None

    def may_be_due(self, now: datetime, channels: Collection[str]) -> bool:
        """False only within an advance, when no notification of `channels` is due at `now`
        nor being sent, and no digest window has ended: a run would find nothing."""
        if not self._advancing:
            return True
        for (status, channel), when in self._earliest().items():
            if status == m.DIGEST and when <= now:
                return True
            if channel in channels and (status == m.SENDING or when <= now):
                return True
        return False

    def _earliest(self) -> Earliest:
        """The earliest due time per (status, channel): what the last look found with what
        this process noted since, or a new look if it wrote a notification unnoted."""
        known = self._known()
        if known is not None:
            return known
        with self._looking:
            known = self._known()  # another thread may have looked meanwhile
            if known is not None:
                return known
            with self._lock:
                generation = self._generation  # read before the query: a later write is seen next time
                self._noted = {}  # what commits from now on, the query may not see
            found = self._look()
            with self._lock:
                if generation == self._generation:
                    self._looked = (generation, found)
                return _merged(found, self._noted)

    def _known(self) -> Earliest | None:
        """What the last look found with what was noted since (None: look again)."""
        with self._lock:
            if self._looked is None or self._looked[0] != self._generation:
                return None
            return _merged(self._looked[1], self._noted)

    def _look(self) -> Earliest:
        n = Notification
        with self.db.read_session() as session:
            rows = session.execute(
                select(n.status, n.channel, func.min(n.next_attempt_at))
                .where(n.status.in_([*_WAITING, m.SENDING]))
                .group_by(n.status, n.channel)
            ).all()
        return {(str(status), str(channel)): when for status, channel, when in rows}

    def _committed(self, session: Session) -> None:
        unnoted = session.info.pop(_UNNOTED, False)
        due: Earliest = session.info.pop(_DUE, {})
        if not (unnoted or due):
            return
        with self._lock:
            if unnoted:
                self._generation += 1
            for key, when in due.items():
                _fold(self._noted, key, when)


def _note_row(_mapper: object, _connection: object, row: object) -> None:
    session = object_session(row)
    if session is not None:
        session.info[_UNNOTED] = True


def _note_executed(state: ORMExecuteState) -> None:
    # insert()/update() of the table or the mapped class: the statement's table may be an
    # annotated copy, compare names.
    if not (state.is_insert or state.is_update or state.is_delete) or state.execution_options.get(NOTED):
        return
    if getattr(getattr(state.statement, "table", None), "name", None) == _TABLE:
        state.session.info[_UNNOTED] = True
