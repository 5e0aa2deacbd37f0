"""Automation bound to the subsystems that own what its rules read and do: the one place where
a rule action meets its owner's service (engine/automation/ports.py declares what automation
asks for; engine/rules/vocabulary.py declares the actions).

  Records   a rule's context and a template's facts: sales' customers, subscriptions,
            invoices and catalogs, dunning's states, payments' methods and references
  Effects   set_dunning_state -> dunning.set_states, notify -> messaging.notify_many,
            cancel_subscription -> sales.cancel_subscriptions and mark_uncollectible_many,
            tag -> sales.update_customer, a due payment retry -> payments.handle_payment_retry
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from engine import dunning, messaging, payments, sales
from engine.automation import Automation, CustomerLinks, Seller
from engine.automation.ports import Delivery, Facts, Note, Owners, Record, Row, StateChange, SubjectFilter
from engine.catalog import Catalog
from engine.clock import Clock, FixedClock
from engine.messaging import Renderer
from engine.payments import PaymentService
from engine.pricing.quoting import PromotionSource
from engine.rules import RulePromotions, RulesRuntime
from engine.store import Database


def _found(read: Callable[[Session, str], Record], session: Session, key: str) -> Record | None:
    try:
        return read(session, key)
    except sales.NotFound:
        return None


class _Method(Protocol):
    """A stored payment method, as far as how a customer pays goes."""

    provider: str
    method_type: str


def _by_transfer(method: _Method | None) -> bool:
    """A customer whose default method is this (None: none) pays by transfer."""
    return method is None or method.provider == "bank" or method.method_type in ("bank_transfer", "manual")


class DatabaseFacts:
    """Facts read in the caller's transaction through sales' and payments' public functions.

    A batch's (`customers`, `invoices`: invoice id -> its customer) default payment methods
    and payment references are read in one query each, when a message first asks for one of
    them; no message, no query. Anyone else's are read singly, as are a customer's after
    `forget` (its rules acted: what they changed is read afresh)."""

    def __init__(self, session: Session, customers: Collection[str] = (),
                 invoices: Mapping[str, str] | None = None) -> None:
        self.session = session
        self._catalogs: dict[str, Catalog | None] = {}
        self._invoices = dict(invoices or {})
        self._customers = set(customers) | set(self._invoices.values())
        self._transfer: dict[str, bool] | None = None  # read at the first ask
        self._references: dict[str, str | None] | None = None

    def forget(self, customer_id: str | None) -> None:
        if customer_id is None:
            self._catalogs.clear()
            self._customers.clear()
            self._invoices.clear()
            return
        self._catalogs.pop(customer_id, None)
        self._customers.discard(customer_id)
        if self._transfer is not None:
            self._transfer.pop(customer_id, None)
        for invoice_id in [i for i, c in self._invoices.items() if c == customer_id]:
            del self._invoices[invoice_id]

    def _catalog(self, customer_id: str) -> Catalog | None:
        if customer_id not in self._catalogs:
            found = sales.customer_plan(self.session, customer_id)
            self._catalogs[customer_id] = found[1] if found is not None else None
        return self._catalogs[customer_id]

    def feature_name(self, customer_id: str, feature: str) -> str | None:
        catalog = self._catalog(customer_id)
        definition = catalog.features.get(feature) if catalog is not None else None
        return definition.name if definition is not None else None

    def plan_name(self, customer_id: str, plan: str) -> str | None:
        catalog = self._catalog(customer_id)
        target = catalog.plans.get(plan) if catalog is not None else None
        return target.name if target is not None else None

    def pays_by_transfer(self, customer_id: str) -> bool:
        """No method a provider can charge (no card), or a method of provider "bank"."""
        if customer_id not in self._customers:
            return _by_transfer(payments.default_payment_method(self.session, customer_id))
        if self._transfer is None:
            ids = sorted(self._customers)
            found = payments.default_payment_methods(self.session, ids)
            self._transfer = {c: _by_transfer(found.get(c)) for c in ids}
        return self._transfer[customer_id]

    def payment_reference(self, invoice_id: str) -> str:
        """The RF reference payments matches transfers with: the receivable's when it is
        open already, else the one it will get (`invoice_reference`, deterministic)."""
        if invoice_id in self._invoices:
            if self._references is None:
                self._references = payments.receivable_references(self.session, sorted(self._invoices))
            reference = self._references.get(invoice_id)
        else:
            reference = payments.receivable_reference(self.session, invoice_id)
        return reference or payments.invoice_reference(invoice_id)


class SubsystemRecords:
    """`automation.ports.Records` on sales' and dunning's public queries."""

    default_state = dunning.ACTIVE

    def customer(self, session: Session, customer_id: str) -> Record | None:
        return _found(sales.get_customer, session, customer_id)

    def invoice(self, session: Session, invoice_id: str) -> Record | None:
        # The summary, as a sweep's contexts read it (sales.invoices_by_id): one query, where
        # get_invoice's lines, payments and credit notes took four more and were never read.
        return sales.invoices_by_id(session, [invoice_id]).get(invoice_id)

    def subscription(self, session: Session, subscription_id: str) -> Record | None:
        return _found(sales.get_subscription, session, subscription_id)

    def live_subscription(self, session: Session, customer_id: str) -> Record | None:
        live = sales.active_subscription(session, customer_id)
        return sales.get_subscription(session, live.id) if live is not None else None

    def plan_name(self, session: Session, subscription: Row) -> str:
        try:
            catalog = sales.catalog_for_version(session, int(subscription["catalog_version_id"]))
            return str(catalog.plan(str(subscription["plan"])).name)
        except Exception:  # an old or missing catalog version: the id is still a name
            return str(subscription.get("plan") or "")

    def dunning_state(self, session: Session, customer_id: str) -> str:
        return dunning.get_state(session, customer_id)

    def customers(self, session: Session, ids: Sequence[str]) -> dict[str, Record]:
        return sales.customers_by_id(session, ids)

    def invoices(self, session: Session, ids: Sequence[str]) -> dict[str, Record]:
        return sales.invoices_by_id(session, ids)

    def subscriptions(self, session: Session, ids: Sequence[str]) -> dict[str, Record]:
        return sales.subscriptions_by_id(session, ids)

    def live_subscriptions(self, session: Session, customer_ids: Sequence[str]) -> dict[str, Record]:
        return sales.live_subscriptions(session, customer_ids)

    def dunning_states(self, session: Session, customer_ids: Sequence[str], *, lock: bool) -> dict[str, str]:
        return dunning.states_of(session, customer_ids, lock=lock)

    def known_states(self, session: Session) -> set[str]:
        return dunning.known_states(session)

    def scan(
        self, session: Session, for_each: str, *, after: str, limit: int, filters: Sequence[SubjectFilter] | None
    ) -> list[Record]:
        """Sales' scan, the dunning states of each filter as dunning's customer-id select."""
        return sales.scan(
            session,
            for_each,
            after=after,
            limit=limit,
            filters=None if filters is None else [_scan_filter(f) for f in filters],
        )

    def facts(self, session: Session, *, customers: Collection[str] = (),
              invoices: Mapping[str, str] | None = None) -> Facts:
        return DatabaseFacts(session, customers, invoices)


def _scan_filter(f: SubjectFilter) -> sales.ScanFilter:
    return sales.ScanFilter(
        f.issued,
        None if f.states_in is None else dunning.customers_in_states(f.states_in),
        None if f.states_not_in is None else dunning.customers_in_states(f.states_not_in),
    )


class SubsystemEffects:
    """`automation.ports.Effects` on the owners' services, with this system's renderer
    (messages), promotions (a cancellation's documents) and payment service (None: another
    process collects)."""

    channels = frozenset(messaging.CHANNELS)

    def __init__(
        self, renderer: Renderer, promotions: PromotionSource, payments_service: PaymentService | None
    ) -> None:
        self.renderer = renderer
        self.promotions = promotions
        self.payments = payments_service

    def is_invoice_template(self, template: str) -> bool:
        return messaging.TEMPLATE_CATEGORIES.get(template) == "invoices"

    def set_states(self, session: Session, changes: Sequence[StateChange], now: datetime) -> list[bool]:
        return dunning.set_states(
            session, [dunning.StateChange(c.customer_id, c.state, c.reason, c.cause_event_id) for c in changes], now=now
        )

    def notify_many(self, session: Session, notes: Sequence[Note], now: datetime) -> list[list[Delivery]]:
        requests = [
            messaging.NotifyRequest(
                customer=n.customer,
                template=n.template,
                channels=n.channels,
                data=n.data,
                event_id=n.event_id,
                rule_id=n.rule_id,
                attachments=n.attachments,
            )
            for n in notes
        ]
        results = messaging.notify_many(session, requests, now=now, renderer=self.renderer)
        return [[Delivery(r.channel, r.status) for r in result] for result in results]

    def cancel_subscriptions(self, session: Session, items: Sequence[tuple[str, str]], now: datetime) -> list[Record]:
        return sales.cancel_subscriptions(
            session,
            [sales.Cancellation(sid, at=at) for sid, at in items],
            clock=FixedClock(now),
            promotions=self.promotions,
        )

    def mark_uncollectible(self, session: Session, invoice_ids: Sequence[str], now: datetime) -> None:
        sales.mark_uncollectible_many(session, invoice_ids, clock=FixedClock(now))

    def tags(self, session: Session, customer_id: str) -> list[str]:
        return list(sales.get_customer(session, customer_id).get("tags") or [])

    def set_tags(self, session: Session, customer_id: str, tags: list[str], now: datetime) -> None:
        sales.update_customer(session, customer_id, {"tags": tags}, clock=FixedClock(now))

    def retry_payment(self, session: Session, envelope: Record) -> bool:
        if self.payments is None:
            return False
        payments.handle_payment_retry(session, envelope, service=self.payments)
        return True


def owners(
    promotions: PromotionSource, *, renderer: Renderer | None = None, payments_service: PaymentService | None = None
) -> Owners:
    """Automation's records and effects in a system with these promotions, templates (None:
    the shipped ones) and payment service."""
    return Owners(SubsystemRecords(), SubsystemEffects(renderer or Renderer(), promotions, payments_service))


def build_automation(
    db: Database,
    clock: Clock,
    runtime: RulesRuntime,
    *,
    sync: Callable[[], object] | None = None,
    promotions: PromotionSource | None = None,
    seller: Seller | None = None,
    payments_service: PaymentService | None = None,
    renderer: Renderer | None = None,
    links: CustomerLinks | None = None,
) -> Automation:
    """Automation on `runtime`, its actions effected by this system's subsystems: a
    cancellation's documents priced with `promotions` (None: `runtime`'s pricing rules),
    messages rendered with `renderer` (None: the shipped templates), due retries collected
    through `payments_service` (None: asked of whoever collects)."""
    bound = owners(promotions or RulePromotions(runtime), renderer=renderer, payments_service=payments_service)
    return Automation(db, clock, runtime, bound, sync=sync, seller=seller, links=links)
