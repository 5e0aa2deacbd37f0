"""One price applied to one quantity: the exact (unrounded) amount and the tiers it used.

Every model of FORMATS §1. Amounts here are exact Decimals; the bill rounds once per line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from engine.catalog.model import Price, Tier
from engine.money import HUNDRED, ZERO

_ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class TierUse:
    tier: int  # 1-based, as the quote shows it
    quantity: Decimal
    amount: Decimal  # exact


@dataclass(frozen=True, slots=True)
class Charge:
    quantity: Decimal
    amount: Decimal  # exact
    tiers: tuple[TierUse, ...] = ()
    detail: tuple[tuple[str, Decimal], ...] = ()  # model-specific figures (packages, free units)


def transform(price: Price, q: Decimal) -> Decimal:
    """`transform: {divide_by, round}` applied before pricing (e.g. bytes -> started GB)."""
    if price.divide_by is None:
        return q
    return (q / price.divide_by).to_integral_value(rounding=ROUND_CEILING if price.round == "up" else ROUND_FLOOR)


def _flat(price: Price, q: Decimal, _tx: Sequence[Decimal] | None) -> Charge:
    return Charge(_ONE, price.amount)


def _per_unit(price: Price, q: Decimal, _tx: Sequence[Decimal] | None) -> Charge:
    return Charge(q, q * price.unit_amount)


def _graduated_tiers(tiers: Sequence[Tier], q: Decimal, percent: bool) -> tuple[Decimal, tuple[TierUse, ...]]:
    # Tier i covers (previous bound, up_to]; q = 0 falls in the first tier, so a first tier's
    # flat_amount is a base fee. A later tier's flat_amount is due once q reaches into it.
    lower = ZERO
    total = ZERO
    uses = []
    for i, tier in enumerate(tiers, 1):
        if i > 1 and q <= lower:
            break
        upper = tier.up_to
        # min/max keep the first of equals: `upper` at the bound, `units` at zero, as written
        units = max((q if upper is None else min(upper, q)) - lower, ZERO)
        amount = (units * tier.rate / HUNDRED if percent else units * tier.unit_amount) + tier.flat_amount
        uses.append(TierUse(i, units, amount))
        total += amount
        if upper is None or q <= upper:
            break
        lower = upper
    return total, tuple(uses)


def _graduated(price: Price, q: Decimal, _tx: Sequence[Decimal] | None) -> Charge:
    total, uses = _graduated_tiers(price.tiers, q, percent=False)
    return Charge(q, total, uses)


def _graduated_percentage(price: Price, q: Decimal, _tx: Sequence[Decimal] | None) -> Charge:
    total, uses = _graduated_tiers(price.tiers, q, percent=True)
    return Charge(q, total, uses)


def volume_tier(tiers: Sequence[Tier], q: Decimal) -> int:
    for i, tier in enumerate(tiers):
        if tier.up_to is None or q <= tier.up_to:
            return i
    return len(tiers) - 1  # unreachable for a valid catalog: the last tier is open


def _volume(price: Price, q: Decimal, _tx: Sequence[Decimal] | None) -> Charge:
    i = volume_tier(price.tiers, q)
    tier = price.tiers[i]
    amount = q * tier.unit_amount + tier.flat_amount
    return Charge(q, amount, (TierUse(i + 1, q, amount),))


def _package(price: Price, q: Decimal, _tx: Sequence[Decimal] | None) -> Charge:
    billable = max(q - price.free_units, ZERO)
    packages = (billable / price.package_size).to_integral_value(rounding=ROUND_CEILING)
    return Charge(
        q, packages * price.amount, detail=(("packages", packages), ("free_units", Decimal(price.free_units)))
    )


def _percentage(price: Price, q: Decimal, transactions: Sequence[Decimal] | None) -> Charge:
    """Per transaction: rate % + fixed fee, clamped to [min, max]; free while both allowances
    last (first `free_units` transactions and running volume within `free_amount`)."""
    txs: Sequence[Decimal] = transactions if transactions is not None else ((q,) if q else ())
    rate = price.rate / HUNDRED
    fixed = price.fixed_amount
    lo, hi = price.min_per_transaction, price.max_per_transaction
    has_units = price.free_units_given
    has_amount = price.free_amount is not None
    any_allowance = has_units or has_amount
    free_amount = price.free_amount if price.free_amount is not None else ZERO
    running = ZERO
    free_exhausted = not any_allowance
    total = ZERO
    free_count = 0
    for n, tx in enumerate(txs):
        if not free_exhausted:
            within_units = (not has_units) or n < price.free_units
            if within_units:
                after = running + tx
                if not has_amount or after <= free_amount:
                    running = after
                    free_count += 1
                    continue
                # This transaction crosses the free amount: it pays on its part above it.
                fee = (after - free_amount) * rate + fixed
                running = after
                free_exhausted = True
                total += _clamp(fee, lo, hi)
                continue
            free_exhausted = True
        total += _clamp(tx * rate + fixed, lo, hi)
    volume = sum(txs, ZERO)
    return Charge(
        Decimal(len(txs)),
        total,
        detail=(("volume", volume), ("free_transactions", Decimal(free_count))),
    )


def _clamp(fee: Decimal, lo: Decimal | None, hi: Decimal | None) -> Decimal:
    if lo is not None and fee < lo:
        fee = lo
    if hi is not None and fee > hi:
        fee = hi
    return fee


MODELS: dict[str, Callable[[Price, Decimal, Sequence[Decimal] | None], Charge]] = {
    "flat": _flat,
    "per_unit": _per_unit,
    "graduated": _graduated,
    "volume": _volume,
    "package": _package,
    "graduated_percentage": _graduated_percentage,
    "percentage": _percentage,
}


def charge(price: Price, quantity: Decimal, transactions: Sequence[Decimal] | None = None) -> Charge:
    """Price `quantity` (already the metric's aggregate or the subscription quantity)."""
    if quantity < ZERO:
        raise ValueError(f"price {price.id}: quantity {quantity} is negative")
    return MODELS[price.model](price, transform(price, quantity), transactions)


AmountFn = Callable[[Decimal, Sequence[Decimal] | None], Decimal]


def _compile(price: Price) -> AmountFn:
    """A specialised function computing only the exact amount: the hot path of quotes,
    billing runs and simulations. `charge()` stays the reference (tiers, details); a
    property test holds the two equal."""
    model = price.model
    fn: AmountFn
    if model == "flat":
        constant = price.amount

        def fn(q: Decimal, tx: Sequence[Decimal] | None) -> Decimal:
            return constant

        return fn  # a flat fee takes no transform
    if model == "per_unit":
        unit = price.unit_amount

        def fn(q: Decimal, tx: Sequence[Decimal] | None) -> Decimal:
            return q * unit
    elif model == "graduated":
        # (upper bound, lower bound, unit amount, amount due at the lower bound including
        # this tier's flat fee): a quantity costs one scan and one multiply-add. Exact: the
        # cumulative amounts are sums of exact products.
        table = []
        lower = ZERO
        before = ZERO
        for tier in price.tiers:
            base = before + tier.flat_amount
            table.append((tier.up_to, lower, tier.unit_amount, base))
            if tier.up_to is not None:
                before = base + (tier.up_to - lower) * tier.unit_amount
                lower = tier.up_to
        rows = tuple(table)

        def fn(q: Decimal, tx: Sequence[Decimal] | None) -> Decimal:
            for up, lo, unit, base in rows:
                if up is None or q <= up:
                    return base + (q - lo) * unit
            raise AssertionError("a validated price has an open last tier")
    else:
        detailed = MODELS[model]

        def fn(q: Decimal, tx: Sequence[Decimal] | None) -> Decimal:
            return detailed(price, q, tx).amount

        if model in ("percentage", "graduated_percentage"):
            return fn
    if price.divide_by is None:
        return fn
    inner = fn

    def transformed(q: Decimal, tx: Sequence[Decimal] | None) -> Decimal:
        return inner(transform(price, q), tx)

    return transformed


def amount_fn(price: Price) -> AmountFn:
    fn: AmountFn | None = price.compiled
    if fn is None:
        fn = _compile(price)
        object.__setattr__(price, "compiled", fn)  # a cache on an immutable value
    return fn
