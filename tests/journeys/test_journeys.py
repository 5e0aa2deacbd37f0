"""Money journeys end to end, over HTTP on the shared test clock, in both shapes (issue 15).

Each journey makes its own customers; after each one the ledger checker (ledger.py) asserts
the money invariants over everything it touched. """

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import Any

from tests.journeys.harness import Engine, money
from tests.journeys.test_books_journey import LAUNCH, cents, launch_discount, when
from tests.payments.camt import Entry, camt053

D = Decimal
CARD_OK = "4242424242424242"
CARD_ASYNC = "4000000000003220"
CARD_SOFT_DECLINE = "4000000000009995"
CARD_HARD_DECLINE = "4000000000000002"

def card(token: str) -> dict[str, str]:
    return {"type": "card", "token": token}


def wait_until(what: str, probe: Any, timeout: float = 15.0) -> Any:
    """For what an outside party does on its own time (the provider's asynchronous webhook):
    poll until `probe()` is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


def in_advance(invoice: dict[str, Any]) -> Decimal:
    return sum((money(x["total"]) for x in invoice["lines"] if x["timing"] == "in_advance"), D(0))


def email_templates(engine: Engine, customer: str) -> list[str]:
    """The templates of the emails the engine says it sent to `customer` (the in-app feed
    and the mailbox are checked separately)."""
    return [m.get("X-Billing-Template", "") or str(m.get("Subject", "")) for m in engine.mails(f"{customer}@")]


# 1 --------------------------------------------------------------------------------------------
def test_signup_with_a_card_is_paid(engine: Engine) -> None:
    cid = engine.customer("signup")
    signup = when(engine).date()
    sub = engine.subscribe(cid, "pro", quantity=2, payment_method=card(CARD_OK))
    engine.advance("1h")
    [first] = engine.invoices(cid)
    # Pro 49.00 + 2 seats x 10.00, + 19 % per line: 82.11; on the shared clock the signup may
    # fall in the launch promotion (Nov-Dec 2026: 9.80 off the base fee): 46.65 + 23.80 = 70.45.
    off = launch_discount(signup, first)
    due = cents((D("49.00") - off) * D("1.19")) + D("20.00") * D("1.19")
    assert due in (D("82.11"), D("70.45"))  # the figures above, by hand
    assert first["status"] == "paid" and money(first["amount_paid"]) == money(first["total"]) == due
    [charge] = engine.charges(cid)
    assert charge["status"] == "captured" and money(charge["amount"]) == money(first["total"])
    assert len(engine.mails(f"{cid}@")) >= 2  # the invoice and the payment receipt
    assert sub["status"] == "active"


# 2 --------------------------------------------------------------------------------------------
def test_an_edu_promotion_gives_a_discounted_invoice_equal_to_the_quote(engine: Engine) -> None:
    cid = engine.customer("edu", segment="edu")
    signup = when(engine).date()
    sub = engine.subscribe(cid, "pro", quantity=2)
    [first] = engine.invoices(cid)
    # rules/promotions.yaml: half price for segment edu, on every line of the invoice: 34.50 of
    # 49.00 + 2 x 10.00; in the launch promotion's months (which the shared clock may stand in)
    # half of what its 9.80 off the base fee leaves: 9.80 + 59.20 / 2 = 39.40.
    off = launch_discount(signup, first)
    assert money(first["discount"]) == off + (D("69.00") - off) / 2
    sources = ["rule:promotions/edu-50"] + ([LAUNCH] if off else [])
    assert sorted(d["source"] for d in first["discounts"]) == sorted(sources)
    period = f"{first['period']['start']}/{first['period']['end']}"
    quote = engine.quote(subscription_id=sub["id"], period=period)
    assert in_advance(first) == money(first["total"])
    assert money(quote["total"]) == money(first["total"])  # nothing metered was used


# 3 --------------------------------------------------------------------------------------------
def test_a_coupon_with_an_upgrade_a_downgrade_and_a_seat_change(engine: Engine) -> None:
    cid = engine.customer("coupon")
    signup = when(engine).date()
    # WINBACK30 (30 % for two periods, Pro and Enterprise) never expires; WELCOME20 did on
    # 2027-01-31, which the shared clock passes once enough journeys ran before this one.
    sub = engine.subscribe(cid, "pro", quantity=2, coupon="WINBACK30", payment_method=card(CARD_OK))
    [first] = engine.invoices(cid)
    # 30 % of 69.00: 20.70; in the launch promotion's months 9.80 + 30 % of 59.20 = 27.56.
    off = launch_discount(signup, first)
    assert money(first["discount"]) == off + (D("69.00") - off) * D("0.30")
    engine.advance("7d")
    seats = engine.post(f"/v1/subscriptions/{sub['id']}/change", {"quantity": 4})
    assert seats["quantity"] in (4, "4")
    engine.advance("7d")
    up = engine.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": "enterprise"})
    assert up["plan"] == "enterprise"
    document = up.get("document")
    assert document is not None and money(document["total"]) > 0  # the rest of the period, prorated
    engine.advance("3d")
    down = engine.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": "pro"})
    assert down["pending"]["plan"] == "pro"  # a downgrade waits for the period end
    engine.advance("1mo")
    [now] = engine.subscriptions(cid)
    assert now["plan"] == "pro" and now["status"] == "active"
    # The ledger: each invoice is the sum of its lines; each closed period equals its quote.


# 4 --------------------------------------------------------------------------------------------
def test_usage_across_80_and_100_percent_of_a_quota_is_announced(engine: Engine) -> None:
    cid = engine.customer("quota")
    engine.subscribe(cid, "free")
    engine.usage(cid, 800)  # 80 % of the free plan's 1,000 calls a month
    assert engine.check(cid, "api")["allowed"] is True
    engine.advance("1h")
    engine.usage(cid, 200)
    assert engine.check(cid, "api")["allowed"] is False
    engine.advance("1h")
    feed = [n.get("template") for n in engine.notifications(cid)]
    assert "quota_warning" in feed and "quota_reached" in feed
    # 80 %, 100 %, and the denial at the limit brings the upgrade offer.
    assert sorted(engine.subjects(f"{cid}@")) == [
        "Get API calls with Pro", "You have reached your API calls limit", "You have used 80% of your API calls"]


# 5 --------------------------------------------------------------------------------------------
def test_an_access_denial_brings_an_upsell_offer(engine: Engine) -> None:
    cid = engine.customer("upsell")
    engine.subscribe(cid, "free")
    answer = engine.check(cid, "sso")
    assert answer["allowed"] is False and answer["reason"] == "not_in_plan"
    assert answer["offer"]["plan"] == "pro"
    engine.advance("1h")
    feed = engine.notifications(cid)
    assert [n.get("template") for n in feed].count("upgrade_offer") == 1
    [offer] = engine.mails(f"{cid}@")
    assert "Pro" in str(offer.get("Subject", "")) + offer.as_string()


# 6 --------------------------------------------------------------------------------------------
def test_an_async_payment_is_confirmed_by_webhook_on_a_test_clock(engine: Engine) -> None:
    cid = engine.customer("async")
    engine.subscribe(cid, "pro", payment_method=card(CARD_ASYNC))
    [charge] = wait_until("the provider charged", lambda: engine.charges(cid))
    wait_until("the provider's webhook was accepted and the invoice paid",
               lambda: engine.invoices(cid)[0]["status"] == "paid")
    engine.advance("1h")
    [invoice] = engine.invoices(cid)
    assert money(invoice["amount_paid"]) == money(invoice["total"]) == money(charge["amount"])
    [charge] = engine.charges(cid)
    assert charge["status"] == "captured"


# 7 --------------------------------------------------------------------------------------------
def test_a_soft_decline_is_retried_and_recovers_with_a_new_card(engine: Engine) -> None:
    cid = engine.customer("soft")
    engine.subscribe(cid, "pro", payment_method=card(CARD_SOFT_DECLINE))
    [invoice] = engine.invoices(cid)
    assert invoice["status"] != "paid"
    engine.advance("1d")  # the first retry (rules/dunning.yaml), declined again
    assert len(engine.charges(cid)) == 2
    engine.post(f"/v1/customers/{cid}/payment_methods", {"type": "card", "token": CARD_OK, "default": True},
                status=201)
    engine.advance("2d")  # the next retry takes the new card
    [invoice] = engine.invoices(cid)
    assert invoice["status"] == "paid"
    assert [c["status"] for c in engine.charges(cid)] == ["declined", "declined", "captured"]
    engine.advance("10d")
    assert len(engine.charges(cid)) == 3  # recovered: nothing is charged again


# 8 --------------------------------------------------------------------------------------------
def test_a_hard_decline_is_not_retried_and_asks_for_a_new_method(engine: Engine) -> None:
    cid = engine.customer("hard")
    engine.subscribe(cid, "pro", payment_method=card(CARD_HARD_DECLINE))
    engine.advance("8d")
    assert len(engine.charges(cid)) == 1  # generic_decline is not retryable
    templates = [n.get("template") for n in engine.notifications(cid)]
    mails = " ".join(m.as_string() for m in engine.mails(f"{cid}@")).lower()
    assert "payment_method_needed" in templates or "payment method" in mails
    assert templates.count("payment_failed") <= 1


# 9 --------------------------------------------------------------------------------------------
def test_dunning_to_cancellation_stops_billing_and_settles_the_credit(engine: Engine) -> None:
    cid = engine.customer("dunned")
    engine.subscribe(cid, "pro")  # no payment method: the first invoice stays open
    engine.advance("32d")  # cancelled on day 30; the renewal day passes after it
    [sub] = engine.subscriptions(cid)
    assert sub["status"] in ("canceled", "cancelled") and sub["ended_at"]
    invoices = engine.invoices(cid)
    # Cancelled by dunning on its renewal day: the renewal invoice is not left open and retried.
    assert all(inv["status"] != "open" for inv in invoices), [(i["number"], i["status"]) for i in invoices]
    assert any(inv["credit_notes"] for inv in invoices)  # the unused days, against what is owed
    assert len(invoices) <= 2


# 10 -------------------------------------------------------------------------------------------

def test_late_usage_under_a_minimum_commitment_fills_the_true_up(engine: Engine) -> None:
    cid = engine.customer("minimum")
    sub = engine.subscribe(cid, "enterprise", payment_method=card(CARD_OK))
    start = sub["current_period"]["start"]
    engine.usage(cid, 1, event="gpu.used", properties={"hours": 100, "region": "eu"})  # 240.00
    engine.advance("1mo")
    closing = engine.invoices(cid)[1]
    true_up = [x for x in closing["lines"] if x["price_id"] == "minimum_commitment"]
    # 1,500 + 25 + 240 = 1,765: 235.00 short of the 2,000.00 minimum.
    assert [x["amount"] for x in true_up] == ["235.00"]
    engine.usage(cid, 1, event="gpu.used", properties={"hours": 10, "region": "eu"},
                 at=start.replace("+00:00", "Z") if "T" in start else f"{start}T12:00:00Z")  # late: 24.00
    engine.advance("1mo")
    late = [x for x in engine.invoices(cid)[2]["lines"] if x["kind"] == "adjustment"]
    # The late 24.00 fills the minimum: the true-up shrinks by as much, nothing more is owed.
    assert sorted((x["price_id"], x["amount"]) for x in late) == [("gpu", "24.00"), ("minimum_commitment", "-24.00")]


def _late(engine: Engine, cid: str) -> list[dict[str, Any]]:
    return [inv for inv in engine.invoices(cid) if inv["reason"] == "late"]


def _midday(start: str, days: int = 0) -> str:
    """Noon of a period's start day (a date or an instant), `days` later."""
    from datetime import date, timedelta

    return f"{date.fromisoformat(start[:10]) + timedelta(days=days)}T12:00:00Z"


