"""A coupon that grants credit (issue 20: promotional grants from a coupon): a catalog coupon
may name one of its catalog's `credits.grants` (`grant_credit: {grant, reason?}`); applying the
coupon to a subscription (at sign-up or later over `POST /v1/subscriptions/{id}/coupon`) grants
it to the customer's wallet in the same transaction, with the grant's amount and terms, source
`coupon`. The grant's idempotency key is the subscription and the coupon, so whatever applies
that coupon to that subscription again grants nothing more. A promotional grant: the journal
books what it pays as a discount, never revenue (docs/books.md, *Prepaid credit*)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from engine import credits
from engine.catalog.model import Catalog, Coupon
from engine.credits.terms import grant_expiry
from engine.sales.models import Customer, Subscription

COUPON_KEY = "coupon:"


def grant_coupon_credit(
    session: Session, customer: Customer, sub: Subscription, catalog: Catalog, coupon: Coupon, now: datetime
) -> credits.Grant | None:
    """Grant the coupon's credit (None: the coupon grants none). The catalog checked at
    publication that the grant exists; `rollover: none` ends it with the subscription's
    current period, as any catalog grant."""
    if coupon.grant_credit is None or catalog.credits is None:
        return None
    grant = catalog.credits.grants[coupon.grant_credit]
    req = credits.GrantRequest(
        customer_id=customer.id,
        unit=catalog.credits.unit,
        amount=grant.amount,
        source="coupon",
        source_ref=grant.id,
        effective_at=now,
        priority=grant.terms.priority,
        expires_at=grant_expiry(grant.terms, now, sub.period_end),
        rollover=grant.terms.rollover,
        reason=coupon.grant_reason or f"coupon {coupon.code}",
        created_by=f"coupon:{coupon.code}",
        idempotency_key=f"{COUPON_KEY}{sub.id}:{coupon.code}",
    )
    customer.has_wallet = True
    return credits.add_grant(session, req, now)
