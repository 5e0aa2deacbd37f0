"""Applying events to one subsystem: the idempotent core shared by both buses.

In one transaction: record every event id as processed by the subsystem (one statement),
then run each new event's handlers. An id already recorded is a `duplicate` (a
redelivery) and its handlers do not run again.

Fast path: the whole batch inside one savepoint, flushed once, so a batch costs a handful
of round trips instead of several per event. If any handler raises (or the flush fails),
that savepoint is rolled back and the batch is applied again with one savepoint per event:
the failing event rolls back its own effects and processed-record and is reported
`failed`; the others commit. Handlers must therefore touch nothing but the session (other
effects go through the outbox as events): they may run again after a rollback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import delete
from sqlalchemy.orm import Session

from engine.events.envelope import Envelope
from engine.events.registry import BatchHandler, Handler, HandlerRegistry
from engine.store.outbox import ProcessedEvent, mark_processed_many

Status = Literal["applied", "duplicate", "unhandled", "failed"]


@dataclass(frozen=True)
class Outcome:
    envelope: Envelope
    status: Status
    error: str | None = None


class HandlerFailed(Exception):
    """A handler raised on the fast path: roll back and apply the batch event by event."""


def describe_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 1000 else text[:997] + "..."


def apply_batch(
    session: Session,
    subsystem: str,
    envelopes: Sequence[Envelope],
    registry: HandlerRegistry,
    now: datetime,
    *,
    isolate: bool | None = None,
) -> list[Outcome]:
    """Apply `envelopes` for `subsystem` in `session`'s transaction (the caller commits).
    Returns one Outcome per envelope, in order.

    isolate=None: fast path in a savepoint, falling back to a savepoint per event.
    isolate=False: fast path only, no savepoint; raises HandlerFailed (the caller rolls
    back its transaction and calls again with isolate=True).
    isolate=True: a savepoint per event from the start."""
    handlers = [registry.handlers_for(subsystem, env.type) for env in envelopes]
    if not any(handlers):
        return [Outcome(env, "unhandled") for env in envelopes]
    if isolate is True:
        return _apply(session, subsystem, envelopes, handlers, now, isolate=True)
    if isolate is False:
        # The caller owns the transaction and will roll it back and call again with
        # isolate=True when this raises.
        try:
            outcomes = _apply(session, subsystem, envelopes, handlers, now, isolate=False)
            session.flush()
        except Exception as exc:
            raise HandlerFailed(describe_error(exc)) from exc
        return outcomes
    batch = session.begin_nested()
    try:
        outcomes = _apply(session, subsystem, envelopes, handlers, now, isolate=False)
        session.flush()
        batch.commit()
        return outcomes
    except Exception:
        batch.rollback()
    return _apply(session, subsystem, envelopes, handlers, now, isolate=True)


def _apply(
    session: Session,
    subsystem: str,
    envelopes: Sequence[Envelope],
    handlers: list[list[Handler]],
    now: datetime,
    *,
    isolate: bool,
) -> list[Outcome]:
    fresh = mark_processed_many(
        session, subsystem, [env.id for env, hs in zip(envelopes, handlers, strict=True) if hs], now
    )
    outcomes: list[Outcome] = []
    todo: list[tuple[int, Envelope, list[Handler]]] = []  # (index in outcomes, envelope, handlers)
    for env, hs in zip(envelopes, handlers, strict=True):
        if not hs:
            outcomes.append(Outcome(env, "unhandled"))
        elif env.id not in fresh:
            outcomes.append(Outcome(env, "duplicate"))
        else:
            fresh.discard(env.id)  # the same id twice in one batch: the second is a duplicate
            todo.append((len(outcomes), env, hs))
            outcomes.append(Outcome(env, "applied"))
    if not isolate:
        _run_all(session, todo)
        return outcomes
    for i, env, hs in todo:
        error = _run_isolated(session, subsystem, env, hs)
        if error is not None:
            outcomes[i] = Outcome(env, "failed", error)
    return outcomes


def _run_all(session: Session, todo: Sequence[tuple[int, Envelope, list[Handler]]]) -> None:
    """The fast path: every event's handlers in order; a batch twin (BatchHandler) takes each
    run of consecutive events it is the only handler of at once (the order is kept)."""
    i = 0
    while i < len(todo):
        hs = todo[i][2]
        if len(hs) == 1 and isinstance(hs[0], BatchHandler):
            j = i + 1
            while j < len(todo) and todo[j][2] == hs:
                j += 1
            hs[0].many(session, [env for _, env, _ in todo[i:j]])
            i = j
            continue
        for handler in hs:
            handler(session, todo[i][1])
        i += 1


def _run_isolated(session: Session, subsystem: str, env: Envelope, hs: Sequence[Handler]) -> str | None:
    """One event in its own savepoint; the error that rolled it back (and its processed
    record), or None when it applied."""
    savepoint = session.begin_nested()
    try:
        for handler in hs:
            handler(session, env)
        session.flush()
        savepoint.commit()
    except Exception as exc:
        savepoint.rollback()
        session.execute(
            delete(ProcessedEvent).where(ProcessedEvent.consumer == subsystem, ProcessedEvent.event_id == env.id)
        )
        return describe_error(exc)
    return None