def test_late_usage_after_a_cancellation_is_billed_the_next_day(engine: Engine) -> None:
    cid = engine.customer("lategone")
    sub = engine.subscribe(cid, "enterprise", payment_method=card(CARD_OK))
    start = sub["current_period"]["start"]
    engine.advance("10d")
    engine.usage(cid, 1, event="gpu.used", properties={"hours": 10, "region": "eu"}, at=_midday(start, 8))  # 24.00
    engine.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at": "now"})
    engine.advance("1d")
    # Dated before the cancellation: late usage of the cancelled period (12.00). Dated now: no period's.
    engine.usage(cid, 1, event="gpu.used", properties={"hours": 5, "region": "eu"}, at=_midday(start, 2))
    engine.usage(cid, 1, event="gpu.used", properties={"hours": 7, "region": "eu"})
    [mine] = engine.subscriptions(cid)
    assert mine["late_usage_due_at"] is not None
    engine.advance("1d")
    [late] = _late(engine, cid)
    # Under the 2,000.00 minimum (prorated to the 10 days held): the true-up shrinks by as much.
    assert sorted((x["price_id"], x["amount"]) for x in late["lines"]) == [("gpu", "12.00"),
                                                                           ("minimum_commitment", "-12.00")]
    engine.advance("1mo")
    assert len(_late(engine, cid)) == 1  # billed once; the ledger check holds the period to its quote


