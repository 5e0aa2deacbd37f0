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

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from engine.credits.amounts import amount_text
from engine.credits.drawdown import Available, Draw, allocate
from engine.credits.models import Entry, Grant
from engine.store import add_events

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


def spend_figures(session: Session, customer_ids: Sequence[str], unit: str,
                  now: datetime) -> dict[str, tuple[Decimal, Decimal]]:
    """For each customer, (the usable balance in `unit`, as `available_total`; what usage
    burned of it, as `burned`), from one query over their entries in the unit (the access
    view's reload of a usage batch's token customers)."""
    out = {cid: (ZERO, ZERO) for cid in customer_ids}
    ids = sorted(out)
    for start in range(0, len(ids), 900):  # under SQLite's bound-parameter limit
        rows = session.execute(
            select(Entry.customer_id, Entry.amount, Entry.kind, Entry.invoice_id, Grant.status, Grant.effective_at)
            .join(Grant, Grant.id == Entry.grant_id)
            .where(Entry.customer_id.in_(ids[start : start + 900]), Grant.unit == unit))
        for cid, amount, kind, invoice_id, status, effective_at in rows:  # summed exactly, in Python
            usable, used = out[cid]
            if status == "active" and effective_at <= now:
                usable += amount
            if kind == "consumption" and invoice_id is None:
                used -= amount
            out[cid] = (usable, used)
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
    grants = session.scalars(select(Grant).where(Grant.customer_id.in_(cids), Grant.unit == unit,
                                                 Grant.status == "active")
                             .order_by(Grant.customer_id, Grant.id).with_for_update()
                             .execution_options(populate_existing=True)).all()
    live = [g for g in grants if g.effective_at <= now]  # as `usable`: in effect, not yet written off
    so_far, left = _ledger_of(session, cids, unit, [g.id for g in live])
    owed = {cid: required[cid] - so_far[cid] for cid in cids if required[cid] > so_far[cid]}
    if not owed:
        return {cid: ([], ZERO) for cid in cids}
    draws: list[tuple[str, Draw, Decimal]] = []
    balances: dict[str, Decimal] = {}
    for cid, amount in owed.items():
        mine = [Available(g.id, left[g.id], g.priority, g.expires_at, g.created_at) for g in live
                if g.customer_id == cid]
        taken = allocate(mine, [(0, amount)])
        balances[cid] = sum((a.remaining for a in mine), ZERO) - sum((d.amount for d in taken), ZERO)
        draws += [(cid, d, left[d.grant_id]) for d in taken]
    amounts = {g.id: g.amount for g in live}
    done = [(cid, Burned(d.grant_id, d.amount, amounts[d.grant_id] - before, entry_id))
            for (cid, d, before), entry_id in zip(draws, _write_entries(session, draws, now), strict=True)]
    _consumed(session, unit, done, now)
    out: dict[str, tuple[list[Burned], Decimal]] = {cid: ([], balances.get(cid, ZERO)) for cid in cids}
    for cid, b in done:
        out[cid][0].append(b)
    return out


def _ledger_of(session: Session, customer_ids: Sequence[str], unit: str,
               grant_ids: Sequence[str]) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """From one read of the customers' entries in `unit`: what usage burned per customer (as
    `burned_many`) and what is left of each of `grant_ids` (as `remaining`)."""
    burned_by = dict.fromkeys(customer_ids, ZERO)
    left = dict.fromkeys(grant_ids, ZERO)
    rows = session.execute(select(Entry.customer_id, Entry.grant_id, Entry.amount, Entry.kind, Entry.invoice_id)
                           .join(Grant, Grant.id == Entry.grant_id)
                           .where(Entry.customer_id.in_(list(customer_ids)), Grant.unit == unit))
    for cid, grant_id, amount, kind, invoice_id in rows:  # summed exactly, in Python
        if kind == "consumption" and invoice_id is None:
            burned_by[cid] -= amount
        if grant_id in left:
            left[grant_id] += amount
    return burned_by, left


def _write_entries(session: Session, draws: Sequence[tuple[str, Draw, Decimal]], now: datetime) -> list[int]:
    """One `consumption` entry per grant drawn, in one INSERT; their ids in the draws' order
    (they name the journal's entries)."""
    if not draws:
        return []
    rows = [{"customer_id": cid, "grant_id": d.grant_id, "kind": "consumption", "amount": -d.amount,
             "invoice_id": None, "line": None, "note": USAGE, "created_at": now} for cid, d, _before in draws]
    return list(session.scalars(insert(Entry).returning(Entry.id, sort_by_parameter_order=True), rows))


def _consumed(session: Session, unit: str, done: Sequence[tuple[str, Burned]], now: datetime) -> None:
    """`credits.consumed` for the journal, which earns the pack's share of it: one event per
    grant drawn (docs/credits.md, Events), all written in one INSERT."""
    add_events(session, [("credits.consumed", cid, {
        "grant_id": b.grant_id, "unit": unit, "amount": amount_text(b.amount, unit),
        "used_before": amount_text(b.used_before, unit), "entry_id": b.entry_id, "by": USAGE}, now) for cid, b in done])
