"""A plan priced for one period: lines rounded once each, discounts, minimum commitment, tax.

`price_period` is the one function the quote, the simulator and live invoicing all call. Its
hot path computes only amounts (one compiled function per price); the lines with their tier
breakdown are built when first read, from the same prices and quantities.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple

from engine.catalog.model import Catalog, Plan, Price
from engine.money import HUNDRED, ZERO, Rounder
from engine.periods import Period
from engine.pricing.charges import AmountFn, TierUse, amount_fn, charge
from engine.pricing.discounts import Discount
from engine.pricing.taxes import NO_TAX, TaxDecision
from engine.pricing.usage import MetricUsage

ONE = Decimal(1)
BOTH_TIMINGS = frozenset({"in_advance", "in_arrears"})
_NO_USAGE = MetricUsage(ZERO)


class Line(NamedTuple):
    price_id: str
    name: str
    model: str
    timing: str
    quantity: Decimal
    amount: Decimal  # rounded to the currency's minor unit
    tiers: tuple[TierUse, ...] = ()
    kind: str = "charge"  # charge | minimum_commitment | proration | adjustment | fee
    period: Period | None = None
    detail: tuple[tuple[str, Decimal], ...] = ()
    note: str = ""
    discount: Decimal = ZERO  # rounded once per line; a credit's is negative like its amount
    tax: Decimal = ZERO  # on (amount - discount), rounded once per line

    @property
    def total(self) -> Decimal:
        return self.amount - self.discount + self.tax

    def negated(self) -> Line:
        """The same line as a credit: every figure with the other sign."""
        return self._replace(amount=-self.amount, discount=-self.discount, tax=-self.tax)


class AppliedDiscount(NamedTuple):
    source: str
    reason: str
    amount: Decimal  # rounded, positive


# A priced line before it is shown: (price, quantity before transform, transactions, rounded
# amount, note). A plain tuple: the hot path builds millions of them.
_Row = tuple[Price, Decimal, "tuple[Decimal, ...] | None", Decimal, str]


def _materialise(row: _Row | Line, period: Period) -> Line:
    if isinstance(row, Line):
        return row
    price, quantity, transactions, amount, note = row
    detail = charge(price, quantity, transactions)
    return Line(
        price.id,
        price.name,
        price.model,
        price.timing,
        detail.quantity,
        amount,
        detail.tiers,
        "charge",
        period,
        detail.detail,
        note,
    )


# A price ready for `bill()`: (price, its amount function, its unit amount when `bill()` can
# inline it: a plain per-unit price on the subscription quantity).
_Compiled = tuple[Price, AmountFn, "Decimal | None"]
# (position among the bill's prices, rounded amount)
_Fixed = tuple[int, Decimal]
# (position, price, amount function, metric, inlined unit amount, proration cut)
_Variable = tuple[int, Price, AmountFn, "str | None", "Decimal | None", "tuple[int, int] | None"]
# The cut of an in-advance price inside a trial (no day of the period charged).
_WAIVED = (0, 0)


def _compiled_prices(plan: Plan) -> tuple[_Compiled, ...]:
    compiled: tuple[_Compiled, ...] | None = plan.compiled
    if compiled is None:
        compiled = tuple((p, amount_fn(p), _inline_unit(p)) for p in plan.prices)
        object.__setattr__(plan, "compiled", compiled)  # a cache on an immutable value
    return compiled


def _inline_unit(price: Price) -> Decimal | None:
    plain = price.model == "per_unit" and price.metric is None and not price.divide_by
    return price.unit_amount if plain else None


def _cut(price: Price, covered: tuple[int, int] | None) -> tuple[int, int] | None:
    """How a price is charged for part of the period (`covered` days of the period's, None
    for all of it): an in-advance price is waived when no day is covered and scaled by the
    days covered when it prorates; anything else is charged whole (None)."""
    if covered is None or price.timing != "in_advance":
        return None
    if covered[0] == 0:
        return _WAIVED
    return covered if price.prorate else None


def _charged_from(charge_from: date | None, trial_end: date | None) -> date | None:
    """The first day charged: the later of `charge_from` and the trial's end."""
    if trial_end is None or (charge_from is not None and charge_from >= trial_end):
        return charge_from
    return trial_end