def test_late_usage_of_a_month_cut_short_by_a_yearly_plan_is_billed_the_next_day(engine: Engine) -> None:
    cid = engine.customer("lateyear")
    sub = engine.subscribe(cid, "pro", payment_method=card(CARD_OK))
    start = sub["current_period"]["start"]
    engine.advance("5d")
    for _ in range(3):  # 10,200 calls in bodies under the 1 MB limit: 200 above the 10,000 included, 0.40
        engine.usage(cid, 3400, at=_midday(start, 3))
    engine.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": "pro-annual", "at": "now"})
    engine.advance("2d")
    engine.usage(cid, 300, at=_midday(start, 1))  # the month's, arriving after it was cut short: 0.60
    engine.advance("1d")  # not a year later, at the yearly period's close
    [late] = _late(engine, cid)
    assert [(x["price_id"], x["quantity"], x["amount"]) for x in late["lines"]] == [("calls", "300", "0.60")]
    assert late["status"] == "paid" and money(late["total"]) == D("0.71")  # 19 % VAT


# 11 -------------------------------------------------------------------------------------------
def test_a_partial_bank_transfer_then_the_rest_reconciled_from_camt053(engine: Engine, tmp_path: Any) -> None:
    cid = engine.customer("bank")
    engine.post(f"/v1/customers/{cid}/payment_methods", {"type": "bank_transfer", "provider": "bank",
                                                         "default": True}, status=201)
    engine.subscribe(cid, "pro")
    engine.advance("1h")
    [invoice] = engine.invoices(cid)
    total = money(invoice["total"])
    [mail] = [t for t in engine.texts(f"{cid}@") if "RF" in t]
    assert "CH93" in mail.replace(" ", "")  # the seller's IBAN the customer pays to
    reference = re.search(r"RF\d\d[0-9A-Z ]{1,30}", mail)
    assert reference is not None
    rf = reference.group(0).replace(" ", "").rstrip()
    first = D("50.00")
    for n, amount in enumerate((first, total - first), start=1):
        statement = tmp_path / f"camt-{n}.xml"
        statement.write_bytes(camt053([Entry(f"{amount:.2f}", currency="USD", reference=rf)],
                                      stmt_id=f"{cid}-{n}"))
        done = engine.billing("reconcile", str(statement), "--provider", "bank")
        assert done.returncode == 0, done.stderr
        engine.advance("1h")
    [invoice] = engine.invoices(cid)
    assert invoice["status"] == "paid" and [p["amount"] for p in invoice["payments"]] == [
        "50.00", f"{total - first:.2f}"]
    receipts = [t for t in engine.texts(f"{cid}@") if "50.00" in t]
    assert receipts, "the first payment's receipt names the 50.00 received"


