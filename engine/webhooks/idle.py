"""Knowing, without a query, that the sender has nothing to claim: no enabled endpoint.

A test clock stops hundreds of times a simulated year and each stop's delivery job claimed
webhook deliveries, one query and a transaction, almost always where no endpoint exists at
all (the lifecycle what-if). With no enabled endpoint nothing can be claimed, whatever the
clock says (a retry of a disabled endpoint's delivery waits for it to be enabled), so the
only thing that can change the answer is a write to the endpoints, or a delivery written
(fan_out found an endpoint). This process counts its own committed transactions that wrote
either; another process's writes are not seen, so the answer is trusted only within a clock
advance (`Sender.advance`), which forgets it at its start and end, as the bus's drains do
(InProcessBus.drain_written), and never by the sender's worker loop (`Sender.run`)."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, object_session

from engine.store import Database
from engine.webhooks.models import EventDelivery, EventEndpoint

# session.info key: this transaction wrote endpoints or deliveries.
_WROTE = "webhooks_wrote"
_TABLES = frozenset({EventEndpoint.__tablename__, EventDelivery.__tablename__})


class WebhookWrites:
    """How many transactions of this process that wrote webhook endpoints or deliveries have
    committed, on one database."""

    def __init__(self, db: Database) -> None:
        self.committed = 0
        # Mapper events fire for these two classes only (a flush listener looking at every
        # flushed object, `session.dirty` above all, cost more than the claims it saves).
        for mapped in (EventEndpoint, EventDelivery):
            for identifier in ("after_insert", "after_update", "after_delete"):
                if not event.contains(mapped, identifier, _note_row):
                    event.listen(mapped, identifier, _note_row)
        db.listen("do_orm_execute", _note_executed)
        db.listen("after_commit", self._committed)

    def _committed(self, session: Session) -> None:
        if session.info.pop(_WROTE, False):
            self.committed += 1


def _note_row(_mapper: object, _connection: object, row: object) -> None:
    session = object_session(row)
    if session is not None:
        session.info[_WROTE] = True


def _note_executed(state: ORMExecuteState) -> None:
    # insert()/update() of a mapped class: the statement's table is an annotated copy, compare names.
    if (state.is_insert or state.is_update or state.is_delete) and getattr(
        getattr(state.statement, "table", None), "name", None
    ) in _TABLES:
        state.session.info[_WROTE] = True
