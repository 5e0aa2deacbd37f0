"""What a batch of events' contexts read, read in bulk: the customers, dunning states,
invoices and subscriptions the events name, a few queries for the batch instead of four or
five per event (automation.Automation.handle_many).

`BatchReads` is the `Records` the contexts are built from: a row read in bulk before the
batch is handed out as the single read would return it; anything else is read singly. Only
the batch's own actions change these rows while it runs (the bus applies one subsystem's
batch at a time), and they change only their event's customer, so after an event whose
rules acted, `forget` drops that customer's rows and the next event reads them again.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from engine.automation.context import context_customer_id, event_invoice_id
from engine.automation.ports import Facts, Record, Records, Row, SubjectFilter

Envelope = Mapping[str, Any]


class BatchReads:
    """`Records` over `records`, with the rows a batch's events name read ahead in bulk."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.default_state = records.default_state
        self._customers: dict[str, Record | None] = {}
        self._states: dict[str, str] = {}
        self._invoices: dict[str, Record | None] = {}
        self._subscriptions: dict[str, Record | None] = {}
        self._live: dict[str, Record | None] = {}

    def prefetch(self, session: Session, envelopes: Sequence[Envelope]) -> None:
        """Read ahead what the contexts of `envelopes` will read (a row that does not exist
        is remembered as missing, as the single read would find it)."""
        cids = _ids(map(_customer_id, envelopes))
        if not cids:
            return
        found = self.records.customers(session, cids)
        self._customers.update({c: found.get(c) for c in cids})
        self._states.update(self.records.dunning_states(session, cids, lock=False))
        invoice_ids = _ids(map(event_invoice_id, envelopes))
        self._invoices.update(_read(self.records.invoices, session, invoice_ids))
        sub_ids = _ids(_subscription_id(e, self._invoices) for e in envelopes)
        self._subscriptions.update(_read(self.records.subscriptions, session, sub_ids))
        named = {str(_customer_id(e)) for e in envelopes if _subscription_id(e, self._invoices)}
        unnamed = [c for c in cids if c not in named]
        self._live.update(_read(self.records.live_subscriptions, session, unnamed))

    def forget(self, customer_id: Any) -> None:
        """The customer's rows may have changed (its event's rules acted): read them again.
        None (an event about no customer): anything may have, all is read again."""
        if not customer_id:
            for rows in (self._customers, self._states, self._live, self._invoices, self._subscriptions):
                rows.clear()
            return
        cid = str(customer_id)
        self._customers.pop(cid, None)
        self._states.pop(cid, None)
        self._live.pop(cid, None)
        for rows in (self._invoices, self._subscriptions):
            for key in [k for k, row in rows.items() if row is None or str(row.get("customer_id")) == cid]:
                del rows[key]

    # -- Records: the rows read ahead, else the single read ------------------------------------

    def customer(self, session: Session, customer_id: str) -> Record | None:
        if customer_id in self._customers:
            return _copy(self._customers[customer_id])
        return self.records.customer(session, customer_id)

    def dunning_state(self, session: Session, customer_id: str) -> str:
        if customer_id in self._states:
            return self._states[customer_id]
        return self.records.dunning_state(session, customer_id)

    def invoice(self, session: Session, invoice_id: str) -> Record | None:
        if invoice_id in self._invoices:
            return _copy(self._invoices[invoice_id])
        return self.records.invoice(session, invoice_id)

    def subscription(self, session: Session, subscription_id: str) -> Record | None:
        if subscription_id in self._subscriptions:
            return _copy(self._subscriptions[subscription_id])
        return self.records.subscription(session, subscription_id)

    def live_subscription(self, session: Session, customer_id: str) -> Record | None:
        if customer_id in self._live:
            return _copy(self._live[customer_id])
        return self.records.live_subscription(session, customer_id)

    # -- Records: the rest, as the owners read it ----------------------------------------------

    def plan_name(self, session: Session, subscription: Row) -> str:
        return self.records.plan_name(session, subscription)

    def customers(self, session: Session, ids: Sequence[str]) -> dict[str, Record]:
        return self.records.customers(session, ids)

    def invoices(self, session: Session, ids: Sequence[str]) -> dict[str, Record]:
        return self.records.invoices(session, ids)

    def subscriptions(self, session: Session, ids: Sequence[str]) -> dict[str, Record]:
        return self.records.subscriptions(session, ids)

    def live_subscriptions(self, session: Session, customer_ids: Sequence[str]) -> dict[str, Record]:
        return self.records.live_subscriptions(session, customer_ids)

    def dunning_states(self, session: Session, customer_ids: Sequence[str], *, lock: bool) -> dict[str, str]:
        return self.records.dunning_states(session, customer_ids, lock=lock)

    def known_states(self, session: Session) -> set[str]:
        return self.records.known_states(session)

    def scan(
        self, session: Session, for_each: str, *, after: str, limit: int, filters: Sequence[SubjectFilter] | None
    ) -> list[Record]:
        return self.records.scan(session, for_each, after=after, limit=limit, filters=filters)

    def facts(self, session: Session, *, customers: Collection[str] = (),
              invoices: Mapping[str, str] | None = None) -> Facts:
        return self.records.facts(session, customers=customers, invoices=invoices)


def _ids(values: Iterable[Any]) -> list[str]:
    return sorted({str(v) for v in values if v})


def _read(bulk: Callable[[Session, Sequence[str]], dict[str, Record]], session: Session,
          ids: list[str]) -> dict[str, Record | None]:
    """Each of `ids` with its row, None when there is none (no query for no ids)."""
    found = bulk(session, ids) if ids else {}
    return {i: found.get(i) for i in ids}


def message_facts(records: Records, session: Session, contexts: Iterable[Row]) -> Facts:
    """The facts the messages of a batch of contexts (an event's, a sweep subject's) may
    quote, read together at the first one asked for (`Records.facts`)."""
    customers: set[str] = set()
    invoices: dict[str, str] = {}
    for ctx in contexts:
        cid = context_customer_id(ctx)
        if not cid:
            continue
        customers.add(cid)
        invoice_id = dict(ctx.get("invoice") or {}).get("id")
        if invoice_id:
            invoices[str(invoice_id)] = cid
    return records.facts(session, customers=customers, invoices=invoices)


def event_facts(records: Records, session: Session, envelopes: Iterable[Envelope]) -> Facts:
    """`message_facts` of a bus batch, from its events: the customer and invoice each names
    (as build_context finds them)."""
    named = ({"customer": {"id": _customer_id(e)}, "invoice": {"id": event_invoice_id(e)}} for e in envelopes)
    return message_facts(records, session, named)


def decision_customer(envelope: Envelope) -> Any:
    """The customer whose rows an event's actions may change: its context's (build_context)."""
    return _customer_id(envelope)


def _customer_id(envelope: Envelope) -> Any:
    """As build_context finds it."""
    return envelope.get("customer_id") or dict(envelope.get("properties") or {}).get("customer_id")


def _subscription_id(envelope: Envelope, invoices: Mapping[str, Record | None]) -> Any:
    """The subscription an event names, itself or through its invoice (as build_context)."""
    props = envelope.get("properties") or {}
    invoice_id = event_invoice_id(envelope)
    invoice = invoices.get(str(invoice_id)) if invoice_id else None
    own = props.get("id") if str(envelope.get("type") or "").startswith("subscription.") else None
    return props.get("subscription_id") or (invoice or {}).get("subscription_id") or own


def _copy(row: Record | None) -> Record | None:
    """A fresh copy each time, as each single read returns (a context may be changed)."""
    return copy.deepcopy(row) if row is not None else None
