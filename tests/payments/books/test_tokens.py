"""Token packs in the journal (docs/books.md, *Token packs*), on both backends: a pack of 1000
tokens sold for 3.00 earns 0.003 a token as usage burns it, rounded half-even to the cent on the
cumulative use (333: 1.00, 533: 1.60, so 0.60 more), whatever order the burns are handled in;
what expires unused is breakage, so burned + expired earn exactly the 3.00 deferred; promotional
tokens earn nothing; a redelivered event posts nothing more."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from engine import credits
from engine.payments import handle_credits_consumed, handle_tokens_expired, journal
from engine.payments.journal import Posting
from engine.payments.models import JournalLine
from engine.store import Database
from engine.store.outbox import OutboxEvent

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
D = Decimal


class Service:
    """What the handlers ask of the payment service: its clock."""

    def now(self) -> datetime:
        return T0 + timedelta(days=20)


def _pack(db: Database, *, source: str = "pack", key: str = "p1") -> str:
    with db.session() as s:
        grant = credits.add_grant(s, credits.GrantRequest(
            customer_id="cus_k", unit="tokens", amount=D(1000), source=source, effective_at=T0,
            expires_at=T0 + timedelta(days=10), invoice_id=f"inv_{key}", idempotency_key=key), T0)
        if source == "pack":  # what books/credits.py posts for the pack's invoice
            journal.post_entry(s, f"credits:sold:inv_{key}", T0, "USD", [
                Posting("revenue:tokens:one_time", debit=D("3.00")), Posting("deferred_revenue", credit=D("3.00"))],
                "pack sold", grant.id)
        return grant.id


def _burn(db: Database, required: str) -> None:
    with db.session() as s:
        credits.burn(s, "cus_k", "tokens", D(required), T0 + timedelta(days=1))


def _events(db: Database, etype: str) -> list[dict[str, Any]]:
    with db.session() as s:
        return [{"id": r.id, "type": r.type, "customer_id": r.customer_id, "properties": dict(r.properties or {})}
                for r in s.scalars(select(OutboxEvent).where(OutboxEvent.type == etype).order_by(OutboxEvent.seq))]


def _handle(db: Database, handler: Any, events: list[dict[str, Any]]) -> None:
    for event in events:
        with db.session() as s:
            handler(s, event, service=Service())


def _accounts(db: Database, grant_id: str) -> dict[str, dict[str, Decimal]]:
    """Per entry: account -> debit - credit, for the grant's entries."""
    out: dict[str, dict[str, Decimal]] = defaultdict(dict)
    with db.session() as s:
        for row in s.scalars(select(JournalLine).where(JournalLine.reference == grant_id)):
            out[row.entry_id][row.account] = row.debit - row.credit
    return dict(out)


def test_burned_tokens_earn_the_price_per_token_and_the_rest_is_breakage(db: Database) -> None:
    grant = _pack(db)
    for required in ("333", "533", "533"):  # the last one finds nothing more to burn
        _burn(db, required)
    consumed = _events(db, "credits.consumed")
    assert [(e["properties"]["amount"], e["properties"]["used_before"]) for e in consumed] == [("333", "0"),
                                                                                            ("200", "333")]
    _handle(db, handle_credits_consumed, [*reversed(consumed), consumed[0]])  # out of order, then redelivered
    with db.session() as s:
        credits.expire_due(s, T0 + timedelta(days=10))  # 467 tokens left unused
    _handle(db, handle_tokens_expired, _events(db, "credits.expired"))
    entries = _accounts(db, grant)
    first, second = (f"credits:burned:{e['properties']['entry_id']}" for e in consumed)
    assert entries[first] == {"deferred_revenue": D("1.00"), "revenue:credits:usage": D("-1.00")}
    assert entries[second] == {"deferred_revenue": D("0.60"), "revenue:credits:usage": D("-0.60")}
    # 3.00 - round(533 x 0.003 = 1.599) = 1.40
    assert entries[f"credits:expired:{grant}"] == {"deferred_revenue": D("1.40"), "revenue:credits:one_time": D("-1.40")}
    assert sum((e.get("deferred_revenue", D(0)) for e in entries.values()), D(0)) == D(0)  # the liability is gone


def test_promotional_tokens_earn_nothing(db: Database) -> None:
    grant = _pack(db, source="operator", key="promo")
    _burn(db, "400")
    _handle(db, handle_credits_consumed, _events(db, "credits.consumed"))
    with db.session() as s:
        credits.expire_due(s, T0 + timedelta(days=10))
    _handle(db, handle_tokens_expired, _events(db, "credits.expired"))
    assert _accounts(db, grant) == {}


def test_a_token_pack_refunded_gives_back_what_its_unburned_tokens_deferred(db: Database) -> None:
    """The refund door's journal step (books/credits.post_refund) on a token pack: 333 of 1000
    tokens burned earned 1.00 of the 3.00; a refund of 2.50 net voids the 667 tokens left and
    moves their 2.00 from deferred revenue: 2.00 against the refund (it pays back more than
    that: the rest of it is the burned tokens' revenue given back, as every refund's is)."""
    from engine.payments.books.credits import post_refund

    grant = _pack(db)
    _burn(db, "333")
    _handle(db, handle_credits_consumed, _events(db, "credits.consumed"))
    with db.session() as s:
        assert post_refund(s, "cus_k", "inv_p1", "cn_p1", D("2.50"), "USD", Service().now())
    with db.session() as s:
        assert credits.remaining(s, [grant])[grant] == D(0)  # the customer keeps no tokens
        assert not post_refund(s, "cus_k", "inv_p1", "cn_p1", D("2.50"), "USD", Service().now())  # nothing left
    entries = _accounts(db, grant)
    assert entries[f"credits:refunded:{grant}"] == {"deferred_revenue": D("2.00"), "refunds": D("-2.00")}
    assert sum((e.get("deferred_revenue", D(0)) for e in entries.values()), D(0)) == D(0)


def test_a_token_pack_voided_by_an_operator_is_breakage_once(db: Database) -> None:
    """An operator voids a token pack after 333 of its 1000 tokens burned (1.00 earned): on
    `credits.voided` the 2.00 its 667 unburned tokens deferred is breakage, as an expiry's, in
    the currency the pack was sold in; a redelivery posts nothing more. A pack voided by its
    refund (the refund posted `credits:refunded`) posts nothing on the void's event."""
    from engine.payments import handle_credits_voided
    from engine.payments.books.credits import post_refund

    grant = _pack(db)
    _burn(db, "333")
    _handle(db, handle_credits_consumed, _events(db, "credits.consumed"))
    with db.session() as s:
        credits.void_grant(s, grant, Service().now(), reason="abuse")
    [voided] = _events(db, "credits.voided")
    _handle(db, handle_credits_voided, [voided, voided])
    entries = _accounts(db, grant)
    assert entries[f"credits:voided:{grant}"] == {"deferred_revenue": D("2.00"), "revenue:credits:one_time": D("-2.00")}
    assert sum((e.get("deferred_revenue", D(0)) for e in entries.values()), D(0)) == D(0)

    refunded = _pack(db, key="p2")
    with db.session() as s:
        assert post_refund(s, "cus_k", "inv_p2", "cn_p2", D("3.00"), "USD", Service().now())
    _handle(db, handle_credits_voided, [e for e in _events(db, "credits.voided") if e["id"] != voided["id"]])
    assert set(_accounts(db, refunded)) == {"credits:sold:inv_p2", f"credits:refunded:{refunded}"}