class Bill:
    """A priced period. Totals are computed eagerly; lines (with tier breakdowns) on first read."""

    __slots__ = (
        "_amounts",
        "_line_discounts",
        "_line_taxes",
        "_lines",
        "_pricer",
        "_quantity",
        "_usage",
        "discount",
        "discounts",
        "subtotal",
        "tax",
        "total",
    )

    def __init__(
        self,
        pricer: PeriodPricer,
        quantity: Decimal,
        usage: Mapping[str, MetricUsage],
        amounts: list[Decimal],
        subtotal: Decimal,
        discount: Decimal,
        tax: Decimal,
        total: Decimal,
        discounts: tuple[AppliedDiscount, ...],
        line_discounts: Sequence[Decimal] | None = None,
        line_taxes: Sequence[Decimal] | None = None,
    ) -> None:
        self._pricer = pricer
        self._line_discounts = line_discounts
        self._line_taxes = line_taxes
        self._quantity = quantity
        self._usage = usage
        self._amounts = amounts  # of the variable prices, in order; then the extra lines
        self._lines: tuple[Line, ...] | None = None
        self.subtotal = subtotal
        self.discount = discount
        self.tax = tax
        self.total = total
        self.discounts = discounts

    plan = property(lambda self: self._pricer._plan.id)
    currency = property(lambda self: self._pricer._catalog.currency)
    period = property(lambda self: self._pricer._period)
    tax_decision = property(lambda self: self._pricer._tax)
    rules = property(lambda self: self._pricer._rules)

    def _rows(self) -> list[_Row | Line]:
        return self._pricer.rows(self._quantity, self._usage, self._amounts)

    @property
    def lines(self) -> tuple[Line, ...]:
        if self._lines is None:
            period = self._pricer._period
            lines = [_materialise(r, period) for r in self._rows()]
            if self._line_discounts is not None or self._line_taxes is not None:
                discounts = self._line_discounts or [ZERO] * len(lines)
                taxes = self._line_taxes or [ZERO] * len(lines)
                lines = [line._replace(discount=d, tax=t) for line, d, t in zip(lines, discounts, taxes, strict=True)]
            self._lines = tuple(lines)
        return self._lines

    @property
    def line_amounts(self) -> tuple[Decimal, ...]:
        """The rounded line amounts in order, without building the lines."""
        return tuple(r.amount if isinstance(r, Line) else r[3] for r in self._rows())

    def __repr__(self) -> str:
        return f"Bill(plan={self.plan!r}, period={self.period}, total={self.total} {self.currency})"


def coverage(period: Period, start: date | None, end: date | None) -> tuple[int, int]:
    """(days covered, days in period) for the part of `period` within [start, end)."""
    lo = period.start if start is None or start < period.start else start
    hi = period.end if end is None or end > period.end else end
    return max((hi - lo).days, 0), period.days


def _price_row(
    price: Price,
    rounder: Rounder,
    quantity: Decimal,
    usage: Mapping[str, MetricUsage],
    covered: tuple[int, int] | None,
    note: str,
) -> _Row:
    if price.metric is None:
        q, tx = quantity, None
    else:
        u = usage.get(price.metric, _NO_USAGE)
        q, tx = u.quantity, u.transactions
    if q < ZERO:
        raise ValueError(f"price {price.id}: quantity {q} is negative")
    amount = amount_fn(price)(q, tx)
    if covered is not None and covered[0] != covered[1] and price.timing == "in_advance":
        if covered[0] == 0:
            amount = ZERO
        elif price.prorate:
            amount = amount * covered[0] / covered[1]
    return (price, q, tx, rounder(amount), note)


