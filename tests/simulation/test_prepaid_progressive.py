"""The what-if prices credit packs and progressive billing with the engine's own functions
(engine.credits: draw-down, expiry, top-up, what a use earns; engine.pricing: interim invoices
and the deducting close). Every figure below is worked out by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from engine.catalog import load_catalog_text
from engine.simulation import SimulationError, cohort_from_records, parse_prepaid, simulate

START = date(2027, 1, 1)
CATALOG = """
catalog: packs-test
currency: USD
rounding: half_up
metrics:
  api_calls: {event: api.request, aggregation: count}
plans:
  metered:
    name: Metered
    interval: month
    prices:
      - {id: base, model: flat, amount: "10.00"}
      - id: calls
        model: graduated
        metric: api_calls
        tiers:
          - {up_to: 100, unit_amount: "0.50"}
          - {up_to: null, unit_amount: "0.25"}
credits:
  packs:
    starter: {name: Starter, price: "45.00", credit: "50.00", priority: 50, expires_after: 1y, rollover: all}
    monthly: {name: Monthly, price: "45.00", credit: "50.00", rollover: none}
  top_up: {threshold: "10.00", pack: starter}
"""
PROGRESSIVE = CATALOG.replace(
    "    prices:\n", '    progressive_billing: {thresholds: ["20.00", "50.00"], then_every: "40.00"}\n    prices:\n', 1)


def catalogs():  # type: ignore[no-untyped-def]
    return load_catalog_text(CATALOG, "baseline.yaml"), load_catalog_text(PROGRESSIVE, "draft.yaml")


def one_customer(calls: int):  # type: ignore[no-untyped-def]
    return cohort_from_records([{"customer_id": "a", "plan": "metered", "usage": {"api_calls": calls}}])


def test_a_pack_pays_the_bills_until_it_runs_out() -> None:
    baseline, _ = catalogs()
    # 60 calls a month: 10.00 + 60 x 0.50 = 40.00 a month. The pack (45.00 for 50.00 of
    # credit) pays January in full (10.00 left), 10.00 of February (30.00 collected: the
    # customer ran out), nothing of March (40.00 collected).
    r = simulate(baseline, baseline, one_customer(60), months=3, start=START, prepaid=parse_prepaid("100%:starter"))
    assert r.prepaid is not None
    b = r.prepaid["baseline"]
    assert (b["customers"], b["packs_sold"], b["top_ups"], b["ran_out"]) == (1, 1, 0, 1)
    assert (b["sold"], b["credit"], b["consumed"], b["collected"]) == (D("45.00"), D("50.00"), D("50.00"), D("70.00"))
    # All 50.00 used: the pack earned its whole price; nothing deferred, nothing expired.
    assert (b["earned"], b["breakage"], b["deferred"], b["expired"]) == (D("45.00"), 0, 0, 0)
    assert r.totals["baseline"] == D("120.00")  # the bills are what they were, whoever pays them


def test_the_automatic_top_up_buys_again_below_the_threshold() -> None:
    baseline, _ = catalogs()
    # January leaves 10.00: at the threshold, no top-up. February: 10.00 paid, 30.00
    # collected, 0.00 left < 10.00: a top-up (45.00 for 50.00). March: 40.00 from it, 10.00 left.
    r = simulate(baseline, baseline, one_customer(60), months=3, start=START,
                 prepaid=parse_prepaid("1:starter:top-up"))
    assert r.prepaid is not None
    b = r.prepaid["baseline"]
    assert (b["packs_sold"], b["top_ups"], b["ran_out"]) == (2, 1, 1)
    assert (b["sold"], b["consumed"], b["collected"]) == (D("90.00"), D("90.00"), D("30.00"))
    # earned: 45.00 (the first pack used up) + 40 x 45 / 50 = 36.00; 9.00 still deferred.
    assert (b["earned"], b["deferred"]) == (D("81.00"), D("9.00"))


def test_a_pack_ending_with_the_period_pays_its_close_then_expires() -> None:
    baseline, _ = catalogs()
    # rollover none: the grant ends with January's period (2027-02-01), pays January's 40.00
    # drawn then, and its 10.00 left expires: breakage 45.00 - 36.00 earned = 9.00.
    r = simulate(baseline, baseline, one_customer(60), months=2, start=START, prepaid=parse_prepaid("100%:monthly"))
    assert r.prepaid is not None
    b = r.prepaid["baseline"]
    assert (b["consumed"], b["expired"], b["earned"], b["breakage"], b["deferred"]) == (
        D("40.00"), D("10.00"), D("36.00"), D("9.00"), 0)
    assert (b["collected"], b["ran_out"]) == (D("40.00"), 1)


def test_progressive_thresholds_issue_invoices_and_leave_the_period_total_unchanged() -> None:
    baseline, draft = catalogs()
    # 120 calls in January (31 days), arriving evenly: accrued = 100 x 0.50 + 20 x 0.25 = 55.00,
    # level 2 (20.00, 50.00). Day 11: 120 x 11 / 31 = 42.6 -> 43 calls, 21.50: invoice 1.
    # Day 26: 100.6 -> 101 calls, 50.25: invoice 2 bills 28.75. The close bills 55.00 and
    # deducts 50.25. Period: 10.00 + 21.50 + 28.75 + 4.75 = 65.00 = its quote.
    r = simulate(baseline, draft, one_customer(120), months=1, start=START)
    assert r.progressive is not None
    assert r.progressive["baseline"]["invoices"] == 0
    d = r.progressive["draft"]
    assert (d["customers"], d["periods"], d["invoices"]) == (1, 1, 2)
    assert (d["billed_early"], d["period_total"], d["quote_total"], d["unchanged"]) == (
        D("50.25"), D("65.00"), D("65.00"), True)
    assert r.totals["draft"] == r.totals["baseline"] == D("65.00")
    assert r.to_dict()["progressive"]["draft"]["billed_early"] == "50.25"


def test_below_the_first_threshold_no_invoice() -> None:
    baseline, draft = catalogs()
    r = simulate(baseline, draft, one_customer(39), months=1, start=START)  # 19.50 < 20.00
    assert r.progressive is not None and r.progressive["draft"]["invoices"] == 0


@pytest.mark.parametrize(("text", "message"), [
    ("30%", "is not SHARE:PACK"),
    ("0%:starter", "more than 0%"),
    ("abc:starter", "is not a share"),
    ("30%:starter:twice", "is not SHARE:PACK"),
])
def test_bad_prepaid_flags_name_the_flag(text: str, message: str) -> None:
    with pytest.raises(SimulationError, match=message) as e:
        parse_prepaid(text)
    assert str(e.value).startswith("--prepaid:")


def test_an_unknown_pack_is_refused() -> None:
    baseline, draft = catalogs()
    with pytest.raises(SimulationError, match="prepaid.pack: 'gold' is not a credit pack of the baseline"):
        simulate(baseline, draft, one_customer(1), months=1, start=START, prepaid=parse_prepaid("1:gold"))


# The same plan selling tokens: each API call burns 10 tokens; a small pack is 1000 for 3.00.
TOKENS = CATALOG[: CATALOG.index("credits:\n")] + """credits:
  unit: tokens
  rate: "0.001"
  burn: {api_calls: "10"}
  packs:
    small: {name: Small, price: "3.00", credit: "1000", rollover: all}
  top_up: {threshold: "200", pack: small}
