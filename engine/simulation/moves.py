"""Where customers go in the draft: every customer of plan A to plan B (`--move A=B`, the
simulation's `plan_map`), or a share of the cohort to a (new) plan (`--share B=30%`,
optionally only from some plans: `--share B=30%:A,C`). Who is in a share is a seeded draw per
customer, so the same flags pick the same customers and the draw does not depend on the
cohort's order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from engine.catalog.model import Catalog
from engine.simulation.cohort import Cohort
from engine.simulation.errors import SimulationError

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Share:
    """`share` (0 < share <= 1) of the customers of `from_plans` (empty: of every plan) take
    plan `to` in the draft."""

    to: str
    share: Decimal
    from_plans: tuple[str, ...] = ()

    def label(self) -> str:
        of = f" of {', '.join(self.from_plans)}" if self.from_plans else " of the cohort"
        return f"{(self.share * HUNDRED).normalize():f}%{of} to {self.to}"


def parse_move(text: str, flag: str = "--move") -> tuple[str, str]:
    """"A=B" -> (A, B)."""
    a, sep, b = text.partition("=")
    if not sep or not a.strip() or not b.strip():
        raise SimulationError(f"{flag}: {text!r} is not FROM=TO (e.g. pro=team)")
    return a.strip(), b.strip()


def parse_share(text: str, flag: str = "--share") -> Share:
    """"B=30%", "B=0.3" or "B=30%:A,C"."""
    to, sep, rest = text.partition("=")
    amount, _, plans = rest.partition(":")
    if not sep or not to.strip() or not amount.strip():
        raise SimulationError(f"{flag}: {text!r} is not PLAN=SHARE[:FROM,...] (e.g. team=30% or team=0.3:pro)")
    share = share_of_cohort(amount.strip(), flag)
    return Share(to.strip(), share, tuple(p.strip() for p in plans.split(",") if p.strip()))


def share_of_cohort(raw: str, flag: str) -> Decimal:
    """A share of the cohort, "30%" or "0.3": more than 0 and at most 1."""
    try:
        share = Decimal(raw[:-1]) / HUNDRED if raw.endswith("%") else Decimal(raw)
    except InvalidOperation:
        raise SimulationError(f"{flag}: {raw!r} is not a share (30% or 0.3)") from None
    if not share.is_finite() or not 0 < share <= 1:
        raise SimulationError(f"{flag}: {raw!r} must be more than 0% and at most 100%")
    return share


def check(baseline: Catalog, draft: Catalog, moves: Mapping[str, str], shares: Sequence[Share]) -> None:
    """Every plan named exists: a source in the baseline, a destination in the draft."""
    problems = []
    for a, b in moves.items():
        if a not in baseline.plans:
            problems.append(f"--move {a}={b}: {a!r} is not a plan of the baseline ({', '.join(sorted(baseline.plans))})")
        if b not in draft.plans:
            problems.append(f"--move {a}={b}: {b!r} is not a plan of the draft ({', '.join(sorted(draft.plans))})")
    for s in shares:
        if s.to not in draft.plans:
            problems.append(f"--share {s.to}: {s.to!r} is not a plan of the draft ({', '.join(sorted(draft.plans))})")
        problems += [f"--share {s.to}: {p!r} is not a plan of the baseline" for p in s.from_plans if p not in baseline.plans]
    if problems:
        raise SimulationError("; ".join(problems))


def _draw(seed: int, index: int, customer_id: str) -> Decimal:
    digest = hashlib.blake2b(f"{seed}:{index}:{customer_id}".encode(), digest_size=8).digest()
    return Decimal(int.from_bytes(digest, "big")) / Decimal(1 << 64)


def assign(cohort: Cohort, shares: Iterable[Share], *, seed: int = 7) -> dict[str, str]:
    """customer id -> draft plan for the customers a share picks (a later share wins)."""
    out: dict[str, str] = {}
    for index, s in enumerate(shares):
        for c in cohort.customers:
            if (not s.from_plans or c.plan in s.from_plans) and _draw(seed, index, c.id) < s.share:
                out[c.id] = s.to
    return out
