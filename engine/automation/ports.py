"""What automation needs from the subsystems that own the data and carry out the effects, as
two typed components engine.system binds to sales, payments, messaging and dunning
(engine/system/automation_owners.py): `Records` (what a rule's context and a template read)
and `Effects` (what the rule actions do). Automation imports none of those subsystems; the
rows it passes around are the owners' public dicts (`Record`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

# An owner's public row (a customer, subscription or invoice as its query functions return
# it), an event's envelope or a rule's context: JSON-like data.
Record = dict[str, Any]
Row = Mapping[str, Any]
IssuedRange = tuple[datetime | None, datetime | None]


@dataclass(frozen=True, slots=True)
class SubjectFilter:
    """One alternative of a sweep's scan (automation/prefilter.py): [from, until) ranges of the
    invoice's issue time (None: no bound), and the dunning states the subject's customer is in
    (`states_in`) or is not in (`states_not_in`); None: any."""

    issued: tuple[IssuedRange, ...] | None = None
    states_in: frozenset[str] | None = None
    states_not_in: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class StateChange:
    """A set_dunning_state action: the customer's new state, why, and the event that caused it."""

    customer_id: str
    state: str
    reason: str
    cause_event_id: str | None


@dataclass(frozen=True, slots=True)
class Note:
    """A notify action: what to send to whom, keyed by the cause (the owner's dedup key)."""

    customer: Mapping[str, Any]
    template: str
    channels: Sequence[str]
    data: Mapping[str, Any]
    event_id: str
    rule_id: str
    attachments: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Delivery:
    """How one channel of a note went (sent, queued, skipped, ...)."""

    channel: str
    status: str


class Facts(Protocol):
    """What a template needs beyond the context (templating.template_data), for one batch of
    messages (`Records.facts`): what may have changed of a customer since it was read is
    read again after `forget` (None: of every customer)."""

    def feature_name(self, customer_id: str, feature: str) -> str | None: ...

    def plan_name(self, customer_id: str, plan: str) -> str | None: ...

    def pays_by_transfer(self, customer_id: str) -> bool: ...

    def payment_reference(self, invoice_id: str) -> str: ...

    def forget(self, customer_id: str | None) -> None: ...


class Records(Protocol):
    """Reads, in the caller's transaction; a missing row is None."""

    # The dunning state of a customer without a record.
    default_state: str

    def customer(self, session: Session, customer_id: str) -> Record | None: ...

    def invoice(self, session: Session, invoice_id: str) -> Record | None: ...

    def subscription(self, session: Session, subscription_id: str) -> Record | None: ...

    def live_subscription(self, session: Session, customer_id: str) -> Record | None: ...

    def plan_name(self, session: Session, subscription: Row) -> str: ...

    def dunning_state(self, session: Session, customer_id: str) -> str: ...

    def customers(self, session: Session, ids: Sequence[str]) -> dict[str, Record]: ...

    def invoices(self, session: Session, ids: Sequence[str]) -> dict[str, Record]: ...

    def subscriptions(self, session: Session, ids: Sequence[str]) -> dict[str, Record]: ...

    def live_subscriptions(self, session: Session, customer_ids: Sequence[str]) -> dict[str, Record]: ...

    def dunning_states(self, session: Session, customer_ids: Sequence[str], *, lock: bool) -> dict[str, str]: ...

    def known_states(self, session: Session) -> set[str]: ...

    def scan(
        self, session: Session, for_each: str, *, after: str, limit: int, filters: Sequence[SubjectFilter] | None
    ) -> list[Record]: ...

    def facts(self, session: Session, *, customers: Collection[str] = (),
              invoices: Mapping[str, str] | None = None) -> Facts:
        """The facts of a batch of messages: those of `customers` and `invoices` (invoice
        id -> its customer), the batch's, read together at the first one a message asks for;
        any other's read singly."""
        ...


class Effects(Protocol):
    """The rule actions' effects, carried out by their owners in the caller's transaction. A
    business refusal raises ValueError (recorded as the action's outcome)."""

    # The channels a notification can go by.
    channels: frozenset[str]

    def is_invoice_template(self, template: str) -> bool: ...

    def set_states(self, session: Session, changes: Sequence[StateChange], now: datetime) -> list[bool]: ...

    def notify_many(self, session: Session, notes: Sequence[Note], now: datetime) -> list[list[Delivery]]: ...

    def cancel_subscriptions(
        self, session: Session, items: Sequence[tuple[str, str]], now: datetime
    ) -> list[Record]: ...

    def mark_uncollectible(self, session: Session, invoice_ids: Sequence[str], now: datetime) -> None: ...

    def tags(self, session: Session, customer_id: str) -> list[str]: ...

    def set_tags(self, session: Session, customer_id: str, tags: list[str], now: datetime) -> None: ...

    def retry_payment(self, session: Session, envelope: Record) -> bool: ...


class Runner(Protocol):
    """What an action's handler or planner is given (automation/actions.py `ActionRunner`):
    the transaction, the time, whether it runs in a scheduler batch, and the owners."""

    session: Session
    now: datetime
    batch: bool
    owners: Owners

    def template_data(self, template: str, ctx: Row, data: Record) -> Record: ...


@dataclass(frozen=True, slots=True)
class Owners:
    """The two components, as engine.system binds them."""

    records: Records
    effects: Effects