# 12 -------------------------------------------------------------------------------------------
def test_a_refund_makes_a_credit_note_and_balanced_journal_entries(engine: Engine) -> None:
    cid = engine.customer("refund")
    engine.subscribe(cid, "pro", payment_method=card(CARD_OK))
    engine.advance("1h")
    [invoice] = engine.invoices(cid)
    assert invoice["status"] == "paid"
    refund = engine.post(f"/v1/invoices/{invoice['id']}/refunds", {"amount": "10.00", "reason": "goodwill"},
                         status=201)
    assert money(refund["credit_note"]["total"]) == D("10.00")
    too_much = engine.admin.post(f"/v1/invoices/{invoice['id']}/refunds", json={"amount": "1000.00",
                                                                                "reason": "x"})
    assert too_much.status_code == 422 and too_much.json()["field"] == "amount"
    engine.advance("1h")
    [invoice] = engine.invoices(cid)
    assert [money(c["total"]) for c in invoice["credit_notes"]] == [D("10.00")]
    [charge] = engine.charges(cid)
    assert money(charge["amount_refunded"]) == D("10.00")
    # The journal's balance is checked by the ledger after the journey.


# 13 -------------------------------------------------------------------------------------------
def test_a_coupon_applied_to_a_running_subscription_discounts_the_next_period(engine: Engine) -> None:
    cid = engine.customer("winback")
    sub = engine.subscribe(cid, "pro", quantity=2, payment_method=card(CARD_OK))
    engine.advance("1h")
    [first] = engine.invoices(cid)
    applied = engine.post(f"/v1/subscriptions/{sub['id']}/coupon", {"coupon": "WINBACK30"})
    assert applied["coupon"] == "WINBACK30"
    engine.advance("1mo")
    first_again, second = engine.invoices(cid)
    assert first_again["total"] == first["total"] and money(first["discount"]) == D(0)  # not re-priced
    assert money(second["discount"]) == D("20.70")  # 30 % of 49.00 + 2 x 10.00
    assert [d["source"] for d in second["discounts"]] == ["coupon:WINBACK30"]
    period = f"{second['period']['start']}/{second['period']['end']}"
    quote = engine.quote(subscription_id=sub["id"], period=period)
    assert money(quote["discount"]) == D("20.70")  # the period's quote holds the coupon too
