"""A customer's stored payment methods: record one, find the default.

`engine.payments.methods` builds the customer-facing lifecycle (attach with the provider's
check, list, detach) on these.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.payments.models import PaymentMethod
from engine.payments.service import PaymentError, PaymentService
from engine.store import new_event_id

# --- payment methods -------------------------------------------------------------------------


def add_payment_method(
    session: Session,
    customer_id: str,
    method_type: str,
    token: str | None = None,
    *,
    provider: str = "sandbox",
    default: bool = True,
    service: PaymentService,
    last4: str | None = None,
) -> PaymentMethod:
    """Store a customer's method. `provider="bank"` with `method_type="bank_transfer"` means
    the customer pays by transfer to our own account (matched from camt.053 statements)."""
    if method_type not in ("card", "paypal", "twint", "bank_transfer", "manual"):
        raise PaymentError(f"unknown payment method type {method_type!r}")
    svc = service
    if default:
        for other in session.scalars(
            select(PaymentMethod).where(PaymentMethod.customer_id == customer_id, PaymentMethod.is_default)
        ):
            other.is_default = False
    method = PaymentMethod(
        id=new_event_id("pm"),
        customer_id=customer_id,
        provider=provider,
        method_type=method_type,
        token=token,
        is_default=default,
        created_at=svc.now(),
        last4=last4 if last4 and len(last4) == 4 and last4.isdigit() else None,
    )
    session.add(method)
    session.flush()
    return method


def default_payment_method(session: Session, customer_id: str) -> PaymentMethod | None:
    return session.scalars(
        select(PaymentMethod)
        .where(PaymentMethod.customer_id == customer_id, PaymentMethod.is_default)
        .order_by(PaymentMethod.created_at.desc())
        .limit(1)
    ).first()


def default_payment_methods(session: Session, customer_ids: Sequence[str]) -> dict[str, PaymentMethod]:
    """`default_payment_method` of each of `customer_ids` that has one, in one query (the
    newest default wins, as there)."""
    if not customer_ids:
        return {}
    found: dict[str, PaymentMethod] = {}
    for method in session.scalars(
        select(PaymentMethod)
        .where(PaymentMethod.customer_id.in_(customer_ids), PaymentMethod.is_default)
        .order_by(PaymentMethod.created_at)
    ):
        found[method.customer_id] = method  # ascending: the newest is written last
    return found
