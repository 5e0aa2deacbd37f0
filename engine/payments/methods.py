"""A customer's payment methods over their lifetime: attach (checked with the provider first),
list, detach; and, when a new method arrives, collect what is still open.

Events: payment_method.attached, payment_method.detached (FORMATS §3 envelope), written in the
caller's transaction with the change.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.payments.collection import retry_invoice_payment
from engine.payments.method_store import add_payment_method
from engine.payments.models import Payment, PaymentMethod, Receivable
from engine.payments.provider import MethodCheck, MethodChecking, ProviderError, ProviderRejected
from engine.payments.service import (
    OFFLINE_PROVIDERS,
    CollectionResult,
    PaymentError,
    PaymentNotFound,
    PaymentService,
    _emit,
)

METHOD_TYPES = ("card", "paypal", "twint", "bank_transfer", "manual")


def method_to_dict(method: PaymentMethod) -> dict[str, Any]:
    return {
        "id": method.id,
        "customer_id": method.customer_id,
        "type": method.method_type,
        "provider": method.provider,
        "last4": _last4(method),
        "default": method.is_default,
        "created_at": method.created_at.isoformat(),
    }


def _last4(method: PaymentMethod) -> str | None:
    # What the provider said, else a card number's tail; a provider token's tail is noise.
    if method.last4:
        return method.last4
    token = (method.token or "").replace(" ", "")
    return token[-4:] if method.method_type == "card" and token.isdigit() else None


def attach_payment_method(
    session: Session,
    customer_id: str,
    method_type: str,
    token: str | None,
    *,
    provider: str | None = None,
    default: bool = True,
    service: PaymentService,
) -> PaymentMethod:
    """Store a method once the provider said it takes it. A refusal raises PaymentError on
    "token" and nothing is written; the provider's check comes before any write."""
    if method_type not in METHOD_TYPES:
        raise PaymentError(f"unknown payment method type {method_type!r} (one of {', '.join(METHOD_TYPES)})",
                           "type")
    name = provider or ("bank" if method_type == "bank_transfer" else service.default_provider)
    if method_type not in ("bank_transfer", "manual") and not token:
        raise PaymentError(f"a {method_type} needs the provider's token", "token")
    last4 = None
    if name not in OFFLINE_PROVIDERS:
        if name not in service.adapters:  # configured, not given: like an unknown id, a 404
            known = ", ".join(sorted(service.adapters)) or "this engine has none"
            raise PaymentNotFound(f"no payment provider {name!r} here ({known})", "provider")
        last4 = _last4_from_provider(service, name, method_type, token)
    method = add_payment_method(session, customer_id, method_type, token, provider=name, default=default,
                                service=service, last4=last4)
    _emit(session, service, "payment_method.attached", customer_id, method_to_dict(method))
    return method


def _last4_from_provider(service: PaymentService, name: str, method_type: str, token: str | None) -> str | None:
    """The method checked with the provider, and the last four digits it tells (None: it has
    no such check, the first charge tells; or it does not say)."""
    adapter = service.adapter(name)
    if not isinstance(adapter, MethodChecking):
        return None
    try:
        found: MethodCheck = adapter.check_method(method_type, token)
    except ProviderRejected as exc:
        raise PaymentError(f"the provider refused this {method_type}: {exc.code}: {exc.message}", "token") from None
    except ProviderError as exc:
        raise PaymentError(f"the provider could not check this {method_type} now: {exc}", "token") from None
    return found.last4


def list_payment_methods(session: Session, customer_id: str) -> list[dict[str, Any]]:
    """Newest first; `default` flags the one collection charges."""
    rows = session.scalars(
        select(PaymentMethod).where(PaymentMethod.customer_id == customer_id)
        .order_by(PaymentMethod.created_at.desc(), PaymentMethod.id.desc())
    )
    return [method_to_dict(m) for m in rows]


def detach_payment_method(session: Session, customer_id: str, method_id: str, *, service: PaymentService) -> None:
    """Forget a method. When it was the default, the newest remaining one becomes the default,
    so collection keeps a method while the customer has one."""
    method = session.get(PaymentMethod, method_id, with_for_update=True)
    if method is None or method.customer_id != customer_id:
        raise PaymentNotFound(f"customer {customer_id} has no payment method {method_id!r}", "payment_method_id")
    was_default = method.is_default
    props = method_to_dict(method)
    session.delete(method)
    session.flush()
    if was_default:
        successor = session.scalars(
            select(PaymentMethod).where(PaymentMethod.customer_id == customer_id)
            .order_by(PaymentMethod.created_at.desc(), PaymentMethod.id.desc()).limit(1)
        ).first()
        if successor is not None:
            successor.is_default = True
    _emit(session, service, "payment_method.detached", customer_id, props)


def find_payment_method(session: Session, customer_id: str, method_id: str) -> PaymentMethod:
    method = session.get(PaymentMethod, method_id)
    if method is None or method.customer_id != customer_id:
        raise PaymentNotFound(f"customer {customer_id} has no payment method {method_id!r}", "payment_method")
    return method


def make_default(session: Session, method: PaymentMethod) -> None:
    for other in session.scalars(
        select(PaymentMethod).where(PaymentMethod.customer_id == method.customer_id, PaymentMethod.is_default)
    ):
        other.is_default = False
    method.is_default = True


def collect_open_invoices(session: Session, customer_id: str, *, service: PaymentService) -> list[CollectionResult]:
    """A new method arrived: try again every automatic invoice of the customer whose
    collection already failed (a hard decline waits for exactly this), as its next attempt."""
    failed_before = select(Payment.invoice_id).where(Payment.customer_id == customer_id,
                                                     Payment.status == "failed")
    open_ones = session.scalars(
        select(Receivable.invoice_id).where(
            Receivable.customer_id == customer_id, Receivable.status == "open",
            Receivable.collection_method == "automatic", Receivable.last_attempt >= 1,
            Receivable.invoice_id.in_(failed_before) | Receivable.invoice_id.not_in(
                select(Payment.invoice_id).where(Payment.invoice_id.is_not(None))),
        ).order_by(Receivable.created_at)
    ).all()
    return [retry_invoice_payment(session, invoice_id, service=service) for invoice_id in open_ones]
