"""The access decision as a pure function: plan entitlements, usage against quotas, the
subscription and dunning state, and what the access rules asked for.

Reasons (machine-readable, documented in the README):
  plan                   the plan grants it
  overage                over the quota, but the plan's overage policy allows it
  not_in_plan            the plan does not include the feature
  quota_exceeded         the quota would be exceeded and overage is `block`
  payment_overdue        the account is suspended by dunning
  credits_exhausted      the plan stops metered use (credits: {on_exhausted: hard_stop}) and the
                         wallet, less this period's accrued usage, is spent (beyond the overdraft)
  budget_exhausted       the customer's budget has a hard stop and this period's spend reached it
                         (docs/credits.md, Budgets)
  subscription_inactive  no live subscription (never had one, ended, or dunning cancelled it)
  no_customer            the customer is unknown
  <rule's own reason>    an access rule allowed or denied it
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.catalog import Catalog, Entitlement, Plan
from engine.periods import Period

ZERO = Decimal(0)
SUSPENDED_STATES = frozenset({"suspended"})
ENDED_STATES = frozenset({"cancelled", "canceled"})
# What a dunning state closes every feature with (other states leave it to the plan).
_DUNNING_REFUSALS = {
    **dict.fromkeys(ENDED_STATES, "subscription_inactive"),
    **dict.fromkeys(SUSPENDED_STATES, "payment_overdue"),
}


@dataclass(frozen=True, slots=True)
class RuleAction:
    """An allow or deny asked for by an access rule."""

    ruleset: str
    rule: str
    action: str  # allow | deny
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RulesAnswer:
    """What the access rules said about one check."""

    actions: tuple[RuleAction, ...] = ()
    # Writes this evaluation to the decision log (given a session and the decision id the
    # check answers with); None when no rule took part.
    record: Callable[[Any, str], object] | None = None
    # The answer holds until this instant (the next start or end of a rule's validity window);
    # None: until the rules are published again.
    stable_until: datetime | None = None


NO_RULES = RulesAnswer()


@dataclass(frozen=True)
class Snapshot:
    """What the access decision knows about a customer at one moment."""

    customer_id: str
    known: bool
    customer: Mapping[str, Any] = field(default_factory=dict)
    subscription: Mapping[str, Any] | None = None
    catalog: Catalog | None = None
    plan: Plan | None = None
    dunning_state: str = "active"
    usage: Mapping[str, Decimal] = field(default_factory=dict)  # per metric, in the quota's window
    # When the first of those windows ends: the usage is then another window's (reload).
    expires_at: datetime | None = None
    # The window each metric's usage was counted in (what new events are added within).
    windows: Mapping[str, Period] = field(default_factory=dict)
    # Wallet credit left after this period's accrued usage (sales.spendable); None: the plan
    # does not stop on it, so it was not read.
    spendable: Decimal | None = None
    # What is left of the customer's hard-stop budget this period (sales.budget_left); None:
    # no budget that stops, so nothing more was read.
    budget_left: Decimal | None = None
    # Figures derived from this snapshot alone (e.g. the thresholds reached on a day), kept
    # with it: a snapshot is replaced, never changed, when what it was loaded from changes.
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    feature: str
    reason: str
    limit: Decimal | None = None
    used: Decimal | None = None
    remaining: Decimal | None = None
    plan: str | None = None
    rules: tuple[str, ...] = ()
    offer: Mapping[str, Any] | None = None
    # The decision-log entry that says why (denials and what a rule decided); None for what
    # the plan simply granted, which is not logged (a check that writes nothing stays cheap).
    decision_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        def num(v: Decimal | None) -> Any:
            if v is None:
                return None
            return int(v) if v == v.to_integral_value() else str(v)

        return {
            "allowed": self.allowed,
            "feature": self.feature,
            "reason": self.reason,
            "limit": num(self.limit),
            "used": num(self.used),
            "remaining": num(self.remaining),
            "plan": self.plan,
            "rules": list(self.rules),
            "offer": dict(self.offer) if self.offer else None,
            "decision_id": self.decision_id,
        }


def plan_decision(snapshot: Snapshot, feature: str, quantity: Decimal, in_use: Decimal | None = None) -> Decision:
    """What the plan, quota, subscription and dunning state say, before any rule."""
    plan, catalog = snapshot.plan, snapshot.catalog
    if not snapshot.known or plan is None or catalog is None:
        return Decision(False, feature, "subscription_inactive" if snapshot.known else "no_customer")
    refused = _DUNNING_REFUSALS.get(snapshot.dunning_state)
    if refused is not None:
        return Decision(False, feature, refused, plan=plan.id)
    entitlement = plan.entitlements.get(feature)
    if entitlement is None or not entitlement.enabled:
        return Decision(False, feature, "not_in_plan", plan=plan.id, offer=upgrade_offer(snapshot, feature))
    # A plan's entitlement names a feature of its catalog (engine.catalog checks it).
    definition = catalog.features[feature]
    if definition.type == "quantity":
        return _quantity(snapshot, plan.id, feature, entitlement.quantity, quantity, in_use)
    if definition.type == "metered":
        return _metered(snapshot, plan.id, feature, entitlement, definition.metric, quantity)
    return Decision(True, feature, "plan", plan=plan.id)


def _quantity(
    snapshot: Snapshot, plan_id: str, feature: str, allowed: int | None, quantity: Decimal, in_use: Decimal | None
) -> Decision:
    """A seat-like feature: the product says how many are in use; the plan, how many may be."""
    if allowed is None:
        return Decision(True, feature, "plan", plan=plan_id, used=in_use)
    limit, used = Decimal(allowed), in_use or ZERO
    remaining = max(limit - used, ZERO)
    if used + quantity > limit:
        return Decision(
            False, feature, "quota_exceeded", limit, in_use, remaining, plan_id, offer=upgrade_offer(snapshot, feature)
        )
    return Decision(True, feature, "plan", limit, in_use, remaining - quantity, plan_id)


def _metered(
    snapshot: Snapshot, plan_id: str, feature: str, entitlement: Entitlement, metric: str | None, quantity: Decimal
) -> Decision:
    """A metered feature: credits and budget that stop, then the quota over its window."""
    if _credits_spent(snapshot):
        return Decision(False, feature, "credits_exhausted", plan=plan_id)
    if snapshot.budget_left is not None and snapshot.budget_left <= ZERO:
        return Decision(False, feature, "budget_exhausted", plan=plan_id)
    used = snapshot.usage.get(metric, ZERO) if metric else ZERO
    if entitlement.limit is None:
        return Decision(True, feature, "plan", None, used, None, plan_id)
    limit = Decimal(entitlement.limit)
    remaining = max(limit - used, ZERO)
    if used + quantity <= limit:
        return Decision(True, feature, "plan", limit, used, remaining, plan_id)
    if entitlement.overage in ("allow", "notify"):
        return Decision(True, feature, "overage", limit, used, remaining, plan_id)
    return Decision(
        False, feature, "quota_exceeded", limit, used, remaining, plan_id, offer=upgrade_offer(snapshot, feature)
    )


def _credits_spent(snapshot: Snapshot) -> bool:
    plan = snapshot.plan
    if plan is None or plan.credits.on_exhausted != "hard_stop" or snapshot.spendable is None:
        return False
    return snapshot.spendable <= -plan.credits.overdraft


def upgrade_offer(snapshot: Snapshot, feature: str) -> dict[str, Any] | None:
    """The first plan in `upgrade_to` that grants more of the feature than the current one."""
    plan, catalog = snapshot.plan, snapshot.catalog
    if plan is None or catalog is None:
        return None
    current = plan.entitlements.get(feature)
    for target_id in plan.upgrade_to:
        target = catalog.plans[target_id]  # engine.catalog checks that the targets exist
        better = target.entitlements.get(feature)
        if better is None or not better.enabled:
            continue
        if current is None or not current.enabled or _more(better, current):
            return {"plan": target_id, "name": target.name}
    return None


def _more(a: Any, b: Any) -> bool:
    def size(e: Any) -> Decimal:
        value = e.limit if e.limit is not None else e.quantity
        return Decimal("Infinity") if value is None else Decimal(value)

    return size(a) > size(b) or (a.overage != "block" and b.overage == "block")


def combine(base: Decision, actions: Sequence[RuleAction]) -> Decision:
    """Apply the access rules to the plan's answer: a rule's deny wins over any allow; a
    rule's allow overrides the plan's denial (e.g. a partner tag unlocks a beta feature)."""
    denies = [a for a in actions if a.action == "deny"]
    if denies:
        first = denies[0].params
        offer = dict(first.get("offer") or {}) or base.offer
        reason = str(first.get("reason") or "denied_by_rule")
        return replace(base, allowed=False, reason=reason, rules=_named(denies), offer=offer, decision_id=None)
    allows = [a for a in actions if a.action == "allow"]
    if not allows or base.reason == "no_customer":
        return base  # no rule allows; or one cannot vouch for a customer we do not know
    reason = base.reason if base.allowed else str(allows[0].params.get("reason") or "allowed_by_rule")
    return replace(base, allowed=True, reason=reason, rules=_named(allows), offer=None, decision_id=None)


def _named(actions: Sequence[RuleAction]) -> tuple[str, ...]:
    return tuple(f"{a.ruleset}/{a.rule}" for a in actions)


def rule_context(snapshot: Snapshot, feature: str, quantity: Decimal, base: Decision) -> dict[str, Any]:
    """The context access rules see (FORMATS §2: feature, quantity, the plan's own answer)."""
    return {
        "feature": feature,
        "quantity": quantity,
        "reason": base.reason,
        "allowed": base.allowed,
        "plan": base.plan,
        "customer": dict(snapshot.customer),
        "subscription": dict(snapshot.subscription or {}),
        "account": {"dunning_state": snapshot.dunning_state},
        "usage": dict(snapshot.usage),
        "limit": base.limit,
        "used": base.used,
    }
