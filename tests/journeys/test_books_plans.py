"""A plan change in the books (issue 21), over HTTP on the shared test clock, ending with the
ledger checker: the upgrade's credit for the unused days of the old plan reverses the OLD
plan's revenue, the new plan's charge for them is the NEW plan's revenue, in the journal
(`GET /v1/books/journal`) and in the revenue report (`GET /v1/books/revenue`).

Hand rules: a proration line is the price x days left / days in the period, rounded half-up
to the cent; its VAT DE 19 % rounded half-up on its own."""

from __future__ import annotations

import calendar
import secrets
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from tests.journeys.harness import Engine, money
from tests.journeys.test_books_journey import VAT, advance_to, balances, cents, journal, when
from tests.journeys.test_journeys import CARD_OK, card

D = Decimal

CATALOG = """\
catalog: books-plans-{tag}
currency: USD
taxes: {{DE: 19}}
metrics: {{}}
plans:
  lite-{tag}:
    name: Lite
    interval: month
    prices:
      - {{id: base, name: Lite fee, model: flat, amount: "5.00"}}
  plus-{tag}:
    name: Plus
    interval: month
    prices:
      - {{id: base, name: Plus fee, model: flat, amount: "15.00"}}
"""


def test_an_upgrade_credits_the_old_plan_and_charges_the_new_one(engine: Engine, tmp_path: Path) -> None:
    """Lite (5.00) from the 1st, upgraded to Plus (15.00) on the 11th: D - 10 of the month's D
    days are left. The upgrade invoice gives back 5.00 x (D-10)/D of Lite and charges 15.00 x
    (D-10)/D of Plus: the journal reverses Lite's revenue by the first and books the second as
    Plus's; the month's report shows Lite earned 5.00 less the credit, Plus the charge."""
    tag = secrets.token_hex(3)
    path = tmp_path / "books-plans.yaml"
    path.write_text(CATALOG.format(tag=tag))
    engine.publish(path)
    lite, plus = f"lite-{tag}", f"plus-{tag}"
    start = (when(engine).date().replace(day=1) + timedelta(days=32)).replace(day=1)
    days = calendar.monthrange(start.year, start.month)[1]
    advance_to(engine, start)
    cid = engine.customer("books_plans")
    sub = engine.subscribe(cid, lite, payment_method=card(CARD_OK))
    engine.advance("1h")
    advance_to(engine, start + timedelta(days=10), hour=2)
    engine.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": plus})
    engine.advance("1h")
    [upgrade] = [i for i in engine.invoices(cid) if i["plan"] == plus]
    unused, remaining = cents(D("5.00") * (days - 10) / days), cents(D("15.00") * (days - 10) / days)
    assert sorted(money(x["amount"]) for x in upgrade["lines"]) == [-unused, remaining], upgrade["lines"]
    tax = cents(remaining * VAT) - cents(unused * VAT)
    assert money(upgrade["tax"]) == tax

    entries = journal(engine, start, {upgrade["id"]})
    assert balances({"inv": entries[f"inv:{upgrade['id']}"]}) == {
        f"revenue:{lite}:subscription": unused, f"revenue:{plus}:subscription": -remaining,
        "receivables": remaining - unused + tax, "tax_payable:DE": -tax}

    label = start.isoformat()[:7]
    report = engine.admin.get("/v1/books/revenue", params={"from": label, "to": label, "customer_id": cid})
    assert report.status_code == 200, report.text
    rows = {r["plan"]: (money(r["billed"]), money(r["recognised"]), money(r["deferred"]))
            for r in report.json()["items"]}
    # The whole period lies in the month: each plan earned what it billed, nothing deferred.
    assert rows == {lite: (D("5.00") - unused, D("5.00") - unused, D(0)), plus: (remaining, remaining, D(0))}
