"""A customer's wallet: grants in, consumptions, expiries and voids out, each an immutable
entry. The balance is never stored: it is the sum of the entries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.credits.amounts import amount_text, amount_value
from engine.credits.drawdown import Available, Draw, allocate
from engine.credits.errors import CreditsConflict, CreditsError, UnknownGrant
from engine.credits.models import Entry, Grant
from engine.store import add_event, new_event_id

ZERO = Decimal(0)
SOURCES = ("pack", "promotion", "operator", "top_up", "coupon", "rule")


@dataclass(frozen=True, slots=True)
class GrantRequest:
    """What a grant is given with; checked whole before anything is written."""

    customer_id: str
    unit: str
    amount: Decimal
    source: str
    effective_at: datetime
    expires_at: datetime | None = None
    priority: int = 100
    rollover: str = "all"
    source_ref: str | None = None
    reason: str = ""
    created_by: str = ""
    idempotency_key: str | None = None
    invoice_id: str | None = None

    def check(self) -> None:
        if self.amount <= ZERO:
            raise CreditsError("amount", f"a grant is above zero, not {self.amount}")
        if self.expires_at is not None and self.expires_at <= self.effective_at:
            raise CreditsError("expires_at", f"{self.expires_at.isoformat()} is not after effective_at "
                                             f"{self.effective_at.isoformat()}")
        if not 0 <= self.priority <= 1000:
            raise CreditsError("priority", "between 0 (drawn first) and 1000")
        if self.rollover not in ("none", "all"):
            raise CreditsError("rollover", "none or all")
        if self.source not in SOURCES:
            raise CreditsError("source", f"one of {', '.join(SOURCES)}")


def add_grant(session: Session, req: GrantRequest, now: datetime, *, pending: bool = False) -> Grant:
    """Write a grant (and its + entry unless `pending`, a pack waiting for its invoice to be
    paid). A key seen before returns the grant it made: a redelivered trigger grants nothing."""
    req.check()
    if req.idempotency_key is not None:
        known = _by_key(session, req.customer_id, req.idempotency_key)
        if known is not None:
            return known
    grant = Grant(
        id=new_event_id("grt"), customer_id=req.customer_id, unit=req.unit, source=req.source,
        source_ref=req.source_ref, amount=req.amount, priority=req.priority, effective_at=req.effective_at,
        expires_at=req.expires_at, rollover=req.rollover, status="pending" if pending else "active",
        reason=req.reason, invoice_id=req.invoice_id, idempotency_key=req.idempotency_key,
        created_by=req.created_by, created_at=now,
    )
    try:
        with session.begin_nested():  # a concurrent trigger with the same key loses here
            session.add(grant)
            session.flush()
    except IntegrityError:
        known = _by_key(session, req.customer_id, req.idempotency_key or "")
        if known is None:
            raise
        return known
    if not pending:
        _entry(session, grant, "grant", grant.amount, now, note=req.reason)
        _granted(session, grant, now)
    return grant


def _granted(session: Session, grant: Grant, now: datetime) -> None:
    """credits.granted: the access view drops the customer's snapshot (what it may spend changed)."""
    add_event(session, "credits.granted", grant.customer_id, {
        "grant_id": grant.id, "unit": grant.unit, "amount": amount_text(grant.amount, grant.unit), "source": grant.source,
        "source_ref": grant.source_ref, "expires_at": grant.expires_at.isoformat() if grant.expires_at else None},
        time=now)


def _by_key(session: Session, customer_id: str, key: str) -> Grant | None:
    return session.scalars(
        select(Grant).where(Grant.customer_id == customer_id, Grant.idempotency_key == key)
    ).first()


def _entry(session: Session, grant: Grant, kind: str, amount: Decimal, now: datetime, *,
           invoice_id: str | None = None, line: int | None = None, note: str = "") -> None:
    session.add(Entry(customer_id=grant.customer_id, grant_id=grant.id, kind=kind, amount=amount,
                      invoice_id=invoice_id, line=line, note=note[:500], created_at=now))


def activate(session: Session, grant: Grant, now: datetime) -> bool:
    """A pending pack is paid: credit it (once; a second payment event changes nothing)."""
    if grant.status != "pending":
        return False
    grant.status = "active"
    _entry(session, grant, "grant", grant.amount, now, note="pack paid")
    _granted(session, grant, now)
    return True


def pending_for_invoice(session: Session, invoice_id: str) -> Grant | None:
    return session.scalars(select(Grant).where(Grant.invoice_id == invoice_id, Grant.status == "pending")
                           .with_for_update()).first()


def remaining(session: Session, grant_ids: Iterable[str]) -> dict[str, Decimal]:
    ids = list(grant_ids)
    if not ids:
        return {}
    # Summed in Python: SQLite's SUM over decimal strings would go through float.
    out = dict.fromkeys(ids, ZERO)
    for gid, amount in session.execute(select(Entry.grant_id, Entry.amount).where(Entry.grant_id.in_(ids))):
        out[gid] += amount
    return out


