"""The catalog as typed, immutable Python values: what the pricing engine computes from.

Built only by `engine.catalog.load*` after the document passed the schema and the
cross-reference checks, so pricing code can trust every field.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date
from decimal import Decimal
from typing import Any

from engine.money import Rounder


@dataclass(frozen=True, slots=True)
class Metric:
    id: str
    event: str
    aggregation: str  # count | sum | max | unique_count | latest | weighted_sum
    field: str | None = None
    filters: dict[str, tuple[Any, ...]] = dc_field(default_factory=dict)
    recurring: bool = False
    name: str = ""


@dataclass(frozen=True, slots=True)
class Feature:
    id: str
    type: str  # boolean | quantity | metered
    name: str = ""
    metric: str | None = None


@dataclass(frozen=True, slots=True)
class Entitlement:
    feature: str
    enabled: bool = True
    quantity: int | None = None  # for quantity features; None means unlimited
    limit: int | None = None  # for metered features; None means unlimited
    period: str = "month"
    overage: str = "block"  # block | allow | notify


@dataclass(frozen=True, slots=True)
class Coupon:
    code: str
    duration: str  # once | repeating | forever
    percent_off: Decimal | None = None
    amount_off: Decimal | None = None
    periods: int | None = None
    applies_to: tuple[str, ...] = ()
    max_redemptions: int | None = None
    expires: date | None = None
    name: str = ""
    # A promotional grant of the catalog's credits.grants, granted once when the coupon is
    # applied (docs/credits.md); a coupon may grant credit and discount nothing.
    grant_credit: str | None = None
    grant_reason: str = ""

    @property
    def discounts(self) -> bool:
        """Whether the coupon takes anything off a price (a credit-only coupon does not)."""
        return self.percent_off is not None or self.amount_off is not None


@dataclass(frozen=True, slots=True)
class Tier:
    up_to: Decimal | None
    unit_amount: Decimal = Decimal(0)
    flat_amount: Decimal = Decimal(0)
    rate: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Price:
    id: str
    model: str
    timing: str
    name: str = ""
    metric: str | None = None
    prorate: bool = True
    amount: Decimal = Decimal(0)
    unit_amount: Decimal = Decimal(0)
    tiers: tuple[Tier, ...] = ()
    package_size: int = 1
    free_units: int = 0
    rate: Decimal = Decimal(0)
    fixed_amount: Decimal = Decimal(0)
    free_amount: Decimal | None = None
    min_per_transaction: Decimal | None = None
    max_per_transaction: Decimal | None = None
    divide_by: int | None = None
    round: str = "up"
    free_units_given: bool = False
    # The pricing engine's compiled amount function, attached on first use (engine.pricing).
    compiled: Any = dc_field(default=None, init=False, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class CreditTerms:
    """How a grant behaves once in a wallet: drawn by priority (lower first), then earliest expiry."""

    priority: int = 100
    expires_after: str | None = None  # a duration (30d, 1mo, 1y) after it takes effect; None: never
    rollover: str = "none"  # none: what is left expires at the period's end | all: carried over


@dataclass(frozen=True, slots=True)
class CreditPack:
    id: str
    price: Decimal  # in the catalog's currency
    credit: Decimal  # in the wallet's unit
    terms: CreditTerms = CreditTerms()
    name: str = ""


@dataclass(frozen=True, slots=True)
class CreditGrant:
    """A promotional grant the catalog names (for a rule's grant_credit, a coupon, an operator)."""

    id: str
    amount: Decimal
    terms: CreditTerms = CreditTerms()
    name: str = ""


@dataclass(frozen=True, slots=True)
class TopUp:
    threshold: Decimal  # below this balance the pack is bought automatically
    pack: str


@dataclass(frozen=True)
class Credits:
    unit: str  # the catalog's currency, or a custom unit such as tokens
    rate: Decimal = Decimal(1)  # catalog currency per unit (1 when the unit is the currency)
    packs: dict[str, CreditPack] = dc_field(default_factory=dict)
    grants: dict[str, CreditGrant] = dc_field(default_factory=dict)
    top_up: TopUp | None = None
    # A custom unit's metrics: each unit of the metric's quantity burns this many of the
    # wallet's unit, as the usage is recorded (docs/credits.md, Token wallets).
    burn: dict[str, Decimal] = dc_field(default_factory=dict)
    # The wallet's low-balance level in its unit (tokens for a token wallet): credits.balance_low
    # below it, when the customer's top-up or budget sets no level.
    low_balance: Decimal | None = None

    @property
    def custom(self) -> bool:
        """A custom unit (tokens), not a currency: usage burns it, invoices never draw it."""
        return not self.unit.isupper()


@dataclass(frozen=True, slots=True)
class PlanCredits:
    on_exhausted: str = "allow"  # allow | hard_stop (the access check denies: credits_exhausted)
    overdraft: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class ProgressiveBilling:
    """Accrued usage charges in a period at which an invoice is issued early: each of
    `thresholds`, then every `then_every` above the last one."""

    thresholds: tuple[Decimal, ...]
    then_every: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Budget:
    alerts: tuple[int, ...] = ()  # percentages of the customer's budget that raise spend.threshold_reached
    hard_stop: bool = False  # the access check denies with budget_exhausted at 100 %


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    name: str
    interval: str  # day | week | month | year | once
    prices: tuple[Price, ...] = ()
    entitlements: dict[str, Entitlement] = dc_field(default_factory=dict)
    interval_count: int = 1
    trial_days: int = 0
    minimum_amount: Decimal = Decimal(0)
    upgrade_to: tuple[str, ...] = ()
    description: str = ""
    credits: PlanCredits = PlanCredits()
    progressive_billing: ProgressiveBilling | None = None
    budget: Budget = Budget()
    # The pricing engine's compiled price list, attached on first use (engine.pricing).
    compiled: Any = dc_field(default=None, init=False, repr=False, compare=False)

    def price(self, price_id: str) -> Price:
        for p in self.prices:
            if p.id == price_id:
                return p
        raise KeyError(price_id)


@dataclass(frozen=True)
class Catalog:
    name: str
    currency: str
    rounding: str
    metrics: dict[str, Metric]
    features: dict[str, Feature]
    coupons: dict[str, Coupon]
    plans: dict[str, Plan]
    taxes: dict[str, Decimal] = dc_field(default_factory=dict)
    description: str = ""
    credits: Credits | None = None
    source: str = ""  # the file it came from, for messages
    raw: dict[str, Any] = dc_field(default_factory=dict, compare=False, repr=False)

    @property
    def tokens(self) -> Credits | None:
        """The catalog's wallet when it is in a custom unit (tokens): usage burns it."""
        return self.credits if self.credits is not None and self.credits.custom else None

    @property
    def rounder(self) -> Rounder:
        r = self.__dict__.get("_rounder")
        if r is None:
            r = Rounder(self.currency, self.rounding)
            object.__setattr__(self, "_rounder", r)
        return r

    def plan(self, plan_id: str) -> Plan:
        try:
            return self.plans[plan_id]
        except KeyError:
            raise KeyError(f"unknown plan {plan_id!r}; this catalog has {', '.join(sorted(self.plans))}") from None

    def coupon(self, code: str) -> Coupon:
        try:
            return self.coupons[code]
        except KeyError:
            known = ", ".join(sorted(self.coupons)) or "none"
            raise KeyError(f"unknown coupon {code!r}; this catalog has {known}") from None
