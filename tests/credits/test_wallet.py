"""The wallet ledger: grants in, consumptions by priority then earliest expiry, expiry, void;
bad input names its field and writes nothing; the balance is always the sum of the entries."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import credits
from engine.credits import CreditsError, GrantRequest
from engine.store import Database

D = Decimal
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def req(amount: str, **kw: object) -> GrantRequest:
    base: dict[str, object] = {"customer_id": "cus_1", "unit": "USD", "amount": D(amount), "source": "operator",
                               "effective_at": T0}
    base.update(kw)
    return GrantRequest(**base)  # type: ignore[arg-type]


def test_priority_then_earliest_expiry_is_drawn_first(sqlite_db: Database) -> None:
    with sqlite_db.session() as s:
        late = credits.add_grant(s, req("10.00", priority=5, expires_at=T0 + timedelta(days=60)), T0)
        soon = credits.add_grant(s, req("10.00", priority=5, expires_at=T0 + timedelta(days=30)), T0)
        first = credits.add_grant(s, req("4.00", priority=1), T0)
        draws = credits.draw_down(s, "cus_1", "USD", [(1, D("16.00"))], T0 + timedelta(days=1))
    # priority 1 first (4), then the one expiring in 30 days (10), then 2 of the 60-day one
    assert [(d.grant_id, d.amount) for d in draws] == [(first.id, D(4)), (soon.id, D(10)), (late.id, D(2))]
    with sqlite_db.session() as s:
        w = credits.wallet(s, "cus_1", T0 + timedelta(days=1))
    assert w["balances"] == [{"unit": "USD", "balance": "8.00", "available": "8.00", "pending": "0.00"}]


def test_expiry_writes_an_entry_and_the_balance_follows(sqlite_db: Database) -> None:
    with sqlite_db.session() as s:
        g = credits.add_grant(s, req("10.00", expires_at=T0 + timedelta(days=30)), T0)
        credits.draw_down(s, "cus_1", "USD", [(1, D("3.00"))], T0)
    with sqlite_db.session() as s:
        assert credits.expire_due(s, T0 + timedelta(days=29)) == []
        expired = credits.expire_due(s, T0 + timedelta(days=30))
    assert [(x.id, left) for x, left in expired] == [(g.id, D("7.00"))]
    with sqlite_db.session() as s:
        page = credits.ledger_page(s, "cus_1")
        assert credits.expire_due(s, T0 + timedelta(days=31)) == []  # once
    assert [(e["kind"], e["amount"]) for e in page["entries"]] == [
        ("grant", "10.00"), ("consumption", "-3.00"), ("expiry", "-7.00")]


def test_credit_a_void_gives_back_to_an_expired_grant_lapses_at_once(sqlite_db: Database) -> None:
    """A grant used up by an invoice and marked expired at its expiry: the invoice's void gives
    the 10.00 back and an `expiry` entry naming the invoice takes it at once (nothing to spend,
    `lapsed_on_void` says so). A grant marked expired before its date (the run never does: the
    guard) is active again with what it got back."""
    ends = T0 + timedelta(days=30)
    with sqlite_db.session() as s:
        g = credits.add_grant(s, req("10.00", expires_at=ends), T0)
        credits.draw_down(s, "cus_1", "USD", [(1, D("10.00"))], T0, invoice_id="inv_1")
        credits.add_grant(s, req("4.00", customer_id="cus_2", expires_at=ends + timedelta(days=60)), T0)
        credits.draw_down(s, "cus_2", "USD", [(1, D("4.00"))], T0, invoice_id="inv_2")
    with sqlite_db.session() as s:
        assert [(x.id, left) for x, left in credits.expire_due(s, ends)] == [(g.id, D(0))]  # used up: no entry
    with sqlite_db.session() as s:
        assert credits.restore_invoice(s, "inv_1", ends + timedelta(days=1)) == D("10.00")
        assert credits.lapsed_on_void(s, "inv_1") == {g.id: D("10.00")}
        other = credits.get_grant(s, credits.paid_by_credits(s, ["inv_2"])["inv_2"][0]["grant_id"])
        other.status = "expired"  # as if marked before its date
        credits.restore_invoice(s, "inv_2", ends + timedelta(days=1))
        assert credits.lapsed_on_void(s, "inv_2") == {}
    with sqlite_db.session() as s:
        page = credits.ledger_page(s, "cus_1")
        late = credits.wallet(s, "cus_1", ends + timedelta(days=1))
        back = credits.wallet(s, "cus_2", ends + timedelta(days=1))
    assert [(e["kind"], e["amount"], e["invoice_id"]) for e in page["entries"]] == [
        ("grant", "10.00", None), ("consumption", "-10.00", "inv_1"), ("consumption", "10.00", "inv_1"),
        ("expiry", "-10.00", "inv_1")]
    assert late["balances"][0]["balance"] == "0.00" and late["grants"][0]["status"] == "expired"
    assert back["balances"][0]["available"] == "4.00" and back["grants"][0]["status"] == "active"


def test_void_takes_back_what_is_left_once(sqlite_db: Database) -> None:
    with sqlite_db.session() as s:
        g = credits.add_grant(s, req("10.00"), T0)
        credits.draw_down(s, "cus_1", "USD", [(1, D("2.50"))], T0)
        credits.void_grant(s, g.id, T0, reason="mistake")
    with sqlite_db.session() as s:
        assert credits.remaining(s, [g.id]) == {g.id: D(0)}
        with pytest.raises(CreditsError, match="already void"):
            credits.void_grant(s, g.id, T0)


def test_a_reduction_takes_part_of_what_is_left_and_the_grant_stays_active(sqlite_db: Database) -> None:
    """A credit note on part of a pack's invoice: `reduced` takes its share, never more than is
    left; zero is refused naming `amount`, a grant no longer active naming `grant_id`, nothing
    written."""
    with sqlite_db.session() as s:
        g = credits.add_grant(s, req("10.00"), T0)
        credits.draw_down(s, "cus_1", "USD", [(1, D("2.50"))], T0)
        assert credits.reduce_grant(s, g.id, D("2.22"), T0, invoice_id="inv_p", reason="note") == D("2.22")
        assert credits.reduce_grant(s, g.id, D("9.00"), T0) == D("5.28")  # only what is left
    for amount, field in ((D("0"), "amount"), (D("1.00"), "grant_id")):
        with sqlite_db.session() as s:
            if field == "grant_id":
                credits.void_grant(s, g.id, T0)
            with pytest.raises(CreditsError) as refused:
                credits.reduce_grant(s, g.id, amount, T0)
            assert refused.value.field == field
            s.rollback()
    with sqlite_db.session() as s:
        page = credits.ledger_page(s, "cus_1")
        assert credits.get_grant(s, g.id).status == "active"
    assert [(e["kind"], e["amount"]) for e in page["entries"]] == [
        ("grant", "10.00"), ("consumption", "-2.50"), ("reduced", "-2.22"), ("reduced", "-5.28")]


@pytest.mark.parametrize(("credit", "price", "net", "unit", "share"), [
    ("10.00", "9.00", "2.00", "USD", "2.22"),  # 2.222 at the cent
    ("10.00", "9.00", "0.45", "USD", "0.50"),  # 0.5 exactly
    ("1000", "3.00", "1.00", "tokens", "333"),  # 333.33 in whole tokens
    ("1000", "3.00", "0.50", "tokens", "167"),  # 166.67
    ("1000", "3.00", "0.0015", "tokens", "0"),  # 0.5 token: half-even to 0
    ("100.5", "3.00", "1.00", "tokens", "33.5"),  # a pack declared in tenths keeps tenths
    ("10.00", "0", "1.00", "USD", "0"),  # a free pack deferred nothing to give back
])
def test_a_credit_notes_share_of_a_packs_credit(credit: str, price: str, net: str, unit: str, share: str) -> None:
    assert credits.credit_share(D(credit), D(price), D(net), unit) == D(share)


def test_one_key_one_grant(sqlite_db: Database) -> None:
    with sqlite_db.session() as s:
        a = credits.add_grant(s, req("50.00", idempotency_key="topup:1"), T0)
        b = credits.add_grant(s, req("50.00", idempotency_key="topup:1"), T0)
    assert a.id == b.id
    with sqlite_db.session() as s:
        assert credits.wallet(s, "cus_1", T0)["balances"][0]["balance"] == "50.00"


@pytest.mark.parametrize(("kw", "field"), [
    ({"amount_": "0"}, "amount"),
    ({"amount_": "-5"}, "amount"),
    ({"expires_at": T0 - timedelta(days=1)}, "expires_at"),
    ({"priority": -1}, "priority"),
    ({"rollover": "some"}, "rollover"),
])
def test_bad_grants_name_the_field_and_write_nothing(sqlite_db: Database, kw: dict[str, object], field: str) -> None:
    with sqlite_db.session() as s:
        with pytest.raises(CreditsError) as info:
            amount = str(kw.pop("amount_", "10.00"))
            credits.add_grant(s, req(amount, **kw), T0)
        assert info.value.field == field
    with sqlite_db.session() as s:
        assert credits.wallet(s, "cus_1", T0)["grants"] == []


def test_pending_pack_counts_only_once_paid(sqlite_db: Database) -> None:
    with sqlite_db.session() as s:
        g = credits.add_grant(s, req("50.00", source="pack"), T0, pending=True)
        assert credits.draw_down(s, "cus_1", "USD", [(1, D(5))], T0) == []
        assert credits.activate(s, g, T0) and not credits.activate(s, g, T0)
        assert sum(d.amount for d in credits.draw_down(s, "cus_1", "USD", [(1, D(5))], T0)) == D(5)


def test_ledger_pages(sqlite_db: Database) -> None:
    with sqlite_db.session() as s:
        for _ in range(5):
            credits.add_grant(s, req("1.00"), T0)
    with sqlite_db.session() as s:
        first = credits.ledger_page(s, "cus_1", limit=3)
        second = credits.ledger_page(s, "cus_1", after=first["next_after"], limit=3)
        with pytest.raises(CreditsError, match="between 1 and 200"):
            credits.ledger_page(s, "cus_1", limit=0)
    assert len(first["entries"]) == 3 and len(second["entries"]) == 2 and second["next_after"] is None


cents = st.integers(min_value=1, max_value=10_000).map(lambda c: D(c) / 100)
steps = st.lists(st.one_of(
    st.tuples(st.just("grant"), cents, st.integers(0, 3), st.integers(1, 40)),
    st.tuples(st.just("use"), cents, st.just(0), st.just(0)),
    st.tuples(st.just("tick"), st.just(D(0)), st.just(0), st.integers(1, 20)),
), min_size=1, max_size=25)


_examples = itertools.count()  # each example its own customer in the shared database (id() is reused)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps)
def test_balance_is_grants_minus_consumptions_minus_expiries(sqlite_db: Database, plan: list) -> None:  # type: ignore[type-arg]
    customer = f"cus_{next(_examples)}"
    now = T0
    granted = used = D(0)
    with sqlite_db.session() as s:
        for kind, amount, priority, days in plan:
            if kind == "grant":
                credits.add_grant(s, req(str(amount), customer_id=customer, priority=priority,
                                         expires_at=now + timedelta(days=days)), now)
                granted += amount
            elif kind == "use":
                before = sum((a.remaining for a in credits.usable(s, customer, "USD", now)), D(0))
                paid = sum((d.amount for d in credits.draw_down(s, customer, "USD", [(1, amount)], now)), D(0))
                assert paid == min(amount, before)  # all it can, never more than is there
                used += paid
            else:
                now += timedelta(days=days)
                credits.expire_due(s, now)
            entries = credits.ledger_page(s, customer, limit=200)["entries"]
            by_kind = {k: sum((D(e["amount"]) for e in entries if e["kind"] == k), D(0))
                       for k in ("grant", "consumption", "expiry")}
            balance = D(credits.wallet(s, customer, now)["balances"][0]["balance"]) if granted else D(0)
            assert by_kind["grant"] == granted and -by_kind["consumption"] == used
            assert balance == by_kind["grant"] + by_kind["consumption"] + by_kind["expiry"]
            assert balance >= 0