"""


def test_a_token_pack_is_burned_by_usage_and_owes_what_it_could_not_burn() -> None:
    tokens = load_catalog_text(TOKENS, "tokens.yaml")
    dearer = load_catalog_text(TOKENS.replace('price: "3.00"', 'price: "4.00"'), "dearer.yaml")
    # 60 calls a month burn 600 tokens (the bills, 40.00 a month, are the plan's prices either
    # way: the revenue does not change). January: 400 left. February: 400 burned, 200 owed (ran
    # out). March: the 800 asked are owed. The pack used up earned its price; nothing is
    # collected from the wallet (tokens never pay a bill). The draft sells the pack for 4.00.
    r = simulate(tokens, dearer, one_customer(60), months=3, start=START, prepaid=parse_prepaid("100%:small"))
    assert r.prepaid is not None
    assert r.prepaid["baseline"] == {
        "customers": 1, "packs_sold": 1, "top_ups": 0, "sold": D("3.00"), "credit": D("1000"),
        "consumed": D("1000"), "earned": D("3.00"), "expired": 0, "breakage": 0, "deferred": D("0.00"),
        "collected": 0, "ran_out": 1, "unit": "tokens", "unburned": D("800")}
    assert (r.prepaid["draft"]["sold"], r.prepaid["draft"]["earned"]) == (D("4.00"), D("4.00"))
    assert r.totals["baseline"] == r.totals["draft"] == D("120.00")


def test_a_token_top_up_pays_what_usage_owed_first() -> None:
    tokens = load_catalog_text(TOKENS, "tokens.yaml")
    # February: 400 burned and 0 left, below the 200 threshold: a second pack (1000) is bought and
    # pays the 200 owed at once (800 left). March: 600 burned, 200 left, at the threshold: no
    # top-up. Earned: 3.00 for the first pack, 800 x 3.00 / 1000 = 2.40 for the second;
    # 0.60 deferred for its 200 tokens.
    r = simulate(tokens, tokens, one_customer(60), months=3, start=START, prepaid=parse_prepaid("100%:small:top-up"))
    assert r.prepaid is not None
    b = r.prepaid["baseline"]
    assert (b["packs_sold"], b["top_ups"], b["sold"], b["credit"], b["consumed"]) == (
        2, 1, D("6.00"), D("2000"), D("1800"))
    assert (b["earned"], b["deferred"], b["unburned"], b["ran_out"], b["collected"]) == (
        D("5.40"), D("0.60"), 0, 0, 0)


def test_a_top_up_the_catalog_does_not_declare_is_refused() -> None:
    plain = load_catalog_text(CATALOG.replace('  top_up: {threshold: "10.00", pack: starter}\n', ""), "p.yaml")
    with pytest.raises(SimulationError, match="prepaid.top_up: the draft catalog 'packs-test' declares no"):
        simulate(catalogs()[0], plain, one_customer(1), months=1, start=START,
                 prepaid=parse_prepaid("1:starter:top-up"))