def get_grant(session: Session, grant_id: str, *, lock: bool = False) -> Grant:
    stmt = select(Grant).where(Grant.id == grant_id)
    grant = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if grant is None:
        raise UnknownGrant("grant_id", f"no grant {grant_id!r}")
    return grant


def void_grant(session: Session, grant_id: str, now: datetime, *, reason: str = "") -> Grant:
    """Take back what is left of a grant (what was consumed stays consumed)."""
    grant = get_grant(session, grant_id, lock=True)
    if grant.status in ("void", "expired"):
        raise CreditsConflict("grant_id", f"grant {grant.id} is already {grant.status}")
    left = remaining(session, [grant.id])[grant.id]
    if left > ZERO:
        _entry(session, grant, "void", -left, now, note=reason)
    grant.status = "void"
    add_event(session, "credits.voided", grant.customer_id,
              {"grant_id": grant.id, "unit": grant.unit, "amount": amount_text(left, grant.unit), "reason": reason}, time=now)
    return grant


def reduce_grant(session: Session, grant_id: str, amount: Decimal, now: datetime, *, invoice_id: str | None = None,
                 reason: str = "") -> Decimal:
    """Take `amount` of what is left of an active or pending grant (a credit note on part of its
    pack's invoice), as an immutable `reduced` entry: the grant keeps its status with the rest,
    drawn and expiring on its terms (a pending pack credits the rest once paid). Returns what was taken: at most what is left. Publishes
    `credits.reduced` (the access view drops the customer's snapshot on `credits.*`)."""
    if amount <= ZERO:
        raise CreditsError("amount", f"a reduction is above zero, not {amount}")
    grant = get_grant(session, grant_id, lock=True)
    if grant.status not in ("active", "pending"):
        raise CreditsConflict("grant_id", f"grant {grant.id} is {grant.status}, neither active nor pending")
    # A pack not paid yet has no grant entry: what is left of it is its credit less earlier
    # reductions, and the `reduced` entry waits for the grant entry its payment writes.
    left = remaining(session, [grant.id])[grant.id] + (grant.amount if grant.status == "pending" else ZERO)
    taken = min(amount, max(left, ZERO))
    if taken > ZERO:
        _entry(session, grant, "reduced", -taken, now, invoice_id=invoice_id, note=reason)
    add_event(session, "credits.reduced", grant.customer_id, {
        "grant_id": grant.id, "unit": grant.unit, "amount": amount_text(taken, grant.unit),
        "remaining": amount_text(left - taken, grant.unit), "invoice_id": invoice_id, "reason": reason}, time=now)
    return taken


def usable(session: Session, customer_id: str, unit: str, now: datetime) -> list[Available]:
    """The active grants in `unit` in effect at `now` (not yet written off), with what is left."""
    grants = session.scalars(
        select(Grant).where(Grant.customer_id == customer_id, Grant.status == "active", Grant.unit == unit)
    ).all()
    # A grant past its expiry pays until the expiry job wrote it off: that job runs right after
    # each billing run, so a grant ending with a period still pays the invoice closing it.
    live = [g for g in grants if g.effective_at <= now]
    left = remaining(session, [g.id for g in live])
    return [Available(g.id, left[g.id], g.priority, g.expires_at, g.created_at) for g in live]


def available_total(session: Session, customer_id: str, unit: str, now: datetime) -> Decimal:
    """What `usable` sums to, in one query (the access path's hard stop reads it per reload)."""
    return available_totals(session, [customer_id], unit, now)[customer_id]


def available_totals(session: Session, customer_ids: Sequence[str], unit: str, now: datetime) -> dict[str, Decimal]:
    """`available_total` for many customers, one query per 900 of them (a reload of a usage
    batch's customers), as the unit counts it (`amount_value`: a currency's at its minor unit,
    not PostgreSQL's `104.10000000`)."""
    out = dict.fromkeys(customer_ids, ZERO)
    ids = sorted(out)
    for start in range(0, len(ids), 900):  # under SQLite's bound-parameter limit
        rows = session.execute(
            select(Grant.customer_id, Entry.amount).join(Grant, Grant.id == Entry.grant_id)
            .where(Grant.customer_id.in_(ids[start : start + 900]), Grant.status == "active", Grant.unit == unit,
                   Grant.effective_at <= now)
        )
        for cid, amount in rows:  # summed in Python: SQLite's SUM over decimal strings goes through float
            out[cid] += amount
    return {cid: amount_value(total, unit) for cid, total in out.items()}


def draw_down(session: Session, customer_id: str, unit: str, charges: list[tuple[int, Decimal]],
              now: datetime, *, invoice_id: str | None = None) -> list[Draw]:
    """Pay `charges` from the usable grants (priority, then earliest expiry); writes one
    consumption entry per grant and charge. What is returned is what the wallet paid."""
    draws = allocate(usable(session, customer_id, unit, now), charges)
    for d in draws:
        session.add(Entry(customer_id=customer_id, grant_id=d.grant_id, kind="consumption", amount=-d.amount,
                          invoice_id=invoice_id, line=d.charge, created_at=now))
    return draws