def minimum_true_up(
    plan: Plan,
    rounder: Rounder,
    charged: Decimal,
    covered: tuple[int, int] | None = None,
    period: Period | None = None,
    held: Decimal = ZERO,
) -> Line | None:
    """The shortfall below the minimum commitment of a period, as a line (or None).
    `charged` is everything the period was charged before discounts (earlier documents
    included); `covered` prorates the plan's minimum to the days it covers (a period cut short,
    or a plan taken mid-period); `held` is what the plans held earlier in the period commit to,
    as minimum x days: each plan owes its minimum for the days it was held. The sum is divided
    by the period's days once and rounded once."""
    minimum = plan.minimum_amount
    if minimum <= ZERO and held <= ZERO:
        return None
    if held > ZERO:
        assert period is not None, "a minimum held part of a period is prorated over the period's days"
        days = covered[0] if covered is not None else period.days
        minimum = (minimum * days + held) / period.days
    elif covered is not None and covered[0] != covered[1]:
        minimum = minimum * covered[0] / covered[1]
    shortfall = rounder(minimum) - charged
    if shortfall <= ZERO:
        return None
    return Line(
        "minimum_commitment",
        "Minimum commitment true-up",
        "minimum",
        "in_arrears",
        ONE,
        shortfall,
        kind="minimum_commitment",
        period=period,
    )


def _row_id(x: Line | _Row) -> str:
    return x.price_id if isinstance(x, Line) else x[0].id


def _row_amount(x: Line | _Row) -> Decimal:
    return x.amount if isinstance(x, Line) else x[3]


def take_amount(
    rests: list[Decimal], targets: Sequence[int], amount: Decimal
) -> tuple[list[tuple[int, Decimal]], Decimal]:
    """An amount off taken from the targeted lines in order until it is used up: a positive
    amount from lines with something positive left, a negative one (an amount off given
    back by a credit) from lines with something negative left. Returns (line, share) pairs
    and what was taken."""
    taken = ZERO
    shares: list[tuple[int, Decimal]] = []
    for i in targets:
        left = amount - taken
        if left == ZERO:
            break
        rest = rests[i]
        share = min(left, rest) if amount > ZERO else max(left, rest)
        # `left` has the sign of `amount`, so the share has it too exactly when the line's
        # rest has: a line with nothing of that sign left gives nothing.
        if share == ZERO or (share > ZERO) != (amount > ZERO):
            continue
        shares.append((i, share))
        taken += share
    return shares, taken


def discount_lines(
    lines: Sequence[Line | _Row], discounts: Sequence[Discount], rounder: Rounder
) -> tuple[list[Decimal], tuple[AppliedDiscount, ...]]:
    """Each line's discount, rounded once per line, and what each discount took in all.

    Percent discounts come first, in their order, each on what the previous ones left of a
    line; a credit line gets the same percent as the charge it reverses. Then amounts off,
    in their order, each taken from the lines in order until it is used up (it never makes a
    line negative)."""
    ids = [_row_id(x) for x in lines]
    amounts = [_row_amount(x) for x in lines]
    per_line = [ZERO] * len(lines)
    applied = []
    for d in sorted(discounts, key=lambda d: d.percent is None):  # stable: percents first, in order
        targets = [i for i, pid in enumerate(ids) if not d.prices or pid in d.prices]
        if d.percent is not None:
            taken = _percent_off(amounts, per_line, targets, d.percent / HUNDRED, rounder)
        else:
            taken = _amount_off(amounts, per_line, targets, rounder(d.amount or ZERO))
        if taken != ZERO:
            applied.append(AppliedDiscount(d.source, d.reason, taken))
    return per_line, tuple(applied)


def _percent_off(
    amounts: Sequence[Decimal], per_line: list[Decimal], targets: Sequence[int], factor: Decimal, rounder: Rounder
) -> Decimal:
    """A percent off each targeted line's rest, rounded per line; adds to `per_line`."""
    taken = ZERO
    for i in targets:
        off = rounder((amounts[i] - per_line[i]) * factor)
        per_line[i] += off
        taken += off
    return taken


def _amount_off(
    amounts: Sequence[Decimal], per_line: list[Decimal], targets: Sequence[int], amount: Decimal
) -> Decimal:
    """An amount off taken from the targeted lines' rests (see `take_amount`); adds to `per_line`."""
    rests = [a - p for a, p in zip(amounts, per_line, strict=True)]
    shares, taken = take_amount(rests, targets, amount)
    for i, share in shares:
        per_line[i] += share
    return taken


def line_taxes(
    lines: Sequence[Line | _Row], discounts: Sequence[Decimal], factor: Decimal, quantum: Decimal, mode: str
) -> list[Decimal]:
    """Tax per line on what is left after its discount, rounded once per line."""
    return [((_row_amount(x) - d) * factor).quantize(quantum, mode) for x, d in zip(lines, discounts, strict=True)]


