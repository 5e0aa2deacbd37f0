"""Moving grandfathered subscriptions to another version of their catalog: a preview of
what their next period costs before and after, then the migration, from their next period on."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.catalog.model import Catalog
from engine.clock import Clock
from engine.periods import Period
from engine.pricing import price_period
from engine.sales.catalog_versions import catalog_for_version, get_version
from engine.sales.common import money, now_of
from engine.sales.due import plan_period
from engine.sales.models import Subscription
from engine.sales.step_events import subscription_event
from engine.sales.subscriptions import load_subscription
from engine.sales.usage_source import UsageSource
from engine.store import add_event


def _migration_targets(
    session: Session, catalog: str, version: int | None, plan: str | None
) -> tuple[Any, Catalog, list[Subscription]]:
    target = get_version(session, catalog, version)
    new_catalog = catalog_for_version(session, target.id)
    stmt = select(Subscription).where(
        Subscription.catalog == catalog,
        Subscription.status.in_(("active", "trialing")),
        Subscription.catalog_version_id != target.id,
    )
    if plan is not None:
        stmt = stmt.where(Subscription.plan_id == plan)
    return target, new_catalog, list(session.scalars(stmt.order_by(Subscription.id)))


def _next_period_amount(
    session: Session, catalog: Catalog, sub: Subscription, plan_id: str
) -> tuple[Period | None, Decimal]:
    plan = catalog.plan(plan_id)
    index = sub.period_index + 1 if sub.status == "active" else 0
    period = plan_period(plan, sub.anchor, index)
    usage_period = Period(sub.period_start, sub.period_end) if sub.period_start and sub.period_end else None
    from engine.sales.usage_source import usage_for

    usage = usage_for(UsageSource(session), catalog, plan, sub.customer_id, usage_period) if usage_period else {}
    bill = price_period(catalog, plan, period, quantity=sub.pending_quantity or sub.quantity, usage=usage, minimum=True)
    return period, bill.total


def preview_migration(
    session: Session, catalog: str, version: int | None = None, *, plan: str | None = None
) -> list[dict[str, Any]]:
    """Which subscriptions a migration to `version` (default: the latest) would move, and
    what their next period costs before and after (in-advance charges plus the current
    period's usage priced both ways, before tax)."""
    target, new_catalog, subs = _migration_targets(session, catalog, version, plan)
    out = []
    for sub in subs:
        plan_id = sub.pending_plan_id or sub.plan_id
        old_catalog = catalog_for_version(session, sub.catalog_version_id)
        period, old_amount = _next_period_amount(session, old_catalog, sub, plan_id)
        row: dict[str, Any] = {
            "subscription_id": sub.id,
            "customer_id": sub.customer_id,
            "plan": plan_id,
            "from_version_id": sub.catalog_version_id,
            "to_version": target.version,
            "to_version_id": target.id,
            "effective": period.start.isoformat() if period else None,
            "old_amount": money(old_amount, old_catalog.currency),
        }
        if plan_id not in new_catalog.plans:
            row.update(new_amount=None, difference=None, blocked=f"plan {plan_id!r} is not in version {target.version}")
        else:
            _, new_amount = _next_period_amount(session, new_catalog, sub, plan_id)
            row.update(
                new_amount=money(new_amount, new_catalog.currency),
                difference=money(new_amount - old_amount, new_catalog.currency),
                blocked=None,
            )
        out.append(row)
    return out


def migrate_subscriptions(
    session: Session,
    catalog: str,
    version: int | None = None,
    *,
    clock: Clock,
    plan: str | None = None,
    subscription_ids: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Move grandfathered subscriptions to `version` from their next period on. Returns the
    preview rows of the subscriptions migrated (blocked ones are left as they are)."""
    now = now_of(clock)
    preview = preview_migration(session, catalog, version, plan=plan)
    done = []
    for row in preview:
        if row["blocked"] or (subscription_ids is not None and row["subscription_id"] not in subscription_ids):
            continue
        sub = load_subscription(session, row["subscription_id"])
        sub.pending_version_id = row["to_version_id"]
        add_event(
            session,
            "subscription.changed",
            sub.customer_id,
            subscription_event(sub, changes={"catalog_version": row}, effective=row["effective"]),
            time=now,
        )
        done.append(row)
    return done
