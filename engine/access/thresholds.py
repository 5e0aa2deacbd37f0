"""usage.threshold_reached: once per threshold (80 %, 100 %) per quota window."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.access.decision import Snapshot
from engine.access.models import QuotaThreshold
from engine.access.snapshot import quota_window
from engine.store import add_event

THRESHOLDS = (80, 100)


Crossing = tuple[str, int, Decimal, Decimal, datetime]


def crossed(snapshot: Snapshot, now: datetime) -> list[Crossing]:
    """(feature, threshold %, used, limit, window start) for each threshold the usage has reached."""
    if snapshot.plan is None or snapshot.catalog is None or snapshot.subscription is None:
        return []
    # Every check asks; the answer depends only on the snapshot and the day (the windows).
    key = ("crossed", now.date())
    found: list[Crossing] | None = snapshot.memo.get(key)
    if found is None:
        found = snapshot.memo[key] = _crossed(snapshot, now)
    return found


def _crossed(snapshot: Snapshot, now: datetime) -> list[Crossing]:
    assert snapshot.plan is not None and snapshot.catalog is not None and snapshot.subscription is not None
    out = []
    for feature_id, entitlement in snapshot.plan.entitlements.items():
        feature = snapshot.catalog.features[feature_id]  # engine.catalog checks entitlements name features
        if feature.type != "metered" or not feature.metric or not entitlement.limit:
            continue
        used = snapshot.usage.get(feature.metric, Decimal(0))
        limit = Decimal(entitlement.limit)
        window = quota_window(dict(snapshot.subscription), entitlement.period, now.date())
        for pct in THRESHOLDS:
            if used * 100 >= limit * pct:
                out.append((feature_id, pct, used, limit, window.start_at))
    return out


def record_thresholds(session: Session, snapshot: Snapshot, now: datetime) -> int:
    """Record and announce the thresholds reached for the first time. Idempotent and safe
    under concurrency (unique constraint): returns how many were new."""
    new = 0
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    for feature, pct, used, limit, window_start in crossed(snapshot, now):
        result = session.execute(
            insert(QuotaThreshold)
            .values(
                customer_id=snapshot.customer_id,
                feature=feature,
                window_start=window_start.date(),
                threshold=pct,
                reached_at=now,
            )
            .on_conflict_do_nothing()
            .returning(QuotaThreshold.id)  # rowcount is -1 for ORM inserts on psycopg
        ).first()
        if result is not None:
            new += 1
            add_event(
                session,
                "usage.threshold_reached",
                snapshot.customer_id,
                {
                    "feature": feature,
                    "threshold": pct,
                    "used": str(used),
                    "limit": str(limit),
                    "plan": snapshot.plan.id if snapshot.plan else None,
                    "window_start": window_start.date().isoformat(),
                },
                time=now,
            )
    return new
