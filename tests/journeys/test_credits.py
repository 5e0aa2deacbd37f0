"""Credit journeys (issue 20), over HTTP on the shared test clock, each ending with the ledger
checker: grants pay invoices by priority before the card is charged, a pack counts once its
invoice is paid, grants expire with and without rollover. Hand-computed: a DE customer on Pro
with one seat pays 49.00 + 19 % = 58.31 (base) and 10.00 + 19 % = 11.90 (seat): 70.21. The shared
clock crosses November and December 2026, where the shipped launch promotion takes 20 % off the
base fee: 39.20 + 19 % = 46.65 and 11.90, 58.55."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.journeys.harness import Engine, money
from tests.journeys.test_journeys import CARD_OK, card

D = Decimal
LAUNCH = "rule:promotions/launch-2026"


def pro_base(invoice: dict[str, Any]) -> Decimal:
    """The Pro base line with 19 % tax: 58.31, or 46.65 under the launch promotion."""
    launch = any(d["source"] == LAUNCH for d in invoice["discounts"])
    return D("46.65") if launch else D("58.31")


def pro_total(invoice: dict[str, Any]) -> Decimal:
    """A Pro period with one seat (11.90), checked against the invoice: 70.21 or 58.55."""
    due = pro_base(invoice) + D("11.90")
    assert money(invoice["total"]) == due, invoice
    return due


def grant(engine: Engine, customer: str, **body: Any) -> dict[str, Any]:
    return engine.post(f"/v1/customers/{customer}/wallet/grants", {"unit": "USD", **body}, status=201)  # type: ignore[no-any-return]


def wallet(engine: Engine, customer: str) -> dict[str, Any]:
    r = engine.product.get(f"/v1/customers/{customer}/wallet")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def kinds(engine: Engine, customer: str) -> list[tuple[str, str]]:
    entries = engine.get(f"/v1/customers/{customer}/wallet/ledger")["entries"]
    return [(e["kind"], e["amount"]) for e in entries]


def test_grants_pay_the_invoice_by_priority_before_the_card(engine: Engine) -> None:
    cid = engine.customer("credits_priority")
    plain = grant(engine, cid, amount="30.00", reason="goodwill")  # priority 100
    welcome = grant(engine, cid, amount="10.00", priority=10, reason="welcome", expires_at="2199-01-01T00:00:00Z")
    engine.subscribe(cid, "pro", quantity=1, payment_method=card(CARD_OK))
    engine.advance("1h")
    [first] = engine.invoices(cid)
    # 10.00 (priority 10) then 30.00 (priority 100) on the base line; the seat line and the
    # rest of the base line go to the card: 70.21 - 40.00 = 30.21 (58.55 - 40.00 = 18.55).
    card_part = pro_total(first) - D("40.00")
    assert money(first["credit_applied"]) == D("40.00")
    assert first["status"] == "paid" and money(first["amount_paid"]) == card_part
    base, seat = first["lines"][0], first["lines"][1]
    assert base["paid_by_credits"] == [{"grant_id": welcome["id"], "amount": "10.00"},
                                       {"grant_id": plain["id"], "amount": "30.00"}]
    assert seat["paid_by_credits"] == []
    [charge] = engine.charges(cid)
    assert money(charge["amount"]) == card_part
    assert wallet(engine, cid)["balances"] == [{"unit": "USD", "balance": "0.00", "available": "0.00", "pending": "0.00"}]
    assert kinds(engine, cid) == [("grant", "30.00"), ("grant", "10.00"),
                                  ("consumption", "-10.00"), ("consumption", "-30.00")]


def test_a_pack_counts_once_paid_and_pays_the_renewal(engine: Engine) -> None:
    cid = engine.customer("credits_pack")
    engine.subscribe(cid, "pro", quantity=1, payment_method=card(CARD_OK))
    engine.advance("1h")
    r = engine.product.post(f"/v1/customers/{cid}/wallet/packs", json={"pack": "starter", "key": "order-1"})
    assert r.status_code == 201, r.text
    bought = r.json()
    assert bought["grant"]["status"] == "pending" and money(bought["invoice"]["total"]) == D("53.55")  # 45 + 19 %
    again = engine.product.post(f"/v1/customers/{cid}/wallet/packs", json={"pack": "starter", "key": "order-1"}).json()
    assert again["invoice"]["id"] == bought["invoice"]["id"] and again["grant"]["id"] == bought["grant"]["id"]
    engine.advance("1h")  # the card pays the pack's invoice: the credit counts now
    [usd] = wallet(engine, cid)["balances"]
    assert (usd["balance"], usd["available"]) == ("50.00", "50.00")
    engine.advance("31d")  # the renewal: 70.21 (or 58.55), of which the pack pays 50.00
    first = next(i for i in engine.invoices(cid) if i["reason"] != "cycle" and i["reason"] != "charge")
    renewal = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    by_card = pro_total(renewal) - D("50.00")
    assert money(renewal["credit_applied"]) == D("50.00") and money(renewal["amount_paid"]) == by_card
    assert wallet(engine, cid)["balances"][0]["balance"] == "0.00"
    assert sorted(money(c["amount"]) for c in engine.charges(cid)) == sorted([by_card, D("53.55"), pro_total(first)])


def test_expiry_with_and_without_rollover(engine: Engine) -> None:
    cid = engine.customer("credits_expiry")
    engine.subscribe(cid, "pro", quantity=1, payment_method=card(CARD_OK))
    engine.advance("1h")
    ends = grant(engine, cid, amount="100.00", priority=10, rollover="none", reason="this month only")
    stays = grant(engine, cid, amount="20.00", priority=20, rollover="all", reason="carried over")
    short = grant(engine, cid, amount="5.00", priority=5, reason="two days",
                  expires_at=_later(engine.now(), days=2))
    engine.advance("3d")  # the two-day grant expires untouched
    engine.advance("30d")  # the renewal (70.21) is paid by the month's grant, the rest of it expires
    renewal = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    due = pro_total(renewal)
    assert money(renewal["credit_applied"]) == due and renewal["status"] == "paid"
    grants = {g["id"]: g for g in wallet(engine, cid)["grants"]}
    assert (grants[short["id"]]["status"], grants[short["id"]]["remaining"]) == ("expired", "0.00")
    assert (grants[ends["id"]]["status"], grants[ends["id"]]["remaining"]) == ("expired", "0.00")
    assert (grants[stays["id"]]["status"], grants[stays["id"]]["remaining"]) == ("active", "20.00")
    assert kinds(engine, cid) == [
        ("grant", "100.00"), ("grant", "20.00"), ("grant", "5.00"), ("expiry", "-5.00"),
        ("consumption", f"-{pro_base(renewal)}"), ("consumption", "-11.90"), ("expiry", f"-{D('100.00') - due}")]


def test_bad_grants_are_refused_naming_the_field(engine: Engine) -> None:
    cid = engine.customer("credits_bad")
    engine.subscribe(cid, "free")  # its catalog names the grants and packs
    for body, status, field in [({"amount": "0", "reason": "x"}, 422, "amount"),
                                ({"amount": "-5", "reason": "x"}, 422, "amount"),
                                ({"amount": "5"}, 422, "reason"),
                                ({"amount": "5", "reason": "x", "expires_at": "2020-01-01T00:00:00Z"}, 409,
                                 "expires_at"),  # before now, when it would take effect
                                ({"grant": "nope", "reason": "x"}, 404, "grant")]:
        r = engine.admin.post(f"/v1/customers/{cid}/wallet/grants", json={"unit": "USD", **body})
        assert r.status_code == status and r.json()["field"] == field, r.text
    r = engine.admin.post("/v1/customers/cus_nobody_here/wallet/grants", json={"amount": "5", "reason": "x"})
    assert r.status_code == 404 and r.json()["field"] == "customer_id", r.text
    r = engine.product.post(f"/v1/customers/{cid}/wallet/grants", json={"amount": "5", "reason": "x"})
    assert r.status_code == 403  # granting is the operator's
    assert engine.get(f"/v1/customers/{cid}/wallet/ledger")["entries"] == []


def _later(now: str, *, days: int) -> str:
    from datetime import datetime, timedelta

    return (datetime.fromisoformat(now.replace("Z", "+00:00")) + timedelta(days=days)).isoformat()


PREPAID = """\
catalog: prepaid-{tag}
currency: USD
metrics:
  calls: {{event: prepaid.call, aggregation: count}}
