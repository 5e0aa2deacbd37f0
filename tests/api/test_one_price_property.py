"""A differential property test of one price everywhere (issue 15).

Random catalogs (flat, per-seat and tiered usage prices, a minimum commitment), coupons
(percent or amount off, once, repeating or forever), promotion rulesets (percent or amount off,
some for a few periods), up to two plan and quantity changes in a month, late usage, and an end to the last month: a
cancellation now or at the period end, or a change to a yearly plan that cuts the month short,
with late usage of that month arriving after it (billed the next day, as every closed period's
late usage is), run over months through the HTTP API on a test clock. Then, cent for cent:
- every document (invoice or credit note) equals the sum of its lines;
- for every period, the documents of that period (invoices less credit notes; changes, their
  credits and late usage included) add up to the subscription's quote of that period, which
  replays the period's history;
- for every period without a change in it, also to a plain quote given the plan, quantity,
  usage, customer and the coupon when the test's own model says it applies;
- for every period, the test's own model of the minimum commitment holds: each plan held owes
  its minimum for the days it was held, so the period's charges before discounts are at least
  that sum, and exactly that when a true-up is billed.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from engine import sales
from engine.api import create_app, create_key
from engine.catalog import load_catalog_text
from engine.config import Settings
from engine.rules import publish_ruleset
from engine.system import build_system

D = Decimal
EXAMPLES = int(os.environ.get("ONE_PRICE_EXAMPLES", "20"))
MONTHS = [date(2026, m, 1) for m in range(1, 9)]

money = st.integers(min_value=0, max_value=9999).map(lambda c: f"{D(c) / 100:.2f}")
unit = st.integers(min_value=0, max_value=500).map(lambda m: f"{D(m) / 1000:.3f}")


@st.composite
def plans(draw: st.DrawFn, name: str) -> str:
    minimum = draw(st.sampled_from(['"0"', '"60.00"', '"150.00"']))
    up_to = draw(st.integers(min_value=1, max_value=200))
    return f"""
  {name}:
    name: Plan {name.upper()}
    interval: month
    minimum_amount: {minimum}
    prices:
      - {{id: base, name: Base, model: flat, amount: "{draw(money)}"}}
      - {{id: seats, name: Seats, model: per_unit, unit_amount: "{draw(money)}"}}
      - id: calls
        name: Calls
        model: graduated
        metric: calls
        tiers:
          - {{up_to: {up_to}, unit_amount: "{draw(unit)}"}}
          - {{up_to: null, unit_amount: "{draw(unit)}", flat_amount: "{draw(money)}"}}
"""


coupons = st.one_of(
    st.none(),
    st.builds(lambda p, n: ("pct", f"{{percent_off: {p}, duration: repeating, periods: {n}}}", n),
              st.integers(min_value=1, max_value=100), st.integers(min_value=1, max_value=3)),
    st.builds(lambda a, d: ("amt", f'{{amount_off: "{a}", duration: {d}}}', 1 if d == "once" else 99),
              money, st.sampled_from(["once", "forever"])),
)

promotions = st.lists(
    st.one_of(
        st.builds(lambda p: f"discount: {{percent: {p}, reason: Promo}}", st.integers(min_value=1, max_value=60)),
        st.builds(lambda a: f'discount: {{amount: "{a}", reason: Promo}}', money),
        st.builds(lambda p, n: f"discount: {{percent: {p}, periods: {n}, reason: Launch}}",
                  st.integers(min_value=1, max_value=60), st.integers(min_value=1, max_value=2)),
    ),
    max_size=2,
)


change = st.tuples(st.integers(min_value=2, max_value=27), st.sampled_from(["a", "b"]),
                   st.integers(min_value=0, max_value=5))


@st.composite
def months(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(min_value=2, max_value=4))):
        changes = draw(st.lists(change, max_size=2, unique_by=lambda c: c[0]))
        out.append({
            "calls": draw(st.integers(min_value=0, max_value=400)),
            "late": draw(st.integers(min_value=0, max_value=30)),
            "changes": sorted(changes),
        })
    return out


def _minimum(plan_yaml: str) -> Decimal:
    return D(re.search(r'minimum_amount: "([0-9.]+)"', plan_yaml).group(1))  # type: ignore[union-attr]


def _held_minimum(held: list[tuple[str, int]], until: int, days: int, minimums: dict[str, Decimal],
                  rounding: str) -> Decimal:
    """The test's own model: each plan held (from day-of-month `start`) owes its minimum for
    the days it was held, the sum rounded once."""
    owed = D(0)
    for (plan, start), (_, end) in zip(held, [*held[1:], ("", until)], strict=True):
        owed += minimums[plan] * (end - start)
    mode = ROUND_HALF_UP if rounding == "half_up" else ROUND_HALF_EVEN
    return (owed / days).quantize(D("0.01"), mode)


YEARLY = """
  y:
    name: Plan Y
    interval: year
    prices:
      - {id: base, name: Yearly base, model: flat, amount: "240.00"}
      - {id: calls, name: Calls, model: per_unit, metric: calls, unit_amount: "0.010"}
