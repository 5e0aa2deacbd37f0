"""What a step reports (`StepResult`: its action, document and events) and the properties of
the subscription events it publishes (`subscription_event`, also used by every change to a
subscription). Moved from engine.sales.cycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from engine.periods import iso_or_none
from engine.pricing import fmt_quantity
from engine.sales.models import Subscription


@dataclass
class StepResult:
    subscription_id: str
    action: str  # trial_notice | started | renewed | ended | paused
    at: datetime
    document_id: str | None = None
    events: list[str] = field(default_factory=list)


def subscription_event(sub: Subscription, **extra: object) -> dict[str, object]:
    props: dict[str, object] = {
        "subscription_id": sub.id,
        "customer_id": sub.customer_id,
        "plan": sub.plan_id,
        "catalog": sub.catalog,
        "catalog_version_id": sub.catalog_version_id,
        "quantity": fmt_quantity(sub.quantity),
        "status": sub.status,
        "period_start": iso_or_none(sub.period_start),
        "period_end": iso_or_none(sub.period_end),
        "trial_end": iso_or_none(sub.trial_end),
        "cancel_at_period_end": sub.cancel_at_period_end,
    }
    props.update(extra)
    return props
