"""How often a catalog's coupons were redeemed: one redemption per subscription given the code
(at sign-up or later), counted in that catalog only, since a code belongs to its catalog and
another catalog's FLAT10 is another coupon. A redemption stays counted when the subscription
ends or the coupon's periods run out (what `max_redemptions` limits is how many were given).
The engine checks `max_redemptions` against this count; the console shows it."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.sales.models import CatalogVersion, Subscription


def coupon_redemptions(session: Session, catalog: str, codes: Collection[str] | None = None) -> dict[str, int]:
    """Redemptions so far of each coupon code (or of `codes`) of the catalog named `catalog`,
    any version; a code never redeemed is left out."""
    stmt = (
        select(Subscription.coupon_code, func.count())
        .join(CatalogVersion, CatalogVersion.id == Subscription.catalog_version_id)
        .where(Subscription.coupon_code.is_not(None), CatalogVersion.catalog == catalog)
        .group_by(Subscription.coupon_code)
    )
    if codes is not None:
        stmt = stmt.where(Subscription.coupon_code.in_(list(codes)))
    return {str(code): int(n) for code, n in session.execute(stmt)}


def coupon_redemption_count(session: Session, catalog: str, code: str) -> int:
    """Redemptions so far of one coupon code of the catalog named `catalog`."""
    return coupon_redemptions(session, catalog, [code]).get(code, 0)
