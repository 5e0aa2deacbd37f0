"""Usage burning a custom-unit wallet (tokens) as it is recorded (docs/credits.md, Token wallets).

What usage has burned is kept on each grant (`usage_burned`, the sum of its usage
consumptions: entries of kind `consumption` that name no invoice), advanced by the burn in the
transaction that writes those entries, under the grants' lock; what it must burn is the
customer's usage of the burning metrics times their rates, which sales counts. A burn writes the
difference, so a redelivered trigger, or a second worker that waited on the first one's lock,
finds nothing left to burn. What the wallet cannot pay stays owed: the next grant pays it first.
Neither the burn nor the access view reads the usage entries: their cost does not grow with the
number of burns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import ColumnElement, case, insert, literal, or_, select, text, update
from sqlalchemy.orm import Session

from engine.credits.amounts import amount_text
from engine.credits.drawdown import Available, Draw, allocate
from engine.credits.models import Entry, Grant
from engine.store import add_events
from engine.store.base import UTCDateTime

ZERO = Decimal(0)
USAGE = "usage"  # the note of a usage consumption


class _Locked(NamedTuple):
    """A grant's row as the burn locks and reads it (plain columns: no ORM object to refresh)."""

    id: str
    customer_id: str
    amount: Decimal
    priority: int
    effective_at: datetime
    expires_at: datetime | None
    status: str
    created_at: datetime
    usage_burned: Decimal


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
    """`burned` for many customers in one query: their grants' `usage_burned` (summed in
    Python: SQLite's SUM over decimal strings would go through float)."""
    out = dict.fromkeys(customer_ids, ZERO)
    rows = session.execute(select(Grant.customer_id, Grant.usage_burned)
                           .where(Grant.customer_id.in_(list(customer_ids)), Grant.unit == unit))
    for cid, amount in rows:
        out[cid] += amount
    return out


def _not_usage() -> ColumnElement[bool]:
    """The entries other than usage consumptions: a grant's own, an invoice's, expiry, void
    (a handful per grant, whatever the number of burns)."""
    return or_(Entry.kind != "consumption", Entry.invoice_id.is_not(None))


def spend_figures(session: Session, customer_ids: Sequence[str], unit: str,
                  now: datetime) -> dict[str, tuple[Decimal, Decimal]]:
    """For each customer, (the usable balance in `unit`, as `available_total`; what usage
    burned of it, as `burned`), from one query over their grants in the unit and the entries
    that are not usage consumptions (the access view's reload of a usage batch's token
    customers): each grant's usage is its `usage_burned`."""
    out = {cid: (ZERO, ZERO) for cid in customer_ids}
    ids = sorted(out)
    seen: set[str] = set()
    for start in range(0, len(ids), 900):  # under SQLite's bound-parameter limit
        rows = session.execute(
            select(Grant.id, Grant.customer_id, Grant.status, Grant.effective_at, Grant.usage_burned, Entry.amount)
            .join(Entry, Entry.grant_id == Grant.id)
            .where(Grant.customer_id.in_(ids[start : start + 900]), Grant.unit == unit, _not_usage()))
        for gid, cid, status, effective_at, burned_of, amount in rows:  # summed exactly, in Python
            usable, used = out[cid]
            if gid not in seen:  # the grant's usage, once
                seen.add(gid)
                amount -= burned_of
                used += burned_of
            if status == "active" and effective_at <= now:
                usable += amount
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
    # Every burner of these wallets locks their grants in the unit first, in one order
    # (customer, then grant; PostgreSQL; SQLite has one writer), and reads what they burned
    # with the lock: a concurrent burn is committed and counted by then.
    grants = [_Locked._make(row) for row in session.execute(
        select(*(getattr(Grant, f) for f in _Locked._fields)).where(Grant.customer_id.in_(cids), Grant.unit == unit)
        .order_by(Grant.customer_id, Grant.id).with_for_update())]
    so_far = dict.fromkeys(cids, ZERO)
    for g in grants:
        so_far[g.customer_id] += g.usage_burned
    # as `usable`: active, in effect, not yet written off
    live = [g for g in grants if g.status == "active" and g.effective_at <= now]
    left = _left_of(session, cids, unit, live)
    owed = {cid: required[cid] - so_far[cid] for cid in cids if required[cid] > so_far[cid]}
    if not owed:
        return {cid: ([], ZERO) for cid in cids}
    draws, balances = _draws(owed, live, left)
    amounts = {g.id: g.amount for g in live}
    _add_burned(session, {g.id: g.usage_burned for g in live}, draws)
    done = [(cid, Burned(d.grant_id, d.amount, amounts[d.grant_id] - before, entry_id))
            for (cid, d, before), entry_id in zip(draws, _write_entries(session, draws, now), strict=True)]
    _consumed(session, unit, done, now)
    out: dict[str, tuple[list[Burned], Decimal]] = {cid: ([], balances.get(cid, ZERO)) for cid in cids}
    for cid, b in done:
        out[cid][0].append(b)
    return out


def _draws(
    owed: Mapping[str, Decimal], live: Sequence[_Locked], left: Mapping[str, Decimal]
) -> tuple[list[tuple[str, Draw, Decimal]], dict[str, Decimal]]:
    """Each customer's draws in the draw-down order (with what was left of the grant before),
    and their usable balance after them (pure)."""
    draws: list[tuple[str, Draw, Decimal]] = []
    balances: dict[str, Decimal] = {}
    of: dict[str, list[Available]] = {}
    for g in live:
        of.setdefault(g.customer_id, []).append(Available(g.id, left[g.id], g.priority, g.expires_at, g.created_at))
    for cid, amount in owed.items():
        mine = of.get(cid, [])
        taken = allocate(mine, [(0, amount)])
        balances[cid] = sum((a.remaining for a in mine), ZERO) - sum((d.amount for d in taken), ZERO)
        draws += [(cid, d, left[d.grant_id]) for d in taken]
    return draws, balances


