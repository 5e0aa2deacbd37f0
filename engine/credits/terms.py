"""Pure decisions about a grant's life, shared by the engine (sales, the journal, the top-up)
and the what-if simulator, so a simulated wallet follows the very rules a real one does:
when a grant expires, what a pack's use has earned, when an automatic top-up is due."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal

from engine.catalog.model import CreditTerms
from engine.durations import parse_duration
from engine.money import KNOWN_CURRENCIES, quantum

ZERO = Decimal(0)


def grant_expiry(terms: CreditTerms, now: datetime, period_end: date | None) -> datetime | None:
    """`expires_after` from `now`; with rollover none, at the latest at the end of the billing
    period running at `now` (`period_end`, None when there is none). None: never expires."""
    ends = [parse_duration(terms.expires_after).after(now)] if terms.expires_after else []
    if terms.rollover == "none" and period_end is not None:
        ends.append(datetime.combine(period_end, time(), tzinfo=UTC))
    return min(ends) if ends else None


def earned(total: Decimal, credit: Decimal, used: Decimal, currency: str) -> Decimal:
    """What `used` of a pack's `credit` has earned of the `total` deferred for it: rounded
    half-even to the cent on the cumulative use, so the shares of successive uses telescope
    and a pack used up has earned exactly what it deferred."""
    if credit <= ZERO:
        return ZERO
    return min(total, (used * total / credit).quantize(quantum(currency), ROUND_HALF_EVEN))


def credit_share(credit: Decimal, price: Decimal, net: Decimal, unit: str) -> Decimal:
    """The credit a credit note of `net` (before tax) on a pack's invoice takes back, in the
    grant's unit: the note's share of the pack's `price` (its deferred net) times its `credit`,
    `net x credit / price`, rounded half-even at the unit's step: a currency's minor unit, a
    custom unit's (tokens) whole units unless the pack's credit is declared finer (then its
    places). Rounded, not floored: the note's money and the credit it takes back differ by at
    most half a step either way (docs/credits.md, *A credit note on a pack's invoice*)."""
    if price <= ZERO or net <= ZERO:
        return ZERO
    return (net * credit / price).quantize(_step(credit, unit), ROUND_HALF_EVEN)


def _step(credit: Decimal, unit: str) -> Decimal:
    if unit in KNOWN_CURRENCIES:
        return quantum(unit)
    places = credit.normalize().as_tuple().exponent
    return Decimal(1).scaleb(min(0, places if isinstance(places, int) else 0))


def burn_asked(quantities: Mapping[str, Decimal], burn: Mapping[str, Decimal]) -> Decimal:
    """The units usage burns from a token wallet: each burning metric's quantity (as the
    invoice counts it) times its rate, exact (a custom unit is never rounded); metrics that
    burn nothing are ignored (docs/credits.md, Token wallets)."""
    return sum((quantities.get(metric, ZERO) * rate for metric, rate in burn.items()), ZERO)


def top_up_due(balance: Decimal, pending: Decimal, threshold: Decimal) -> bool:
    """An automatic top-up is due when the balance, with packs bought but not paid yet, is
    below the threshold (at the threshold it is not)."""
    return balance + pending < threshold
