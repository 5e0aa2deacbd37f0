"""Spend budgets (issue 20), over HTTP on the shared test clock, ending with the ledger checker.

Hand-computed: a US customer (no tax) on a plan of 4.00 a month in advance plus 0.50 per call
in arrears, with a budget of 10.00 per period, alerts at 50 and 100 %, a hard stop. Spend is
what the period's invoices charge for it before tax: the base fee invoiced for the period
(4.00, 40 %) plus the calls so far. 2 calls: 5.00, 50 %; 10 more: 10.00, 100 %, and metered
use is denied with budget_exhausted. The renewal bills 4.00 + 12 x 0.50 = 10.00 for the first
period; the second starts at 4.00 again (40 %, no alert yet), 2 calls take it to 50 % again."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from tests.journeys.harness import Engine, money
from tests.journeys.test_journeys import CARD_OK, card

D = Decimal

METERED = """\
catalog: budgets-{tag}
currency: USD
metrics:
  calls: {{event: budget.call, aggregation: count}}
features:
  calls: {{name: Calls, type: metered, metric: calls}}
plans:
  metered-{tag}:
    name: Metered
    interval: month
    prices:
      - {{id: base, model: flat, amount: "4.00", timing: in_advance}}
      - {{id: calls, model: per_unit, metric: calls, unit_amount: "0.50"}}
    entitlements:
      calls: {{limit: null, period: month, overage: allow}}
    budget: {{alerts: [50, 100], hard_stop: true}}
"""


def publish(engine: Engine, tmp_path: Any) -> str:
    tag = secrets.token_hex(3)
    path = tmp_path / "budgets.yaml"
    path.write_text(METERED.format(tag=tag))
    engine.publish(path)
    return f"metered-{tag}"


def budget(engine: Engine, cid: str) -> dict[str, Any]:
    r = engine.product.get(f"/v1/customers/{cid}/budget")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def alerts(engine: Engine, cid: str) -> list[dict[str, Any]]:
    """The customer's budget alerts in their in-app feed, oldest first."""
    return [n for n in reversed(engine.notifications(cid)) if n["template"] == "spend_threshold"]


def budget_mails(engine: Engine, cid: str) -> list[str]:
    return [s for s in engine.subjects(cid) if "budget" in s]


def test_budget_alerts_once_per_threshold_and_period_and_stops(engine: Engine, tmp_path: Any) -> None:
    plan = publish(engine, tmp_path)
    cid = engine.customer("budget", country="US")
    engine.subscribe(cid, plan, payment_method=card(CARD_OK))
    engine.advance("1h")  # the first period's base fee, 4.00, is invoiced and paid
    r = engine.product.put(f"/v1/customers/{cid}/budget", json={"amount": "10.00"})  # the plan's alerts and stop
    assert r.status_code == 200, r.text
    assert (r.json()["alerts"], r.json()["hard_stop"], r.json()["currency"]) == ([50, 100], True, "USD")
    first = budget(engine, cid)
    assert (first["spent"], first["alerts_reached"], first["exhausted"]) == ("4.00", [], False)

    engine.usage(cid, 2, event="budget.call")  # 4.00 + 1.00 = 5.00: 50 %
    engine.settle()
    assert budget(engine, cid)["alerts_reached"] == [50]
    assert budget_mails(engine, cid) == ["You have spent 50 % of your budget"]
    # The same budget set again re-checks the spend: the alert stays said once.
    assert engine.product.put(f"/v1/customers/{cid}/budget", json={"amount": "10.00"}).status_code == 200
    engine.usage(cid, 1, event="budget.call", at=engine.now())  # 5.50: still between the thresholds
    engine.settle()
    assert len(budget_mails(engine, cid)) == 1 and engine.check(cid, "calls")["allowed"]

    engine.usage(cid, 9, event="budget.call")  # 5.50 + 4.50 = 10.00: 100 %
    engine.settle()
    assert budget_mails(engine, cid) == ["You have spent 50 % of your budget",
                                         "You have spent your budget of 10.00 USD"]
    denied = engine.check(cid, "calls")
    assert (denied["allowed"], denied["reason"]) == (False, "budget_exhausted")
    now = budget(engine, cid)
    assert (now["spent"], now["alerts_reached"], now["exhausted"]) == ("10.00", [50, 100], True)
    assert [n["title"] for n in alerts(engine, cid)] == ["50 % of your budget spent", "100 % of your budget spent"]

    engine.advance("32d")  # the renewal: 4.00 + 12 x 0.50 = 10.00 for the first period
    renewal = next(i for i in engine.invoices(cid) if i["reason"] == "cycle")
    assert money(renewal["total"]) == D("10.00") and renewal["status"] == "paid"
    fresh = budget(engine, cid)
    assert (fresh["spent"], fresh["alerts_reached"], fresh["exhausted"]) == ("4.00", [], False)
    assert engine.check(cid, "calls")["allowed"]
    engine.usage(cid, 2, event="budget.call")  # 5.00 of the new period: 50 % again
    engine.settle()
    assert budget(engine, cid)["alerts_reached"] == [50]
    assert len(budget_mails(engine, cid)) == 3


def test_bad_budgets_are_refused_naming_the_field(engine: Engine) -> None:
    cid = engine.customer("budget_bad", country="US")
    engine.subscribe(cid, "free")
    for body, field in [({"amount": "-5"}, "amount"), ({"amount": "0"}, "amount"),
                        ({"amount": "10.00", "alerts": [50, 120]}, "alerts[1]"),
                        ({"amount": "10.00", "alerts": [50, 50]}, "alerts"),
                        ({"amount": "10.00", "alerts": [0]}, "alerts[0]"),
                        ({"alerts": [50]}, "amount")]:
        r = engine.product.put(f"/v1/customers/{cid}/budget", json=body)
        assert r.status_code == 422 and r.json()["field"] == field, (body, r.text)
    r = engine.product.put("/v1/customers/cus_nobody_here/budget", json={"amount": "10.00"})
    assert r.status_code == 404 and r.json()["field"] == "customer_id", r.text
    r = engine.product.get(f"/v1/customers/{cid}/budget")
    assert r.status_code == 404 and r.json()["field"] == "budget"  # nothing was written
    assert engine.product.delete(f"/v1/customers/{cid}/budget").status_code == 404
    r = engine.product.put(f"/v1/customers/{cid}/budget", json={"amount": "10.00", "alerts": [80, 50]})
    assert r.status_code == 200 and r.json()["alerts"] == [50, 80], r.text  # a set: kept ascending
    assert engine.product.delete(f"/v1/customers/{cid}/budget").status_code == 204
    assert engine.product.get(f"/v1/customers/{cid}/budget").status_code == 404