class PeriodPricer:
    """Prices one plan for one period, for one or many customers.

    Everything that does not depend on the customer (which prices apply, proration, trial,
    rounding, flat fees) is worked out once here; `bill()` is the per-customer hot path that
    quotes, billing runs and the simulator share.
    """

    __slots__ = (
        "_catalog",
        "_covered",
        "_discounts",
        "_extra",
        "_extra_total",
        "_fixed",
        "_fixed_total",
        "_held",
        "_minimum",
        "_mode",
        "_period",
        "_plan",
        "_prices",
        "_prior",
        "_quantum",
        "_rounder",
        "_rules",
        "_tax",
        "_tax_factor",
        "_trial_note",
        "_variable",
    )

    def __init__(
        self,
        catalog: Catalog,
        plan: Plan,
        period: Period,
        *,
        timings: Collection[str] = BOTH_TIMINGS,
        charge_from: date | None = None,
        charge_until: date | None = None,
        trial_end: date | None = None,
        discounts: Sequence[Discount] = (),
        tax: TaxDecision = NO_TAX,
        minimum: bool = True,
        extra_lines: Sequence[Line] = (),
        rules: Sequence[Mapping[str, Any]] = (),
        prior_charged: Decimal = ZERO,
        held_minimum: Decimal = ZERO,
    ) -> None:
        rounder = catalog.rounder
        self._catalog, self._plan, self._period, self._rounder = catalog, plan, period, rounder
        self._quantum, self._mode = rounder.quantum, rounder.mode_constant
        covered = coverage(period, _charged_from(charge_from, trial_end), charge_until)
        self._covered = None if covered[0] == covered[1] else covered
        in_trial = trial_end is not None and trial_end > period.start
        self._trial_note = "trial" if in_trial and covered[0] == 0 else ""
        self._split(_compiled_prices(plan), timings)
        # The caller says when the minimum is settled: at the period's close (or a whole-period
        # quote), against everything the period was charged, earlier documents included.
        # `held_minimum`: the plans held earlier in the period commit too (minimum x days).
        self._minimum = minimum and (plan.minimum_amount > ZERO or held_minimum > ZERO)
        self._held = held_minimum
        self._prior = prior_charged
        self._extra = tuple(extra_lines)
        self._extra_total = sum((line.amount for line in self._extra), ZERO)
        # rate % as a factor; the product is rounded once, as before.
        self._tax_factor = tax.rate / HUNDRED if tax.rate else None
        self._discounts = tuple(discounts)
        self._tax = tax
        self._rules = tuple(rules)

    def _split(self, compiled: Sequence[_Compiled], timings: Collection[str]) -> None:
        """The prices charged (those of `timings`), split in two: a flat fee that is neither
        prorated nor waived is the same for every customer: it is priced once here, and
        `bill()` loops over the variable prices only."""
        prices: list[Price] = []
        fixed: list[_Fixed] = []
        variable: list[_Variable] = []
        covered = self._covered
        for price, fn, unit in compiled:
            if price.timing not in timings:
                continue
            cut = _cut(price, covered)
            if price.model == "flat" and cut is None:
                fixed.append((len(prices), fn(ONE, None).quantize(self._quantum, self._mode)))
            else:
                variable.append((len(prices), price, fn, price.metric, unit, cut))
            prices.append(price)
        self._prices, self._fixed, self._variable = tuple(prices), tuple(fixed), tuple(variable)
        self._fixed_total = sum([a for _, a in fixed], ZERO)

    def bill(self, quantity: Decimal = ONE, usage: Mapping[str, MetricUsage] | None = None) -> Bill:
        if quantity < ZERO:
            raise ValueError(f"quantity {quantity} is negative")
        usage = usage or {}
        quantum, mode = self._quantum, self._mode
        amounts: list[Decimal] = []
        append = amounts.append
        subtotal = self._fixed_total
        # The hot path of every quote, invoice and simulation: kept flat on purpose.
        for _, price, fn, metric, unit, cut in self._variable:
            if unit is not None:
                amount = quantity * unit
            elif metric is None:
                amount = fn(quantity, None)
            else:
                u = usage.get(metric, _NO_USAGE)
                if u.quantity < ZERO:
                    raise ValueError(f"price {price.id}: quantity {u.quantity} is negative")
                amount = fn(u.quantity, u.transactions)
            if cut is not None:
                amount = ZERO if cut is _WAIVED else amount * cut[0] / cut[1]
            amount = amount.quantize(quantum, mode)
            append(amount)
            subtotal += amount
        if self._minimum:
            true_up = minimum_true_up(
                self._plan, self._rounder, self._prior + subtotal, self._covered, self._period, self._held
            )
            if true_up is not None:
                append(true_up.amount)
                subtotal += true_up.amount
        subtotal += self._extra_total
        if not self._discounts and self._tax_factor is None:
            return Bill(self, quantity, usage, amounts, subtotal, ZERO, ZERO, subtotal, ())
        rows = self.rows(quantity, usage, amounts)
        per_line, applied = discount_lines(rows, self._discounts, self._rounder)
        discount = sum(per_line, ZERO)
        if self._tax_factor is None:
            return Bill(
                self, quantity, usage, amounts, subtotal, discount, ZERO, subtotal - discount, applied, per_line
            )
        taxes = line_taxes(rows, per_line, self._tax_factor, quantum, mode)
        tax_amount = sum(taxes, ZERO)
        return Bill(
            self,
            quantity,
            usage,
            amounts,
            subtotal,
            discount,
            tax_amount,
            subtotal - discount + tax_amount,
            applied,
            per_line,
            taxes,
        )

    def rows(
        self, quantity: Decimal, usage: Mapping[str, MetricUsage], amounts: Sequence[Decimal]
    ) -> list[_Row | Line]:
        """The bill's rows in order, rebuilt from the prices and the variable amounts."""
        by_position: dict[int, Decimal] = dict(self._fixed)
        for (position, *_), amount in zip(self._variable, amounts, strict=False):
            by_position[position] = amount
        rows: list[_Row | Line] = []
        charged = ZERO
        for position, price in enumerate(self._prices):
            if price.metric is None:
                q, tx = quantity, None
            else:
                u = usage.get(price.metric, _NO_USAGE)
                q, tx = u.quantity, u.transactions
            note = self._trial_note if price.timing == "in_advance" else ""
            rows.append((price, q, tx, by_position[position], note))
            charged += by_position[position]
        if len(amounts) > len(self._variable):  # the minimum commitment true-up
            true_up = minimum_true_up(
                self._plan, self._rounder, self._prior + charged, self._covered, self._period, self._held
            )
            assert true_up is not None
            rows.append(true_up)
        rows.extend(self._extra)
        return rows


