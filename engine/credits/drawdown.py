"""Which grants pay for a charge: pure, so the property tests and the simulator use it as is.

Order: lower priority first, then the earliest expiry (a grant that never expires last), then
the oldest grant. A charge takes what it can from each in turn; what no grant covers is left
for collection (or, with an overdraft, for the wallet to owe)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

ZERO = Decimal(0)
_NEVER = datetime.max.replace(year=9999)


@dataclass(frozen=True, slots=True)
class Available:
    grant_id: str
    remaining: Decimal
    priority: int
    expires_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Draw:
    grant_id: str
    amount: Decimal
    charge: int  # what it paid: an invoice line's position


def draw_order(grants: list[Available]) -> list[Available]:
    def key(g: Available) -> tuple[int, datetime, datetime, str]:
        expiry = g.expires_at.replace(tzinfo=None) if g.expires_at else _NEVER
        return g.priority, expiry, g.created_at.replace(tzinfo=None), g.grant_id

    return sorted((g for g in grants if g.remaining > ZERO), key=key)


def allocate(grants: list[Available], charges: list[tuple[int, Decimal]]) -> list[Draw]:
    """Draw `charges` (line, amount), in their order, from `grants` in draw order."""
    left = {g.grant_id: g.remaining for g in grants}
    order = draw_order(grants)
    draws: list[Draw] = []
    for charge, amount in charges:
        need = amount
        for g in order:
            if need <= ZERO:
                break
            take = min(need, left[g.grant_id])
            if take > ZERO:
                draws.append(Draw(g.grant_id, take, charge))
                left[g.grant_id] -= take
                need -= take
    return draws
