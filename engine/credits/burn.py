"""Usage burning a custom-unit wallet (tokens) as it is recorded (docs/credits.md, Token wallets).

No running total is stored: what usage has burned is the sum of the wallet's usage
consumptions (entries of kind `consumption` that name no invoice), and what it must burn is the
customer's usage of the burning metrics times their rates, which sales counts. A burn writes the
difference, so a redelivered trigger, or a second worker that waited on the first one's lock,
finds nothing left to burn. What the wallet cannot pay stays owed: the next grant pays it first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.credits.amounts import amount_text
from engine.credits.drawdown import allocate
from engine.credits.models import Entry, Grant
from engine.credits.wallet import usable
from engine.store import add_event

ZERO = Decimal(0)
USAGE = "usage"  # the note of a usage consumption


@dataclass(frozen=True, slots=True)
class Burned:
    grant_id: str
    amount: Decimal  # taken from the grant by this burn
    used_before: Decimal  # what the grant had given before it
    entry_id: int


def burned(session: Session, customer_id: str, unit: str) -> Decimal:
    """What usage has burned of the customer's `unit` so far (invoices' draws excluded)."""
    rows = session.scalars(
        select(Entry.amount).join(Grant, Grant.id == Entry.grant_id)
        .where(Entry.customer_id == customer_id, Entry.kind == "consumption", Entry.invoice_id.is_(None),
               Grant.unit == unit)
    )
    return -sum(rows, ZERO)


def burn(session: Session, customer_id: str, unit: str, required: Decimal, now: datetime) -> list[Burned]:
    """Burn what `required` (the usage so far, in the unit) asks beyond what was burned, from the
    usable grants in draw order, never below zero. One `consumption` entry and one
    `credits.consumed` event per grant drawn (the journal earns the pack's share of it)."""
    # Every burner of this wallet locks its active grants first (PostgreSQL; SQLite has one
    # writer), then reads what was burned: a concurrent burn is committed and counted by then.
    session.execute(select(Grant.id).where(Grant.customer_id == customer_id, Grant.unit == unit,
                                           Grant.status == "active").order_by(Grant.id).with_for_update())
    owed = required - burned(session, customer_id, unit)
    if owed <= ZERO:
        return []
    grants = usable(session, customer_id, unit, now)
    left = {g.grant_id: g.remaining for g in grants}
    stmt = select(Grant.id, Grant.amount).where(Grant.id.in_(list(left)))
    amounts = {gid: amount for gid, amount in session.execute(stmt)}
    out = []
    for draw in allocate(grants, [(0, owed)]):
        entry = Entry(customer_id=customer_id, grant_id=draw.grant_id, kind="consumption", amount=-draw.amount,
                      note=USAGE, created_at=now)
        session.add(entry)
        session.flush()  # its id names the journal's entry
        done = Burned(draw.grant_id, draw.amount, amounts[draw.grant_id] - left[draw.grant_id], entry.id)
        add_event(session, "credits.consumed", customer_id, {
            "grant_id": done.grant_id, "unit": unit, "amount": amount_text(done.amount, unit),
            "used_before": amount_text(done.used_before, unit), "entry_id": done.entry_id, "by": USAGE}, time=now)
        out.append(done)
    return out
