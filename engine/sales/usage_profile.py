"""How much customers really use, per plan and metric: the monthly usage of every customer
with a live subscription over the last full calendar months, aggregated from the stored
events as billing aggregates them. A what-if draws its synthetic cohort's usage from this
(engine.simulation.observed), so its default is the business's own distribution.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.catalog.model import Catalog, Metric, Plan
from engine.periods import Period
from engine.pricing import UsageEvent, aggregate_all
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.models import Subscription, UsageRecord
from engine.sales.queries import LIVE

_CHUNK = 500  # customers per events query (bound parameters stay well under SQLite's limit)


@dataclass(frozen=True)
class PlanUsage:
    """One plan's monthly usage of one metric: a value per customer-month observed (zero
    when the customer sent nothing that month), and how many stored events gave them."""

    catalog: str
    plan: str
    metric: str
    values: tuple[Decimal, ...]
    events: int
    customers: int
    first_month: str
    last_month: str


def full_months(now: datetime, count: int) -> list[Period]:
    """The `count` calendar months before the one `now` is in, oldest first."""
    first = now.date().replace(day=1)
    return [Period(first - relativedelta(months=k), first - relativedelta(months=k - 1)) for k in range(count, 0, -1)]


def plan_usage_metrics(catalog: Catalog, plan: Plan) -> dict[str, Metric]:
    """The metrics a plan's bill or quotas read."""
    found = {p.metric for p in plan.prices if p.metric}
    for fid, e in plan.entitlements.items():
        feature = catalog.features.get(fid)
        if e.enabled and feature is not None and feature.metric:
            found.add(feature.metric)
    return {m: catalog.metrics[m] for m in sorted(x for x in found if x in catalog.metrics)}


def usage_profile(session: Session, now: datetime, *, months: int = 3) -> list[PlanUsage]:
    """Per (catalog, plan, metric) of the live subscriptions, the customer-months of the last
    `months` full calendar months in which the subscription had started."""
    periods = full_months(now, months)
    groups: dict[tuple[int, str], list[tuple[str, date]]] = defaultdict(list)
    stmt = select(
        Subscription.customer_id, Subscription.catalog_version_id, Subscription.plan_id, Subscription.start_date
    ).where(Subscription.status.in_(LIVE))
    for cid, vid, plan_id, started in session.execute(stmt):
        groups[(vid, plan_id)].append((cid, started))
    acc: dict[tuple[str, str, str], list[Decimal]] = defaultdict(list)
    events: dict[tuple[str, str, str], int] = defaultdict(int)
    customers: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    catalogs: dict[int, Catalog] = {}
    for (vid, plan_id), members in sorted(groups.items()):
        catalog = catalogs.get(vid) or catalogs.setdefault(vid, catalog_for_version(session, vid))
        if plan_id not in catalog.plans:
            continue
        metrics = plan_usage_metrics(catalog, catalog.plans[plan_id])
        if not metrics:
            continue
        stored = _events(session, [c for c, _ in members], {m.event for m in metrics.values()}, periods)
        for cid, started in members:
            for period in periods:
                if started > period.start:
                    continue  # not a customer for the whole month: its usage would read low
                mine = [e for e in stored.get(cid, ()) if period.start_at <= e.time < period.end_at]
                counts = Counter(e.type for e in mine)
                for mid, usage in aggregate_all(metrics, mine, period).items():
                    key = (catalog.name, plan_id, mid)
                    acc[key].append(usage.quantity)
                    events[key] += counts[metrics[mid].event]
                    customers[key].add(cid)
    first, last = periods[0].start.isoformat()[:7], periods[-1].start.isoformat()[:7]
    return [
        PlanUsage(c, p, m, tuple(values), events[(c, p, m)], len(customers[(c, p, m)]), first, last)
        for (c, p, m), values in sorted(acc.items())
    ]


def _events(
    session: Session, customer_ids: list[str], types: set[str], periods: list[Period]
) -> dict[str, list[UsageEvent]]:
    """The customers' events of those types in the months, by customer (one query a chunk)."""
    out: dict[str, list[UsageEvent]] = defaultdict(list)
    for i in range(0, len(customer_ids), _CHUNK):
        stmt = select(
            UsageRecord.id, UsageRecord.type, UsageRecord.time, UsageRecord.customer_id, UsageRecord.properties
        ).where(
            UsageRecord.customer_id.in_(customer_ids[i : i + _CHUNK]),
            UsageRecord.type.in_(sorted(types)),
            UsageRecord.time >= periods[0].start_at,
            UsageRecord.time < periods[-1].end_at,
        )
        for eid, etype, when, cid, props in session.execute(stmt):
            out[cid].append(UsageEvent(eid, etype, _aware(when), cid, props or {}))
    return out


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
