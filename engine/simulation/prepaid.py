"""Credit packs in a what-if: a share of the cohort buys a catalog's pack when it joins, and
the wallet pays their bills, with the engine's own rules (engine.credits): the draw-down order
(`allocate`), a grant's expiry (`grant_expiry`), the automatic top-up's decision
(`top_up_due`) and what a pack's use earns (`earned`, as the journal books it).

What the pricing manager reads per catalog: cash taken at sale against revenue earned as the
credit is consumed (and as breakage when it expires unused), what is still deferred at the end,
how many customers bought, topped up, or ran out (a bill the wallet could not pay in full).
A token pack (a catalog whose credit is a custom unit) is burned by the month's usage of the
catalog's `credits.burn` metrics (`burn_asked`, the rates of the engine's burn), never by a
bill; what usage asks beyond the tokens is owed to the next grant, as the engine's burn owes it.

Simplifications (docs/console.md, *Credit packs and progressive billing*): the bills drawn are
the what-if's, before tax; a month's bills are drawn at the month's end (so a grant ending with
the period still pays them, as in the engine, whose expiry job runs after each billing run);
a pack sells at its list price and a top-up's credit counts at once (its invoice paid).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from engine.catalog.model import Catalog, CreditPack
from engine.credits.drawdown import Available, allocate
from engine.credits.terms import burn_asked, earned, grant_expiry, top_up_due
from engine.pricing import MetricUsage
from engine.simulation.errors import SimulationError
from engine.simulation.moves import share_of_cohort

ZERO = Decimal(0)


@dataclass(frozen=True)
class Prepaid:
    """`share` (0 < share <= 1) of the cohort buys `pack` when they join; with `top_up` the
    catalog's automatic top-up (`credits.top_up`) buys again below its threshold."""

    share: Decimal
    pack: str
    top_up: bool = False
    seed: int = 7

    def picks(self, customer_id: str) -> bool:
        """A seeded draw per customer: the same flags pick the same customers, in any order."""
        digest = hashlib.blake2b(f"{self.seed}:prepaid:{customer_id}".encode(), digest_size=8).digest()
        return Decimal(int.from_bytes(digest, "big")) / Decimal(1 << 64) < self.share


def parse_prepaid(text: str, flag: str = "--prepaid", *, seed: int = 7) -> Prepaid:
    """"30%:starter", "0.3:starter" or "30%:starter:top-up"."""
    parts = [p.strip() for p in text.split(":")]
    if len(parts) not in (2, 3) or not all(parts) or (len(parts) == 3 and parts[2] != "top-up"):
        raise SimulationError(f"{flag}: {text!r} is not SHARE:PACK[:top-up] (e.g. 30%:starter)")
    return Prepaid(share_of_cohort(parts[0], flag), parts[1], len(parts) == 3, seed)


def check_prepaid(catalog: Catalog, prepaid: Prepaid, side: str) -> None:
    """The pack (and, with top_up, the catalog's top-up) exists. A money pack pays bills; a
    custom-unit (token) pack is burned by the usage of the catalog's `credits.burn` metrics."""
    credits = catalog.credits
    where = f"the {side} catalog {catalog.name!r}"
    if credits is None or prepaid.pack not in credits.packs:
        known = ", ".join(sorted(credits.packs)) if credits else "none"
        raise SimulationError(f"prepaid.pack: {prepaid.pack!r} is not a credit pack of {where} (packs: {known})")
    if prepaid.top_up and credits.top_up is None:
        raise SimulationError(f"prepaid.top_up: {where} declares no credits.top_up")


@dataclass
class _Grant:
    """A pack's grant in a simulated wallet: what is left of it and what bills used."""

    id: str
    pack: CreditPack
    expires_at: datetime | None
    created_at: datetime
    left: Decimal
    used: Decimal = ZERO

    def available(self) -> Available:
        return Available(self.id, self.left, self.pack.terms.priority, self.expires_at, self.created_at)


@dataclass
class PackFigures:
    """One catalog's prepaid figures over the run (amounts in the catalog's currency)."""

    customers: int = 0  # who bought a pack
    packs_sold: int = 0  # first packs and top-ups
    top_ups: int = 0
    sold: Decimal = ZERO  # cash at sale: the packs' prices
    credit: Decimal = ZERO  # credit granted
    consumed: Decimal = ZERO  # credit that paid bills
    earned: Decimal = ZERO  # revenue recognised as the credit was consumed
    expired: Decimal = ZERO  # credit that expired unused
    breakage: Decimal = ZERO  # revenue recognised when it expired
    collected: Decimal = ZERO  # what the wallets could not pay: collected as usual
    ran_out: int = 0  # customers with at least one bill (or burn) the wallet could not pay in full
    unit: str | None = None  # a token wallet's unit (credit, consumed, expired in it); None: money
    unburned: Decimal = ZERO  # a token wallet: usage asked beyond what the wallet held, in its unit

    @property
    def deferred(self) -> Decimal:
        """Sold, not yet earned: the liability left at the end of the run."""
        return self.sold - self.earned - self.breakage

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "customers": self.customers, "packs_sold": self.packs_sold, "top_ups": self.top_ups,
            "sold": self.sold, "credit": self.credit, "consumed": self.consumed, "earned": self.earned,
            "expired": self.expired, "breakage": self.breakage, "deferred": self.deferred,
            "collected": self.collected, "ran_out": self.ran_out}
        if self.unit is not None:  # a token wallet's figures say their unit and what usage went beyond
            out |= {"unit": self.unit, "unburned": self.unburned}
        return out