def _left_of(session: Session, customer_ids: Sequence[str], unit: str, live: Sequence[_Locked]) -> dict[str, Decimal]:
    """What is left of each `live` grant (as `remaining`): its entries other than usage
    consumptions (a handful), less its `usage_burned`; one query for the customers."""
    left = {g.id: -g.usage_burned for g in live}
    if not left:
        return left
    rows = session.execute(
        select(Entry.grant_id, Entry.amount)
        .join(Grant, Grant.id == Entry.grant_id)
        .where(Entry.customer_id.in_(list(customer_ids)), Grant.unit == unit, _not_usage())
    )
    for grant_id, amount in rows:  # summed exactly, in Python
        if grant_id in left:
            left[grant_id] += amount
    return left


def _add_burned(session: Session, burned_of: Mapping[str, Decimal], draws: Sequence[tuple[str, Draw, Decimal]]) -> None:
    """Advance the drawn grants' `usage_burned` in this transaction (their rows are locked):
    one UPDATE for the batch, the new figures added in Python (exact on both backends)."""
    new = dict.fromkeys(sorted({d.grant_id for _cid, d, _before in draws}), ZERO)
    for _cid, d, _before in draws:
        new[d.grant_id] += d.amount
    figures = {gid: burned_of[gid] + added for gid, added in new.items()}
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_PG_BURNED, {"ids": list(figures), "burned": list(figures.values())})
        return
    ids = list(figures)
    for start in range(0, len(ids), 400):  # two parameters a grant, under SQLite's limit
        chunk = ids[start : start + 400]
        figure = case(*((Grant.id == gid, literal(figures[gid], Grant.usage_burned.type)) for gid in chunk))
        session.execute(
            update(Grant)
            .where(Grant.id.in_(chunk))
            .values(usage_burned=figure)
            .execution_options(synchronize_session=False)
        )


def _write_entries(session: Session, draws: Sequence[tuple[str, Draw, Decimal]], now: datetime) -> list[int]:
    """One `consumption` entry per grant drawn, in one INSERT; their ids in the draws' order
    (they name the journal's entries). The ids are told apart by grant, so no order of
    RETURNING is relied on (SQLite gives none: asking for one made it insert row by row): a
    burn draws a grant once (one charge per customer, `allocate` takes from each grant once).
    The rows go in the draws' order, so the ids ascend in it, as before."""
    if not draws:
        return []
    if session.get_bind().dialect.name == "postgresql":
        params = {
            "customers": [cid for cid, _d, _b in draws],
            "grants": [d.grant_id for _c, d, _b in draws],
            "amounts": [-d.amount for _c, d, _b in draws],
            "note": USAGE,
            "created_at": UTCDateTime().process_bind_param(now, session.get_bind().dialect),
        }
        found = session.execute(_PG_ENTRIES, params)
    else:
        rows = [
            {
                "customer_id": cid,
                "grant_id": d.grant_id,
                "kind": "consumption",
                "amount": -d.amount,
                "invoice_id": None,
                "line": None,
                "note": USAGE,
                "created_at": now,
            }
            for cid, d, _before in draws
        ]
        found = session.execute(insert(Entry).returning(Entry.grant_id, Entry.id), rows)
    ids: dict[str, int] = {gid: eid for gid, eid in found}
    if len(ids) != len(draws):  # a grant drawn twice would have two ids: never, as said above
        raise RuntimeError("a burn drew a grant twice")
    return [ids[d.grant_id] for _cid, d, _before in draws]


# PostgreSQL: the batch's columns as arrays through unnest, one statement text whatever the
# number of grants. A CASE of one branch, or a VALUES list of one row, per grant was built,
# sent and parsed anew for every size of batch: about as long as running it.
_PG_BURNED = text(
    """
    UPDATE credits_grants SET usage_burned = v.burned
    FROM unnest(CAST(:ids AS text[]), CAST(:burned AS numeric[])) AS v(id, burned)
    WHERE credits_grants.id = v.id
    """
)
_PG_ENTRIES = text(
    """
    INSERT INTO credits_entries (customer_id, grant_id, kind, amount, note, created_at)
    SELECT e.customer_id, e.grant_id, 'consumption', e.amount, :note, :created_at
    FROM unnest(CAST(:customers AS text[]), CAST(:grants AS text[]), CAST(:amounts AS numeric[]))
        WITH ORDINALITY AS e(customer_id, grant_id, amount, n)
    ORDER BY e.n
    RETURNING grant_id, id
    """
)


def _consumed(session: Session, unit: str, done: Sequence[tuple[str, Burned]], now: datetime) -> None:
    """`credits.consumed` for the journal, which earns the pack's share of it: one event per
    grant drawn (docs/credits.md, Events), all written in one INSERT."""
    add_events(session, [("credits.consumed", cid, {
        "grant_id": b.grant_id, "unit": unit, "amount": amount_text(b.amount, unit),
        "used_before": amount_text(b.used_before, unit), "entry_id": b.entry_id, "by": USAGE}, now) for cid, b in done])