features:
  calls: {{name: Calls, type: metered, metric: calls}}
plans:
  prepaid-{tag}:
    name: Prepaid
    interval: month
    prices:
      - {{id: calls, model: per_unit, metric: calls, unit_amount: "0.10"}}
    entitlements:
      calls: {{limit: null, period: month, overage: allow}}
    credits: {{on_exhausted: hard_stop}}
"""


def test_a_hard_stop_plan_denies_once_usage_has_spent_the_credit(engine: Engine, tmp_path: Any) -> None:
    import secrets


    tag = secrets.token_hex(3)
    path = tmp_path / "prepaid.yaml"
    path.write_text(PREPAID.format(tag=tag))
    engine.publish(path)
    cid = engine.customer("credits_stop", country="US")
    engine.subscribe(cid, f"prepaid-{tag}")
    assert engine.check(cid, "calls")["reason"] == "credits_exhausted"  # an empty wallet
    grant(engine, cid, amount="1.00", reason="prepaid")
    assert engine.check(cid, "calls")["allowed"]
    engine.usage(cid, 9, event="prepaid.call")  # 0.90 accrued: 0.10 left
    assert engine.check(cid, "calls")["allowed"]
    engine.usage(cid, 1, event="prepaid.call")  # 1.00 accrued: spent
    denied = engine.check(cid, "calls")
    assert (denied["allowed"], denied["reason"]) == (False, "credits_exhausted")
    engine.advance("32d")  # the period's invoice (1.00) is paid by the grant
    usage_invoice = next(i for i in engine.invoices(cid) if money(i["total"]) > 0)
    assert money(usage_invoice["total"]) == D("1.00") and money(usage_invoice["credit_applied"]) == D("1.00")
    assert usage_invoice["status"] == "paid"


def test_auto_top_up_once_below_the_threshold(engine: Engine) -> None:
    cid = engine.customer("credits_topup")
    engine.subscribe(cid, "pro", quantity=1, payment_method=card(CARD_OK))
    engine.advance("1h")
    r = engine.product.put(f"/v1/customers/{cid}/wallet/top_up", json={"enabled": True, "threshold": "60.00"})
    assert r.status_code == 409 and r.json()["field"] == "threshold"  # not below the catalog pack's 50.00
    r = engine.product.put(f"/v1/customers/{cid}/wallet/top_up", json={"enabled": True, "threshold": "10.00"})
    assert r.status_code == 200 and r.json() == {"enabled": True, "threshold": "10.00", "pack": "starter"}, r.text
    grant(engine, cid, amount="60.00", reason="prepaid")
    engine.advance("31d")  # the renewal (70.21): 60.00 from the wallet, 10.21 by card; 0.00 < 10.00
    engine.advance("1h")  # the top-up's invoice (53.55) is collected and its 50.00 credited
    # (under the launch promotion, 58.55: all from the wallet, and 1.45 < 10.00 left)
    first = next(i for i in engine.invoices(cid) if i["reason"] not in ("cycle", "charge"))
    due = pro_total(next(i for i in engine.invoices(cid) if i["reason"] == "cycle"))
    left = max(D("60.00") - due, D("0.00"))
    packs = [i for i in engine.invoices(cid) if i["reason"] == "charge"]
    assert [money(i["total"]) for i in packs] == [D("53.55")] and packs[0]["status"] == "paid"
    [usd] = wallet(engine, cid)["balances"]
    assert (usd["available"], usd["pending"]) == (str(left + D("50.00")), "0.00")
    by_card = [due - D("60.00")] if due > D("60.00") else []
    assert sorted(money(c["amount"]) for c in engine.charges(cid)) == sorted([*by_card, D("53.55"), pro_total(first)])