@dataclass
class Wallets:
    """The prepaying customers' wallets on one catalog."""

    catalog: Catalog
    prepaid: Prepaid
    figures: PackFigures = field(default_factory=PackFigures)
    _wallets: dict[int, list[_Grant]] = field(default_factory=dict)
    _short: set[int] = field(default_factory=set)
    _count: int = 0
    _owed: dict[int, Decimal] = field(default_factory=dict)  # token wallets: usage not burned yet

    def __post_init__(self) -> None:
        credits = self.catalog.credits
        assert credits is not None  # check_prepaid said so
        self.pack = credits.packs[self.prepaid.pack]
        top_up = credits.top_up if self.prepaid.top_up else None
        self.top_up = (top_up.threshold, credits.packs[top_up.pack]) if top_up is not None else None
        self.currency = self.catalog.currency
        self.burn = credits.burn if credits.custom else None  # a token wallet: usage burns it
        self.figures.unit = credits.unit if credits.custom else None

    def asked(self, billed: Decimal, usage: dict[str, MetricUsage]) -> Decimal:
        """What a customer-month asks of the wallet: a money wallet pays the month's bills; a
        token wallet is burned by the month's usage of the burning metrics (never by a bill)."""
        if self.burn is None:
            return billed
        return burn_asked({m: u.quantity for m, u in usage.items()}, self.burn)

    def holds(self, i: int) -> bool:
        return i in self._wallets

    def join(self, i: int, at: datetime, period_end: date | None) -> None:
        """Customer i buys the pack as they join."""
        self._wallets[i] = []
        self.figures.customers += 1
        self._buy(i, self.pack, at, period_end)

    def _buy(self, i: int, pack: CreditPack, at: datetime, period_end: date | None) -> None:
        self._count += 1
        self._wallets[i].append(_Grant(f"g{self._count}", pack, grant_expiry(pack.terms, at, period_end), at,
                                       pack.credit))
        f = self.figures
        f.packs_sold += 1
        f.sold += pack.price
        f.credit += pack.credit

    def pay(self, i: int, amount: Decimal, at: datetime, period_end: date | None) -> None:
        """Customer i's bills (or a token wallet's burn) of a month, drawn at `at`; then the
        top-up, then the expiries. A money wallet's shortfall is collected as usual; a token
        wallet's is owed, as the engine's burn owes it: the next grant (the top-up bought
        now, or a later one) pays it first."""
        grants = self._wallets[i]
        if self.burn is not None:
            amount += self._owed.pop(i, ZERO)
        short = amount - self._draw(grants, amount)
        if short > ZERO and self.burn is None:
            self._short_of(i, short)  # the bill is collected; a later top-up does not pay it
        if self.top_up is not None:
            threshold, pack = self.top_up
            if top_up_due(sum((g.left for g in grants), ZERO), ZERO, threshold):
                self.figures.top_ups += 1
                self._buy(i, pack, at, period_end)
                if short > ZERO and self.burn is not None:  # the new tokens pay what usage owed
                    short -= self._draw(grants, short)
        if short > ZERO and self.burn is not None:
            self._owed[i] = short
            self._short_of(i, short)
        self._expire(grants, at)

    def _draw(self, grants: list[_Grant], amount: Decimal) -> Decimal:
        """Draw `amount` from the grants in the engine's order (`allocate`); what it drew."""
        by_id = {g.id: g for g in grants if g.left > ZERO}
        paid = ZERO
        for draw in allocate([g.available() for g in by_id.values()], [(0, amount)]):
            g = by_id[draw.grant_id]
            g.left -= draw.amount
            g.used += draw.amount
            paid += draw.amount
        self.figures.consumed += paid
        return paid

    def _short_of(self, i: int, amount: Decimal) -> None:
        if self.burn is None:
            self.figures.collected += amount
        if i not in self._short:
            self._short.add(i)
            self.figures.ran_out += 1

    def _expire(self, grants: list[_Grant], at: datetime) -> None:
        """As the engine's expiry job after a billing run: what is left of a grant whose time
        is up leaves the wallet, and what it still deferred is earned as breakage."""
        for g in grants:
            if g.left > ZERO and g.expires_at is not None and g.expires_at <= at:
                self.figures.expired += g.left
                self.figures.breakage += g.pack.price - earned(g.pack.price, g.pack.credit, g.used, self.currency)
                g.left = ZERO

    def finish(self) -> PackFigures:
        """The figures, with what the credit consumed has earned: per grant on its cumulative
        use, rounded half-even to the cent as the journal does (so a pack used up earns its
        price exactly)."""
        self.figures.unburned = sum(self._owed.values(), ZERO)  # still owed at the end
        self.figures.earned = sum(
            (earned(g.pack.price, g.pack.credit, g.used, self.currency)
             for grants in self._wallets.values() for g in grants),
            ZERO,
        )
        return self.figures
