"""Loading what an access decision needs about a customer, from the sales and dunning stores."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from engine import dunning, sales
from engine.access.decision import Snapshot
from engine.periods import Period, period_at
from engine.sales.customers import customer_to_dict, load_customer


def quota_window(subscription: dict[str, object], period: str, today: date) -> Period:
    """The window a quota counts in: the billing period, or day/week/month/year windows
    anchored on the subscription's start (so a monthly quota resets on its billing day)."""
    current = subscription.get("current_period")
    if period == "billing_period" or (period == "month" and subscription.get("interval") == "month"):
        if isinstance(current, dict):
            return Period(date.fromisoformat(current["start"]), date.fromisoformat(current["end"]))
    anchor = date.fromisoformat(str(subscription["start_date"]))
    if today < anchor:
        today = anchor
    interval = period if period in ("day", "week", "month", "year") else "month"
    return period_at(anchor, interval, today)[1]


def load_snapshot(session: Session, customer_id: str, now: datetime) -> Snapshot:
    try:
        # Kept referenced while loading: the session's identity map is weak, and
        # `customer_plan` looks the same row up again (a second query if it was dropped).
        row = load_customer(session, customer_id)
    except sales.NotFound:
        return Snapshot(customer_id, known=False)
    customer = customer_to_dict(row)
    state = dunning.get_state(session, customer_id)
    found = sales.customer_plan(session, customer_id)
    if found is None:
        return Snapshot(customer_id, True, customer, dunning_state=state)
    subscription, catalog, plan = found
    usage: dict[str, Decimal] = {}
    ends: list[datetime] = []
    for feature_id, entitlement in plan.entitlements.items():
        feature = catalog.features.get(feature_id)
        if feature is None or feature.type != "metered" or feature.metric is None:
            continue
        window = quota_window(subscription, entitlement.period, now.date())
        usage[feature.metric] = sales.usage_in_period(session, customer_id, catalog, feature.metric, window)
        # A billing period past its end waits for the renewal (an event), not for the clock.
        if window.end_at > now:
            ends.append(window.end_at)
    return Snapshot(customer_id, True, customer, subscription, catalog, plan, state, usage, min(ends, default=None))
