"""Usage burning a custom-unit wallet (tokens) as it is recorded (docs/credits.md, Token wallets).

No running total is stored: what usage has burned is the sum of the wallet's usage
consumptions (entries of kind `consumption` that name no invoice), and what it must burn is the
customer's usage of the burning metrics times their rates, which sales counts. A burn writes the
difference, so a redelivered trigger, or a second worker that waited on the first one's lock,
finds nothing left to burn. What the wallet cannot pay stays owed: the next grant pays it first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.credits.amounts import amount_text
from engine.credits.drawdown import Available, Draw, allocate
from engine.credits.models import Entry, Grant
from engine.credits.wallet import remaining
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
    return burned_many(session, [customer_id], unit)[customer_id]


def burned_many(session: Session, customer_ids: Sequence[str], unit: str) -> dict[str, Decimal]:
    """`burned` for many customers in one query (summed in Python: SQLite's SUM over decimal
    strings would go through float)."""
    out = dict.fromkeys(customer_ids, ZERO)
    rows = session.execute(
        select(Entry.customer_id, Entry.amount).join(Grant, Grant.id == Entry.grant_id)
        .where(Entry.customer_id.in_(list(customer_ids)), Entry.kind == "consumption", Entry.invoice_id.is_(None),
               Grant.unit == unit)
    )
    for cid, amount in rows:
        out[cid] -= amount
    return out


def burn(session: Session, customer_id: str, unit: str, required: Decimal, now: datetime) -> list[Burned]:
    """Burn what `required` (the usage so far, in the unit) asks beyond what was burned, from the
    usable grants in draw order, never below zero. One `consumption` entry and one
    `credits.consumed` event per grant drawn (the journal earns the pack's share of it)."""
    return burn_many(session, unit, {customer_id: required}, now)[customer_id]


def burn_many(session: Session, unit: str, required: Mapping[str, Decimal], now: datetime) -> dict[str, list[Burned]]:
    """`burn` for the customers of a usage batch at once: one query per step for all of them."""
    return {cid: burns for cid, (burns, _left) in burn_batch(session, unit, required, now).items()}


def burn_batch(session: Session, unit: str, required: Mapping[str, Decimal],
               now: datetime) -> dict[str, tuple[list[Burned], Decimal]]:
    """`burn_many`, with each customer's usable balance after the burn (what the balance
    events look at)."""
    cids = sorted(required)
    # Every burner of these wallets locks their active grants first, in one order (customer,
    # then grant; PostgreSQL; SQLite has one writer), then reads what was burned: a concurrent
    # burn is committed and counted by then.
    session.execute(select(Grant.id).where(Grant.customer_id.in_(cids), Grant.unit == unit, Grant.status == "active")
                    .order_by(Grant.customer_id, Grant.id).with_for_update())
    done = burned_many(session, cids, unit)
    owed = {cid: required[cid] - done[cid] for cid in cids if required[cid] > done[cid]}
    if not owed:
        return {cid: ([], ZERO) for cid in cids}
    grants = session.scalars(select(Grant).where(Grant.customer_id.in_(sorted(owed)), Grant.status == "active",
                                                 Grant.unit == unit)).all()
    live = [g for g in grants if g.effective_at <= now]  # as `usable`: in effect, not yet written off
    left = remaining(session, [g.id for g in live])
    draws: list[tuple[str, Draw, Decimal, Entry]] = []
    balances: dict[str, Decimal] = {}
    for cid, amount in owed.items():
        mine = [Available(g.id, left[g.id], g.priority, g.expires_at, g.created_at) for g in live if g.customer_id == cid]
        taken = allocate(mine, [(0, amount)])
        balances[cid] = sum((a.remaining for a in mine), ZERO) - sum((d.amount for d in taken), ZERO)
        draws += [(cid, d, left[d.grant_id], _entry(session, cid, d, now)) for d in taken]
    session.flush()  # the entries' ids name the journal's entries
    amounts = {g.id: g.amount for g in live}
    out: dict[str, tuple[list[Burned], Decimal]] = {cid: ([], balances.get(cid, ZERO)) for cid in cids}
    for cid, d, before, entry in draws:
        out[cid][0].append(_consumed(session, cid, unit, Burned(d.grant_id, d.amount, amounts[d.grant_id] - before,
                                                                   entry.id), now))
    return out


def _entry(session: Session, customer_id: str, draw: Draw, now: datetime) -> Entry:
    entry = Entry(customer_id=customer_id, grant_id=draw.grant_id, kind="consumption", amount=-draw.amount,
                  note=USAGE, created_at=now)
    session.add(entry)
    return entry


def _consumed(session: Session, customer_id: str, unit: str, done: Burned, now: datetime) -> Burned:
    """`credits.consumed` for the journal, which earns the pack's share of it."""
    add_event(session, "credits.consumed", customer_id, {
        "grant_id": done.grant_id, "unit": unit, "amount": amount_text(done.amount, unit),
        "used_before": amount_text(done.used_before, unit), "entry_id": done.entry_id, "by": USAGE}, time=now)
    return done