def price_period(
    catalog: Catalog,
    plan: Plan,
    period: Period,
    *,
    quantity: Decimal = ONE,
    usage: Mapping[str, MetricUsage] | None = None,
    timings: Collection[str] = BOTH_TIMINGS,
    charge_from: date | None = None,
    charge_until: date | None = None,
    trial_end: date | None = None,
    discounts: Sequence[Discount] = (),
    tax: TaxDecision = NO_TAX,
    minimum: bool = True,
    extra_lines: Sequence[Line] = (),
    rules: Sequence[Mapping[str, Any]] = (),
    prior_charged: Decimal = ZERO,
) -> Bill:
    """Price `plan` for `period`.

    - in-advance prices cover [charge_from, charge_until) of the period, prorated by days;
      inside a trial (before `trial_end`) they are not charged;
    - in-arrears prices price the metric usage of the period;
    - the minimum commitment tops up the period's charges;
    - discounts apply per line (percentages first, then amounts off; see `discount_lines`),
      then tax per line on what is left. Every figure is rounded once per line and the
      totals are their sums, so a bill always equals the sum of its lines.

    For many customers on the same plan and period, build one `PeriodPricer` and call its
    `bill()` per customer: the same code without the per-call setup.
    """
    pricer = PeriodPricer(
        catalog,
        plan,
        period,
        timings=timings,
        charge_from=charge_from,
        charge_until=charge_until,
        trial_end=trial_end,
        discounts=discounts,
        tax=tax,
        minimum=minimum,
        extra_lines=extra_lines,
        rules=rules,
        prior_charged=prior_charged,
    )
    return pricer.bill(quantity, usage)