"""


def _catalog(plan_a: str, plan_b: str, coupon: tuple[str, str, int] | None, rounding: str) -> str:
    coupons_yaml = f"coupons:\n  PROMO: {coupon[1]}\n" if coupon else ""
    return f"""
catalog: prop
currency: EUR
rounding: {rounding}
taxes: {{DE: 19}}
metrics:
  calls: {{event: call, aggregation: count}}
{coupons_yaml}plans:{plan_a}{plan_b}{YEARLY}"""


def _rules(items: list[str]) -> str:
    rules = "".join(
        f"""
  - id: promo-{i}
    on: price.calculate
    when: {{customer.segment: edu}}
    then:
      - {item}
"""
        for i, item in enumerate(items)
    )
    return f"ruleset: promotions\nrules:{rules}" if items else ""


def _at(d: date, day: int = 1, hour: int = 0) -> str:
    return datetime(d.year, d.month, day, hour, tzinfo=UTC).isoformat()


class Driver:
    def __init__(self, tmp: Path, catalog: str, rules: str) -> None:
        self.system = build_system(Settings(database_url=f"sqlite:///{tmp}/p.db", test_clock=_at(MONTHS[0])))
        with self.system.db.session() as s:
            sales.publish_catalog(s, load_catalog_text(catalog, "prop.yaml"), "t", clock=self.system.clock)
            if rules:
                (tmp / "promotions.yaml").write_text(rules)
                publish_ruleset(s, tmp / "promotions.yaml", "t", clock=self.system.clock, smoke=False)
            _, key = create_key(s, "admin", now=self.system.clock.now())
        self.system.sync_rules()
        self.http = TestClient(create_app(self.system.api_context()), headers={"Authorization": f"Bearer {key}"})
        self.n = 0

    def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        r = self.http.request(method, path, json=body)
        assert r.status_code == status, (path, body, r.text)
        return r.json()

    def events(self, customer: str, n: int, month: date, days: tuple[int, int] = (1, 28)) -> None:
        body = []
        for i in range(n):
            self.n += 1
            day = days[0] + i % (days[1] - days[0] + 1)
            body.append({"id": f"e{self.n}", "type": "call", "customer_id": customer, "time": _at(month, day, 12)})
        if body:
            self.call("POST", "/v1/events", body, 202)

    def advance(self, to: str) -> None:
        self.call("POST", "/v1/clock/advance", {"to": to})
        self.system.drain()


def _documents(driver: Driver, customer: str) -> list[tuple[int, dict[str, Any]]]:
    """(sign, document) for every invoice (+1) and credit note (-1) of the customer."""
    listed = driver.call("GET", f"/v1/customers/{customer}/invoices?per_page=500")["items"]
    docs = [(1, driver.call("GET", f"/v1/invoices/{i['id']}")) for i in listed]
    with driver.system.db.session() as s:
        docs += [(-1, c) for c in sales.list_credit_notes(s, customer)]
    return docs


def _period_of(line: dict[str, Any]) -> str | None:
    p = line.get("period")
    if isinstance(p, dict):
        return f"{p['start']}/{p['end']}"
    return p  # type: ignore[no-any-return]


def _line_total(line: dict[str, Any]) -> Decimal:
    return D(line["amount"]) - D(line["discount"]) + D(line["tax"])


PHASES = [Phase.generate] if os.environ.get("ONE_PRICE_NO_SHRINK") else list(Phase)


@settings(max_examples=EXAMPLES, deadline=None, database=None, phases=PHASES,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(plan_a=plans("a"), plan_b=plans("b"), coupon=coupons, promos=promotions, plan=months(),
       edu=st.booleans(), taxed=st.booleans(), seats=st.integers(min_value=0, max_value=4),
       rounding=st.sampled_from(["half_up", "half_even"]),
       end=st.one_of(st.none(), st.tuples(st.sampled_from(["cancel", "cancel_at_end", "yearly"]), st.integers(2, 27))))
def test_every_document_adds_up_to_the_quote_of_its_period(
    plan_a: str, plan_b: str, coupon: tuple[str, str, int] | None, promos: list[str], plan: list[dict[str, Any]],
    edu: bool, taxed: bool, seats: int, rounding: str, end: tuple[str, int] | None,
) -> None:
    note(f"catalog: {_catalog(plan_a, plan_b, coupon, rounding)}\nrules: {_rules(promos)}\nmonths: {plan}\n"
         f"edu={edu} taxed={taxed} seats={seats} end={end}")
    with TemporaryDirectory() as tmp:
        driver = Driver(Path(tmp), _catalog(plan_a, plan_b, coupon, rounding), _rules(promos))
        customer = {"id": "c1", "email": "c1@example.com", "name": "C1", "country": "DE" if taxed else "US"}
        if edu:
            customer["segment"] = "edu"
        driver.call("POST", "/v1/customers", customer, 201)
        body = {"customer_id": "c1", "plan": "a", "quantity": seats}
        if coupon:
            body["coupon"] = "PROMO"
        sub = driver.call("POST", "/v1/subscriptions", body, 201)
        model: dict[str, dict[str, Any]] = {}  # the test's own record of each period's inputs
        current = {"plan": "a", "quantity": seats}
        for i, month in enumerate(plan):
            period = f"{MONTHS[i]}/{MONTHS[i + 1]}"
            days = (MONTHS[i + 1] - MONTHS[i]).days
            model[period] = {**current, "calls": month["calls"], "cycle": i, "changed": False,
                             "held": [(current["plan"], 1)], "until": days + 1, "days": days}
            driver.events("c1", month["calls"], MONTHS[i])
            for day, to_plan, quantity in month["changes"]:
                if (to_plan, quantity) == (current["plan"], current["quantity"]):
                    continue
                driver.advance(_at(MONTHS[i], day))
                driver.call("POST", f"/v1/subscriptions/{sub['id']}/change",
                            {"plan": to_plan, "quantity": quantity, "at": "now"}
                            if to_plan != current["plan"] else {"quantity": quantity})
                current = {"plan": to_plan, "quantity": quantity}
                model[period].update(current, changed=True)
                model[period]["held"].append((to_plan, day))
            last = i == len(plan) - 1
            if last and end is not None:
                kind, end_day = end
                day = max(end_day, model[period]["held"][-1][1] + 1)
                driver.advance(_at(MONTHS[i], day))
                if kind == "cancel_at_end":
                    driver.call("POST", f"/v1/subscriptions/{sub['id']}/cancel", {"at": "period_end"})
                    driver.advance(_at(MONTHS[i + 1]))  # the final invoice
                    # Late after the subscription ended: no next boundary, billed the next day.
                    driver.events("c1", month["late"], MONTHS[i], days=(20, 27))
                    model[period]["calls"] += month["late"]
                else:
                    if kind == "cancel":
                        driver.call("POST", f"/v1/subscriptions/{sub['id']}/cancel", {"at": "now"})
                    else:  # to a yearly plan: the month is cut short today, its next boundary a year away
                        driver.call("POST", f"/v1/subscriptions/{sub['id']}/change",
                                    {"plan": "y", "quantity": current["quantity"], "at": "now"})
                    model[period].update(changed=True, until=day)
                    driver.advance(_at(MONTHS[i], day, 18))
                    # Late: dated in the days the month ran. Then some dated after the cut: the
                    # yearly period's (on time) or, after a cancellation, no period's.
                    driver.events("c1", month["late"], MONTHS[i], days=(1, day - 1))
                    driver.events("c1", 3, MONTHS[i], days=(day, day))
                driver.advance(_at(MONTHS[i + 1], 2))  # the day after: late usage billed
                break
            driver.advance(_at(MONTHS[i + 1]))
            # Late: usage of the month just closed, arriving after it was invoiced.
            driver.events("c1", month["late"], MONTHS[i], days=(20, 27))
            model[period]["calls"] += month["late"]
        else:
            driver.advance(_at(MONTHS[len(plan) + 1]))  # bills the last month's late usage

        by_period: dict[str, Decimal] = defaultdict(D)
        charged: dict[str, Decimal] = defaultdict(D)  # before discounts, the true-up included
        true_up: dict[str, Decimal] = defaultdict(D)
        for sign, doc in _documents(driver, "c1"):
            lines = doc["lines"]
            assert sum((_line_total(x) for x in lines), D(0)) == D(doc["total"]), doc
            for line in lines:
                key = str(_period_of(line))
                by_period[key] += sign * _line_total(line)
                charged[key] += sign * D(line["amount"])
                if line["price_id"] == "minimum_commitment":
                    true_up[key] += sign * D(line["amount"])
        minimums = {"a": _minimum(plan_a), "b": _minimum(plan_b)}
        for period, inputs in model.items():
            quote = driver.call("POST", "/v1/quotes", {"subscription_id": sub["id"], "period": period})
            assert by_period[period] == D(quote["total"]), (period, inputs, quote)
            # Each change is a document that cut the period (a cancellation, when it gave time back).
            assert quote["mid_period_changes"] >= len(inputs["held"]) - 1, (period, inputs, quote)
            if not inputs["changed"]:
                assert quote["mid_period_changes"] == 0, (period, inputs, quote)
            owed = _held_minimum(inputs["held"], inputs["until"], inputs["days"], minimums, rounding)
            assert charged[period] >= owed, (period, inputs, owed)
            if true_up[period] > 0:
                assert charged[period] == owed, (period, inputs, owed)
            if inputs["changed"]:
                continue
            plain = {"plan": inputs["plan"], "quantity": str(inputs["quantity"]), "customer_id": "c1",
                     "usage": {"calls": str(inputs["calls"])}, "period": period}
            if coupon and inputs["cycle"] < coupon[2]:
                plain["coupon"] = "PROMO"
            if not any("periods" in p for p in promos):  # a rule's periods count from redemption
                assert D(driver.call("POST", "/v1/quotes", plain)["total"]) == by_period[period], (period, plain)
        driver.http.close()
        driver.system.db.dispose()
