"""Payments as this system runs them: which provider it collects through (from the settings),
and the consumer that joins sales' invoices to payments' retries."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from engine import payments, portal, sales
from engine.clock import Clock
from engine.config import Settings
from engine.payments import PaymentService
from engine.store import mark_processed

log = logging.getLogger("engine.system")


def hosted_form_origins(settings: Settings) -> tuple[str, ...]:
    """Where the provider's hosted card form lives: the customer page's CSP lets its form post
    redirect there (Stripe Checkout; the sandbox's own page)."""
    if settings.psp_provider == "stripe":
        return portal.origins(settings.stripe_api_base, payments.STRIPE_HOSTED_FORM)
    return portal.origins(settings.psp_url)


def payment_service(settings: Settings, clock: Clock) -> PaymentService | None:
    """Automatic collection through the configured provider: the sandbox at `psp_url` (none
    when it is empty), or Stripe with `BILLING_PSP_PROVIDER=stripe`. Payments run on `clock`
    (the system's, possibly a test clock); the adapters check webhook freshness against the
    wall clock, whatever the system's clock says (docs/payments.md)."""
    adapter: payments.ProviderAdapter
    if settings.psp_provider == "stripe":
        if not settings.stripe_api_key or not settings.stripe_webhook_secret:
            raise ValueError(
                "BILLING_PSP_PROVIDER=stripe needs BILLING_STRIPE_API_KEY and BILLING_STRIPE_WEBHOOK_SECRET"
            )
        adapter = payments.StripeAdapter(
            settings.stripe_api_key,
            webhook_secret=settings.stripe_webhook_secret,
            api_base=settings.stripe_api_base or None,
        )
    elif settings.psp_provider != "sandbox":
        raise ValueError(f"BILLING_PSP_PROVIDER: {settings.psp_provider!r} is not sandbox or stripe")
    elif not settings.psp_url:
        return None
    elif not settings.psp_webhook_secret:
        raise ValueError(
            "BILLING_PSP_URL is set but BILLING_PSP_WEBHOOK_SECRET is not: webhooks from the payment "
            "provider cannot be verified. Set the secret the provider signs with (there is no default)"
        )
    else:
        adapter = payments.SandboxAdapter(
            settings.psp_url, api_key=settings.psp_api_key, webhook_secret=settings.psp_webhook_secret
        )
    return payments.PaymentService([adapter], clock, default_provider=adapter.name)


def payment_retry_consumer(service: PaymentService) -> Callable[[Session, dict[str, object]], None]:
    """The consumer of `payment.retry_requested`: automation's `retry_payment` job publishes it
    when the process that ran the job has no provider (a scheduler beside separate payment
    workers). The next collection attempt goes through `service`, this system's payments."""

    def consume_payment_retry(session: Session, envelope: dict[str, object]) -> None:
        from engine.payments.handlers import CONSUMER

        # Once per request: the bus records the event for "payments"; this record (the one
        # automation's in-process retry writes under the same id) keeps the two paths from
        # both charging.
        if not mark_processed(session, CONSUMER, str(envelope["id"]), service.now()):
            return
        props = envelope.get("properties")
        invoice_id = str((props.get("invoice_id") if isinstance(props, dict) else None) or "")
        try:
            invoice = sales.get_invoice(session, invoice_id)
        except sales.NotFound:
            log.warning("payment.retry_requested %s: unknown invoice %r", envelope["id"], invoice_id)
            return
        if invoice.get("status") != "finalized":  # paid, voided or written off meanwhile
            return
        payments.retry_invoice_payment(session, invoice_id, service=service)

    return consume_payment_retry
