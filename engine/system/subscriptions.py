"""Who reacts to what: every (consumer, event pattern) -> handler of the running system, the
whole list. "Who reacts to X?" is a grep of this file.

Each consumer has its own queue (in-process: its own record of what it applied) and its
effects are idempotent. Patterns follow AMQP topic rules (`*` one word, `#` any number).
Every event type the engine publishes is consumed here, by a shipped rule's `on:` through
automation, or declared informational with its reason (engine.events.INFORMATIONAL);
tests/system/test_subscriptions.py holds the code to that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from engine import payments, sales, webhooks
from engine.access import AccessService
from engine.automation import SUBSYSTEM as AUTOMATION
from engine.automation import Automation
from engine.events import BatchHandler, Envelope, Handler
from engine.payments import PaymentService
from engine.pricing.quoting import PromotionSource
from engine.system.payments import payment_retry_consumer

# A subsystem's handler as written: the envelope as a plain dict (FORMATS §3).
DictHandler = Callable[[Session, dict[str, object]], object]


class ServiceHandler(Protocol):
    """One of payments' handlers: it collects through the payment service it is given."""

    def __call__(self, session: Session, envelope: dict[str, object], *, service: PaymentService) -> None: ...


class ServiceBatchHandler(Protocol):
    """A batch twin of one of payments' handlers (a run of the bus's batch at once)."""

    def __call__(self, session: Session, envelopes: Sequence[dict[str, object]], *,
                 service: PaymentService) -> None: ...


@dataclass(frozen=True)
class Subscription:
    consumer: str
    pattern: str
    handler: Handler


