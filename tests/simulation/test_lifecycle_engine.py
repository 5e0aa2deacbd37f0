"""The lifecycle what-if runs the cohort through the engine itself (billing runs, card
payments, the dunning and notification rules, the scheduler on a test clock) in a throwaway
database; every figure below is worked out by hand from catalogs/saas.yaml and rules/."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from engine.catalog import load_catalog, load_catalog_text
from engine.clock import TestClock
from engine.console.yaml_edit import toggle_rule
from engine.payments import ChargeRequest
from engine.simulation import CardModel, Cohort, CohortError, SimCustomer, SimulationError, cohort_from_csv
from engine.system import DecliningProvider, lifecycle_on_engine, lifecycle_system

RULES = {p.stem: p.read_text() for p in sorted(Path("rules").glob("*.yaml"))}
SAAS = Path("catalogs/saas.yaml").read_text()
START = date(2027, 1, 1)


def test_every_first_attempt_declines_and_the_retry_pays() -> None:
    baseline = load_catalog("catalogs/saas.yaml")
    draft = load_catalog_text(
        SAAS.replace('{up_to: 100000, unit_amount: "0.002"}', '{up_to: 100000, unit_amount: "0.003"}')
    )
    csv = "customer_id,plan,quantity,segment,api_calls\na,pro,3,smb,15000\nb,free,,smb,800\nc,enterprise,10,ent,0\n"
    seen: list[float] = []
    r = lifecycle_on_engine(
        lifecycle_system,
        baseline,
        draft,
        cohort_from_csv(csv, [baseline]),
        rulesets=RULES,
        months=2,
        start=START,
        cards=CardModel(failure_rate=1, recovery_rate=1),
        progress=lambda f, _t: seen.append(f),
    )
    assert seen == sorted(seen) and len(seen) > 10 and seen[-1] == 1.0  # moves with the clock, to the end
    # Jan 1: a 79.00 (base 49 + 3 seats at 10), b 0.00 (free), c 1,750.00 (1,500 + 10 seats at 25).
    # Feb 1: a 79.00 + January's 15,000 calls (5,000 in tier 2: 10.00, draft 15.00), b 0.00,
    # c 1,750.00 + the 250.00 true-up of January to its 2,000.00 minimum.
    jan, feb = (Decimal("1829.00"), Decimal("2089.00"))
    assert [(m["side"], m["invoices"], m["invoiced"]) for m in r.by_month] == [
        ("baseline", 3, jan),
        ("baseline", 3, feb),
        ("draft", 3, jan),
        ("draft", 3, feb + 5),
    ]
    for side, total in (("baseline", jan + feb), ("draft", jan + feb + 5)):
        t = r.totals[side]
        # The four invoices with something to pay decline once; dunning's retry a day later pays.
        assert (t["collected"], t["outstanding"], t["failed_payments"], t["payments"]) == (total, 0, 4, 4)
        assert (t["warned"], t["suspended"], t["cancelled"]) == (0, 0, 0)
        assert r.notifications[side] == {
            "invoice_issued (email)": 4,  # b's free-plan 0.00 invoices are not mailed
            "payment_failed (email)": 4,
            "payment_failed (in_app)": 4,
            "payment_retry_scheduled (email)": 4,
            "payment_succeeded (email)": 4,
        }
        assert r.dunning[side] == {"active": 3}


def test_a_card_that_always_declines_runs_the_whole_dunning_and_a_draft_ruleset_changes_it() -> None:
    saas = load_catalog("catalogs/saas.yaml")
    cohort = cohort_from_csv("customer_id,plan,quantity,api_calls\na,pro,1,0\n", [saas])
    no_suspension = toggle_rule(RULES["dunning"], "suspend-day-14", False)
    r = lifecycle_on_engine(
        lifecycle_system,
        saas,
        saas,
        cohort,
        rulesets=RULES,
        draft_rulesets={"dunning": no_suspension},
        months=1,
        start=START,
        cards=CardModel(failure_rate=1, recovery_rate=0),
    )
    base, draft = r.totals["baseline"], r.totals["draft"]
    # One invoice of 59.00 (49 + one seat), tried on Jan 1, 2, 4, 6 and 8 (retries after 1, 2,
    # 2, 2 days), warned on day 7, suspended on day 14, cancelled and written off on day 30
    # (Jan 31): the unused last day, 1.90, is credited against it, the other 57.10 written off.
    assert (base["invoices"], base["invoiced"], base["collected"]) == (1, Decimal("59.00"), Decimal("0.00"))
    assert (base["failed_payments"], base["payments"], base["written_off"]) == (5, 0, Decimal("57.10"))
    assert (base["warned"], base["suspended"], base["cancelled"]) == (1, 1, 1)
    assert r.notifications["baseline"] == {
        "account_suspended (email)": 1,
        "account_suspended (in_app)": 1,
        "account_warning (email)": 1,
        "account_warning (in_app)": 1,
        "invoice_issued (email)": 1,
        "payment_failed (email)": 5,
        "payment_failed (in_app)": 5,
        "payment_retry_scheduled (email)": 4,
        "subscription_cancelled (email)": 1,
    }
    assert base["notifications"] == 20
    # The draft's dunning never suspends: the same declines, no suspension and its notices.
    assert (draft["failed_payments"], draft["warned"], draft["suspended"], draft["cancelled"]) == (5, 1, 0, 1)
    assert draft["notifications"] == 18
    assert "account_suspended (email)" not in r.notifications["draft"]
    assert r.dunning == {"baseline": {"cancelled": 1}, "draft": {"cancelled": 1}}


def test_bad_input_is_refused_before_anything_runs() -> None:
    saas = load_catalog("catalogs/saas.yaml")
    cohort = cohort_from_csv("customer_id,plan\na,pro\n", [saas])
    with pytest.raises(SimulationError, match="failure_rate: a share between 0 and 1"):
        lifecycle_on_engine(lifecycle_system, saas, saas, cohort, rulesets=RULES, start=START, cards=CardModel(failure_rate=2))
    with pytest.raises(SimulationError, match="months: between 1 and 24"):
        lifecycle_on_engine(lifecycle_system, saas, saas, cohort, rulesets=RULES, start=START, months=0)
    with pytest.raises(CohortError):
        lifecycle_on_engine(
            lifecycle_system, saas, saas, cohort_from_csv("customer_id,plan\n", [saas]), rulesets=RULES, start=START
        )
    with pytest.raises(SimulationError, match="plan 'pro' is not in the draft"):
        lifecycle_on_engine(lifecycle_system, saas, saas, cohort, rulesets=RULES, start=START, plan_map={"pro": "gold"})
    with pytest.raises(SimulationError, match="currency: the baseline is in USD, the draft in EUR"):
        lifecycle_on_engine(lifecycle_system, saas, load_catalog("catalogs/content.yaml"), cohort, rulesets=RULES, start=START)


def test_baseline_and_draft_meet_the_same_declines() -> None:
    """Draws are keyed by (customer, the customer's n-th invoice, attempt), not by the
    invoice ids each run makes up, so only the amounts differ between the two sides."""

    def charges(prefix: str) -> list[str]:
        provider = DecliningProvider(
            CardModel(failure_rate=0.3, recovery_rate=0.5), TestClock(datetime(2027, 1, 1, tzinfo=UTC))
        )
        out = []
        for c in range(200):
            for n in range(3):
                for attempt in (1, 2):
                    req = ChargeRequest(f"{prefix}_inv_{c}_{n}:{attempt}", Decimal(10), "USD", f"c{c}", "card", "tok")
                    out.append(provider.charge(req).state.value)
                    assert provider.charge(req).state.value == out[-1]  # idempotent per key
        return out

    a, b = charges("baseline"), charges("draft")
    assert a == b
    first = a[0::2]
    assert 0.2 < first.count("failed") / len(first) < 0.4


def test_customers_join_and_leave_in_their_months() -> None:
    saas = load_catalog("catalogs/saas.yaml")
    usage = {"api_calls": Decimal(20000)}
    cohort = Cohort(
        [
            SimCustomer("stays", "pro", Decimal(1), usage),
            SimCustomer("leaves", "pro", Decimal(1), usage, left=1),  # gone from February
            SimCustomer("joins", "pro", Decimal(2), usage, joined=1),  # from February
        ]
    )
    r = lifecycle_on_engine(
        lifecycle_system, saas, saas, cohort, rulesets=RULES, months=2, start=START, cards=CardModel(failure_rate=0)
    )
    # Jan 1: stays and leaves 59.00 each (49 + one seat). Feb 1: stays 59.00 + January's
    # 20,000 calls (10,000 in tier 2 at 0.002: 20.00); leaves' final invoice bills its January
    # calls, 20.00; joins 69.00 (49 + two seats).
    jan, feb = r.by_month[0], r.by_month[1]
    assert (jan["invoices"], jan["invoiced"]) == (2, Decimal("118.00"))
    assert (feb["invoices"], feb["invoiced"]) == (3, Decimal("168.00"))
    assert r.totals["baseline"]["collected"] == Decimal("286.00")
    assert r.notifications["baseline"] == {"invoice_issued (email)": 5, "payment_succeeded (email)": 5}


def test_a_cohort_over_the_budget_runs_as_a_sample_scaled_back_up() -> None:
    """90 identical Pro customers (3 seats: 79.00 on January 1st) with a budget that takes
    the least sample, 30 of them: each stands for 3, so the scaled figures are the whole cohort's exactly, the
    margin is 0 (no spread), and the result says it was a sample."""
    baseline = load_catalog("catalogs/saas.yaml")
    csv = "customer_id,plan,quantity,segment,api_calls\n" + "".join(f"c{i},pro,3,smb,0\n" for i in range(90))
    r = lifecycle_on_engine(
        lifecycle_system, baseline, baseline, cohort_from_csv(csv, [baseline]), rulesets=RULES, months=1,
        start=START, cards=CardModel(failure_rate=0), budget=0,
    )
    assert r.sampling["customers_run"] == 30 and r.sampling["customers"] == 90 and r.sampling["scaled"]
    assert "sample of 30 of the 90 customers" in r.sampling["sentence"]
    for side in ("baseline", "draft"):
        t = r.totals[side]
        assert (t["invoices"], t["invoiced"], t["collected"], t["payments"]) == (90, Decimal("7110.00"),
                                                                                 Decimal("7110.00"), 90)
        assert r.sampling["collected_margin_95"][side] == 0


def test_the_two_sides_in_their_own_processes_give_the_figures_of_one_process() -> None:
    """lifecycle_system can be handed to another process, so each side runs in its own (two
    cores); an engine that cannot (a closure) runs both sides here. The figures are the same,
    and the progress bar still rises to the end."""
    baseline = load_catalog("catalogs/saas.yaml")
    draft = load_catalog_text(
        SAAS.replace('{up_to: 100000, unit_amount: "0.002"}', '{up_to: 100000, unit_amount: "0.003"}')
    )
    csv = "customer_id,plan,quantity,segment,api_calls\na,pro,3,smb,15000\nb,free,,smb,800\n"
    seen: list[float] = []
    results = [
        lifecycle_on_engine(
            build, baseline, draft, cohort_from_csv(csv, [baseline]), rulesets=RULES, months=2, start=START,
            cards=CardModel(failure_rate=0.5, recovery_rate=0.5), progress=lambda f, _t: seen.append(f),
        ).to_dict()
        for build in (lifecycle_system, lambda *a: lifecycle_system(*a))
    ]
    assert results[0] == results[1]
    assert results[0]["totals"]["draft"]["invoiced"] != results[0]["totals"]["baseline"]["invoiced"]
    assert seen.count(1.0) >= 2 and seen[-1] == 1.0
