"""Loading what an access decision needs about a customer, through the readers engine.system
hands in (the sales and dunning queries)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from engine.access.decision import Snapshot
from engine.access.readers import AccessReaders, Known, SpendAsk
from engine.catalog import Catalog, Plan
from engine.periods import Period, period_at
from engine.pricing.usage import UsageEvent, aggregate, matches


def quota_window(subscription: Mapping[str, Any], period: str, today: date) -> Period:
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


def load_snapshot(session: Session, customer_id: str, now: datetime, readers: AccessReaders) -> Snapshot:
    inputs = readers.customer_inputs(session, customer_id)
    if inputs is None:
        return Snapshot(customer_id, known=False)
    customer, state = inputs.customer, inputs.dunning_state
    if inputs.plan is None:
        return Snapshot(customer_id, True, customer, dunning_state=state)
    subscription, catalog, plan = inputs.plan
    usage, windows, expires_at = _usage(session, readers, customer_id, subscription, catalog, plan, now)
    ask = _spend_ask(customer_id, subscription, catalog, plan, usage, windows)
    spend = None if ask is None else readers.spendable(session, [ask], now)[customer_id]
    left = readers.budget_left(session, customer_id, subscription, catalog, plan, _known(usage, windows))
    return Snapshot(
        customer_id,
        True,
        customer,
        subscription,
        catalog,
        plan,
        state,
        usage,
        expires_at,
        windows,
        spendable=spend,
        budget_left=left,
    )


def reload_usage(session: Session, snapshot: Snapshot, now: datetime, readers: AccessReaders) -> Snapshot:
    """The snapshot with its usage read again, the rest kept: after new usage, which is all
    that changed (plan, customer and dunning changes drop the whole snapshot instead)."""
    return reload_usages(session, [snapshot], now, readers)[0]


def reload_usages(
    session: Session, snapshots: Sequence[Snapshot], now: datetime, readers: AccessReaders
) -> list[Snapshot]:
    """`reload_usage` for the customers of a usage batch at once: each one's usage is read
    as before, the hard stop's wallet figures for all of them in one ask (a query or two for
    the batch instead of several per customer)."""
    counted: dict[int, tuple[dict[str, Decimal], dict[str, Period], datetime | None]] = {}
    asks: list[SpendAsk] = []
    for i, snap in enumerate(snapshots):
        if snap.subscription is None or snap.catalog is None or snap.plan is None:
            continue  # no plan: usage decides nothing
        counted[i] = _usage(session, readers, snap.customer_id, snap.subscription, snap.catalog, snap.plan, now)
        ask = _spend_ask(snap.customer_id, snap.subscription, snap.catalog, snap.plan, counted[i][0], counted[i][1])
        if ask is not None:
            asks.append(ask)
    spend = readers.spendable(session, asks, now) if asks else {}
    out = list(snapshots)
    for i, (usage, windows, expires_at) in counted.items():
        snap = snapshots[i]
        assert snap.subscription is not None and snap.catalog is not None and snap.plan is not None
        left = (
            None
            if snap.budget_left is None  # no hard-stop budget: set or removed drops the snapshot
            else readers.budget_left(
                session, snap.customer_id, snap.subscription, snap.catalog, snap.plan, _known(usage, windows)
            )
        )
        out[i] = replace(
            snap,
            usage=usage,
            windows=windows,
            expires_at=expires_at,
            spendable=spend.get(snap.customer_id),
            budget_left=left,
            memo={},
        )
    return out


def _known(usage: Mapping[str, Decimal], windows: Mapping[str, Period]) -> Known:
    """The usage counted already, with its window (pricing reuses it for the billing period)."""
    return {m: (windows[m], q) for m, q in usage.items() if m in windows}


def _spend_ask(
    customer_id: str,
    subscription: Mapping[str, Any],
    catalog: Catalog,
    plan: Plan,
    usage: Mapping[str, Decimal],
    windows: Mapping[str, Period],
) -> SpendAsk | None:
    """What the hard stop asks the wallet; None for a plan that does not stop on it (every
    other check costs no query more)."""
    if plan.credits.on_exhausted != "hard_stop":
        return None
    current = subscription.get("current_period")
    period = (
        Period(date.fromisoformat(current["start"]), date.fromisoformat(current["end"]))
        if isinstance(current, dict)
        else None
    )
    return (customer_id, catalog, plan, period, _known(usage, windows))


# Aggregations where the new events' own aggregate is what they add to the window's: a max,
# a unique count, a latest value or a running total needs the other events too.
_ADDITIVE = ("count", "sum")


def add_usage(snapshot: Snapshot, events: Sequence[UsageEvent]) -> Snapshot | None:
    """The snapshot with newly stored events added to its usage, the way the pricing
    aggregates them; None when that cannot be exact (an event of a metric aggregated
    otherwise, or a value the metric cannot read), and the usage must be read again.

    Only for events stored after the snapshot was loaded: the caller makes sure of that."""
    if not events or snapshot.catalog is None:  # no plan: usage decides nothing
        return snapshot
    if snapshot.spendable is not None or snapshot.budget_left is not None:  # priced again on the reload
        return None
    if set(snapshot.windows) != set(snapshot.usage):  # built without its windows
        return None
    usage = dict(snapshot.usage)
    for metric_id, window in snapshot.windows.items():
        metric = snapshot.catalog.metrics[metric_id]  # a window per feature's metric, which the catalog has
        if not any(matches(metric, e) for e in events):
            continue
        if metric.aggregation not in _ADDITIVE or metric.recurring:
            return None
        try:
            usage[metric_id] += aggregate(metric, events, window).quantity
        except ValueError:  # e.g. a summed property missing: the reload says what it says
            return None
    return replace(snapshot, usage=usage, memo={})


def _usage(
    session: Session,
    readers: AccessReaders,
    customer_id: str,
    subscription: Mapping[str, Any],
    catalog: Catalog,
    plan: Plan,
    now: datetime,
) -> tuple[dict[str, Decimal], dict[str, Period], datetime | None]:
    """Usage per metered metric in its quota's window, those windows, and when the first ends."""
    usage: dict[str, Decimal] = {}
    windows: dict[str, Period] = {}
    ends: list[datetime] = []
    for feature_id, entitlement in plan.entitlements.items():
        feature = catalog.features[feature_id]  # engine.catalog checks entitlements name features
        if feature.type != "metered" or feature.metric is None:
            continue
        window = quota_window(subscription, entitlement.period, now.date())
        usage[feature.metric] = readers.usage_in_period(session, customer_id, catalog, feature.metric, window)
        windows[feature.metric] = window
        # A billing period past its end waits for the renewal (an event), not for the clock.
        if window.end_at > now:
            ends.append(window.end_at)
    return usage, windows, min(ends, default=None)
