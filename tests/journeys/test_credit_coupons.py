"""A coupon that grants credit (issue 20: promotional grants from a coupon), over HTTP on the
shared test clock, ending with the ledger checker. The operator publishes a catalog whose coupon
`CREDIT-<tag>` grants the catalog's `welcome` grant (10.00, priority 10) and discounts nothing; a
catalog whose coupon names a grant it does not declare is refused, naming the file, line and
field. Applied to a running Basic subscription (`POST /v1/subscriptions/{id}/coupon`), the coupon
grants 10.00 once (source `coupon`): the call repeated is a 409 and the events delivered again
grant nothing more; the 5.95 renewal is paid by it before the card, at full price, and the
journal books it as a discount, not revenue. Given at sign-up, it grants the same once.
Hand-computed for a DE customer (19 %): Basic 5.00 + 0.95 = 5.95."""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from decimal import Decimal

from tests.journeys.harness import Engine, money, redeliver
from tests.journeys.test_books_journey import balances, journal
from tests.journeys.test_credits import wallet
from tests.journeys.test_journeys import CARD_OK, card

D = Decimal

CATALOG = """\
catalog: credit-coupons-{tag}
currency: USD
taxes: {{DE: 19}}
metrics: {{}}
plans:
  basic-{tag}:
    name: Basic
    interval: month
    prices:
      - {{id: base, name: Platform, model: flat, amount: "5.00"}}
coupons:
  CREDIT-{tag}: {{duration: once, grant_credit: {{grant: {grant}, reason: welcome coupon}}}}
credits:
  grants:
    welcome-{tag}: {{name: Welcome credit, amount: "10.00", priority: 10, rollover: all}}
"""


def _publish(engine: Engine, tag: str) -> None:
    bad = {"file": "credit-coupons.yaml", "text": CATALOG.format(tag=tag, grant="nothing-here")}
    r = engine.admin.post("/v1/publish", json={"documents": [bad]})
    assert r.status_code == 422, r.text
    problems = r.json().get("problems") or [r.json()["detail"]]
    assert any(
        p.startswith(
            f"credit-coupons.yaml:12: coupons.CREDIT-{tag}.grant_credit.grant: unknown credit grant "
            f"'nothing-here'; credits.grants has welcome-{tag}"
        )
        for p in problems
    ), problems
    good = {"file": "credit-coupons.yaml", "text": CATALOG.format(tag=tag, grant=f"welcome-{tag}")}
    engine.post("/v1/publish", {"documents": [good]}, status=201)


def _coupon_grants(engine: Engine, cid: str) -> list[dict[str, object]]:
    return [g for g in wallet(engine, cid)["grants"] if g["source"] == "coupon"]


def test_a_coupon_grants_its_credit_once_and_it_pays_as_a_discount(engine: Engine) -> None:
    tag = secrets.token_hex(3)
    _publish(engine, tag)
    cid = engine.customer("credit_coupon")
    sub = engine.subscribe(cid, f"basic-{tag}", payment_method=card(CARD_OK))
    engine.settle()
    assert wallet(engine, cid)["grants"] == []

    engine.post(f"/v1/subscriptions/{sub['id']}/coupon", {"coupon": f"CREDIT-{tag}"})
    [g] = wallet(engine, cid)["grants"]
    assert (g["source"], g["source_ref"], g["amount"], g["remaining"], g["reason"]) == (
        "coupon",
        f"welcome-{tag}",
        "10.00",
        "10.00",
        "welcome coupon",
    )
    again = engine.admin.post(f"/v1/subscriptions/{sub['id']}/coupon", json={"coupon": f"CREDIT-{tag}"})
    assert again.status_code == 409 and "already has coupon" in again.text
    redeliver(engine, cid, ("subscription.changed", "credits.granted"))
    assert [x["id"] for x in wallet(engine, cid)["grants"]] == [g["id"]]

    engine.advance("31d")  # the renewal at full price (the coupon discounts nothing), paid by its credit
    renewal = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    assert (money(renewal["total"]), money(renewal["credit_applied"]), renewal["status"]) == (
        D("5.95"),
        D("5.95"),
        "paid",
    )
    assert wallet(engine, cid)["balances"][0]["balance"] == "4.05"
    start = date.fromisoformat(engine.now()[:10]) - timedelta(days=70)
    used = {k: balances({k: v}) for k, v in journal(engine, start, {g["id"]}).items() if k.startswith("credits:used:")}
    assert used == {f"credits:used:{renewal['id']}:{g['id']}": {"customer_credit": D("-5.95"), "discounts": D("5.95")}}

    signup = engine.customer("credit_coupon_signup")
    engine.subscribe(signup, f"basic-{tag}", coupon=f"CREDIT-{tag}", payment_method=card(CARD_OK))
    engine.settle()
    [s] = _coupon_grants(engine, signup)
    assert (s["amount"], s["remaining"]) == ("10.00", "10.00")
    redeliver(engine, signup, ("subscription.created",))
    assert [x["id"] for x in wallet(engine, signup)["grants"]] == [s["id"]]