def subscriptions(
    *, access: AccessService, payments_service: PaymentService | None, automation: Automation | None,
    promotions: PromotionSource | None = None,
) -> list[Subscription]:
    """The table, for one system: its access view, its payment service (None: this system does
    not collect; another process's does), its automation (None: rules do not act here) and the
    published promotions (what progressive invoices are priced with, as the billing run)."""

    def usage_recorded(session: Session, envelope: dict[str, object]) -> object:
        billed = sales.handle_usage_recorded(session, envelope, promotions=promotions)
        sales.handle_spend_changed(session, envelope)
        sales.handle_token_burn(session, envelope)
        return billed

    def invalidate_access(_session: Session, envelope: Envelope) -> None:
        access.invalidate(envelope.customer_id)

    table = [
        # sales: an invoice is paid when its payment succeeded; a rule's charge becomes an invoice.
        Subscription("sales", "payment.succeeded", as_dict(sales.handle_payment_succeeded)),
        Subscription("sales", "charge.requested", as_dict(sales.handle_charge_requested)),
        # A credit pack's invoice paid: its grant counts in the wallet from now on.
        Subscription("sales", "invoice.paid", as_dict(sales.handle_invoice_paid)),
        # A wallet below its top-up threshold: buy the pack, once per key.
        Subscription("sales", "credits.top_up_requested", as_dict(sales.handle_top_up_requested)),
        # A rule's grant_credit: the catalog grant into the wallet, once per key.
        Subscription("sales", "credits.grant_requested", as_dict(sales.handle_grant_requested)),
        # New usage: a plan's progressive billing thresholds may be reached (one invoice per
        # level), spend changed (budget alerts, once per threshold and period) and token
        # wallets burn (engine/sales/tokens.py). One handler,
        # as a consumer applies an event once.
        Subscription("sales", "usage.recorded", as_dict(usage_recorded)),
        # Tokens granted pay first what usage burned beyond the wallet (engine/sales/tokens.py).
        Subscription("sales", "credits.granted", as_dict(sales.handle_tokens_granted)),
        # Fixed fees invoiced are spend too.
        Subscription("sales", "invoice.finalized", as_dict(sales.handle_spend_changed)),
        # access: decisions change with plans, payments and dunning: drop the cached view of
        # that customer.
        Subscription("access", "subscription.*", invalidate_access),
        Subscription("access", "customer.*", invalidate_access),
        Subscription("access", "dunning.state_changed", invalidate_access),
        Subscription("access", "invoice.paid", invalidate_access),
        # credit granted, voided or expired, a budget set or removed: what a hard stop allows changed.
        Subscription("access", "credits.*", invalidate_access),
    ]
    # webhooks: every event the product can receive becomes a delivery for each endpoint it
    # matches (engine.webhooks sends them). One pattern per type: nothing else reaches it.
    table += [Subscription(webhooks.CONSUMER, t, webhooks.fan_out) for t in webhooks.EVENT_TYPES]
    if payments_service is not None:
        service = payments_service
        table += [
            # Collect a finalized invoice (or open its receivable for a bank transfer).
            Subscription("payments", "invoice.finalized", batch_with_service(payments.handle_invoices_finalized, service)),
            # A subscription created with a payment method: store it, collect what failed before.
            Subscription("payments", "subscription.created",
                         with_service(payments.handle_payment_method_attached, service)),
            # Whoever voids or writes off an invoice, collection stops and the journal follows.
            Subscription("payments", "invoice.voided", with_service(payments.handle_invoice_closed, service)),
            Subscription("payments", "invoice.uncollectible", with_service(payments.handle_invoice_closed, service)),
            # A cancellation's credit against open invoices: collected that much less.
            Subscription("payments", "credit_note.issued", with_service(payments.handle_credit_note_issued, service)),
            # A credit pack's unused credit expired: its deferred revenue is earned (breakage).
            Subscription("payments", "credits.expired", with_service(payments.handle_credits_expired, service)),
            # An operator voided a pack's grant: what it still deferred is breakage, as an expiry.
            Subscription("payments", "credits.voided", with_service(payments.handle_credits_voided, service)),
            # A token pack (custom unit): its tokens burned by usage earn the pack's price per
            # token, what expires unused is breakage (engine/payments/books/tokens.py).
            Subscription("payments", "credits.consumed", with_service(payments.handle_credits_consumed, service)),
            Subscription("payments", "credits.expired", with_service(payments.handle_tokens_expired, service)),
            # A voided invoice that wallet credit paid: the journal gives the credit back too.
            Subscription("payments", "invoice.voided", with_service(payments.handle_credit_returned, service)),
            # automation's `retry_payment` job, run where no provider is (a separate scheduler).
            Subscription("payments", "payment.retry_requested", as_dict(payment_retry_consumer(service))),
        ]
    if automation is not None:
        # Every event: which ones matter changes when rules are published (`on:`), and
        # `rules.published` itself reloads them.
        table.append(Subscription(AUTOMATION, "#", automation.handler))
    return table


def as_dict(handler: DictHandler) -> Handler:
    """Subsystem handlers take the envelope as a plain dict (FORMATS §3)."""

    def adapted(session: Session, envelope: Envelope) -> None:
        handler(session, envelope.model_dump(mode="json"))

    adapted.__name__ = adapted.__qualname__ = getattr(handler, "__qualname__", "handler")
    adapted.__module__ = getattr(handler, "__module__", __name__)
    return adapted


def batch_with_service(handler: ServiceBatchHandler, service: PaymentService) -> BatchHandler:
    """One of payments' batch twins, bound to this system's payment service: the bus hands it
    a run of its events at once (events.apply), a single event as a batch of one."""

    def many(session: Session, envelopes: Sequence[Envelope]) -> None:
        handler(session, [env.model_dump(mode="json") for env in envelopes], service=service)

    return BatchHandler(many, getattr(handler, "__qualname__", "handler"))


def with_service(handler: ServiceHandler, service: PaymentService) -> Handler:
    """One of payments' handlers, bound to this system's payment service."""

    def bound(session: Session, envelope: dict[str, object]) -> None:
        handler(session, envelope, service=service)

    bound.__name__ = bound.__qualname__ = getattr(handler, "__qualname__", "handler")
    bound.__module__ = getattr(handler, "__module__", __name__)
    return as_dict(bound)