def restore_invoice(session: Session, invoice_id: str, now: datetime) -> Decimal:
    """A voided invoice gives back what the wallet paid for it (as a reversing consumption).
    Credit given back to a grant no longer active is taken again at once (`_to_inactive`)."""
    rows = session.scalars(select(Entry).where(Entry.invoice_id == invoice_id, Entry.kind == "consumption")).all()
    total = ZERO
    back: dict[str, Decimal] = {}
    for e in rows:
        session.add(Entry(customer_id=e.customer_id, grant_id=e.grant_id, kind="consumption", amount=-e.amount,
                          invoice_id=invoice_id, line=e.line, note="invoice voided", created_at=now))
        total -= e.amount
        back[e.grant_id] = back.get(e.grant_id, ZERO) - e.amount
    for grant_id, amount in sorted(back.items()):
        if amount > ZERO:
            _to_inactive(session, get_grant(session, grant_id, lock=True), amount, invoice_id, now)
    return total


def _to_inactive(session: Session, grant: Grant, amount: Decimal, invoice_id: str, now: datetime) -> None:
    """`amount` given back by the void of `invoice_id` to a grant no longer active: nothing
    expires, voids or draws that grant any more, so the credit would sit there (and the journal
    keep its share deferred) for ever. A grant past its expiry: its credit lapsed, so the
    returned credit lapses too, an `expiry` entry naming the invoice written now; a grant an
    operator, a refund or a credit note voided: taken back the same way, a `void` entry. The
    journal earns a pack's share of either as breakage (`credits:lapsed`). A grant marked
    expired before its expiry date (the run marks only those past it: a guard) is active again
    with the credit. No `credits.expired` / `credits.voided`: what the customer may spend never
    changed."""
    if grant.status == "void":
        _entry(session, grant, "void", -amount, now, invoice_id=invoice_id,
               note=f"invoice {invoice_id} voided after the grant was voided")
    elif grant.status != "expired":
        return  # active (or pending): drawn and expiring on its terms
    elif grant.expires_at is not None and grant.expires_at <= now:
        _entry(session, grant, "expiry", -amount, now, invoice_id=invoice_id,
               note=f"invoice {invoice_id} voided after the grant expired")
    else:
        grant.status = "active"
        _granted(session, grant, now)


def lapsed_on_void(session: Session, invoice_id: str) -> dict[str, Decimal]:
    """What the void of `invoice_id` gave back to expired or voided grants and took again at
    once, per grant (its `expiry` and `void` entries naming the invoice, positive)."""
    out: dict[str, Decimal] = {}
    for e in session.scalars(select(Entry).where(Entry.invoice_id == invoice_id, Entry.kind.in_(("expiry", "void")))):
        out[e.grant_id] = out.get(e.grant_id, ZERO) - e.amount
    return out


def paid_by_credits(session: Session, invoice_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """For each invoice: which grant paid how much of which line (its position), net of reversals."""
    ids = list(invoice_ids)
    out: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if not ids:
        return out
    sums: dict[tuple[str, str, int | None], Decimal] = {}
    for e in session.scalars(select(Entry).where(Entry.invoice_id.in_(ids), Entry.kind == "consumption")
                             .order_by(Entry.id)):
        key = (e.invoice_id or "", e.grant_id, e.line)
        sums[key] = sums.get(key, ZERO) - e.amount
    for (inv, gid, line), amount in sums.items():
        if amount != ZERO:
            out[inv].append({"grant_id": gid, "line": line, "amount": amount})
    return out


PREPAID = ("pack", "top_up")  # grants bought with money; the others are promotional


def grant_sold_by(session: Session, customer_id: str, invoice_id: str) -> Grant | None:
    """The pack (or automatic top-up) grant an invoice sells, if it sells one (read through the
    customer's index: the customer's grants only)."""
    return session.scalars(select(Grant).where(Grant.customer_id == customer_id, Grant.invoice_id == invoice_id,
                                               Grant.source.in_(PREPAID))).first()


def expire_due(session: Session, now: datetime) -> list[tuple[Grant, Decimal]]:
    """Write an expiry entry for what is left of every grant whose time is up; returns them."""
    due = session.scalars(
        select(Grant).where(Grant.status == "active", Grant.expires_at.is_not(None), Grant.expires_at <= now)
        .with_for_update(skip_locked=True)
    ).all()
    left = remaining(session, [g.id for g in due])
    out = []
    for g in due:
        g.status = "expired"
        out.append((g, left[g.id]))
        if left[g.id] <= ZERO:
            continue  # used up: nothing expires, nothing to say
        _entry(session, g, "expiry", -left[g.id], now, note="expired")
        add_event(session, "credits.expired", g.customer_id, {
            "grant_id": g.id, "unit": g.unit, "amount": amount_text(left[g.id], g.unit), "source": g.source,
            "source_ref": g.source_ref, "rollover": g.rollover}, time=now)
    return out
