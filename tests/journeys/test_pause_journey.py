"""Pausing and resuming a subscription over HTTP on the shared test clock (docs/sales.md,
"Pausing"), in both shapes, followed by the ledger check: the period paid for runs to its end
with the plan's features, nothing is invoiced while paused and the plan grants nothing, and a
resume starts a period from that day, invoiced at once."""

from __future__ import annotations

from datetime import date, datetime

from tests.journeys.harness import Engine, money
from tests.journeys.test_journeys import CARD_OK, card


def _day(text: str) -> date:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).date()


def test_a_paused_subscription_is_not_invoiced_and_resumes_with_a_new_period(engine: Engine) -> None:
    cid = engine.customer("paused")
    sub = engine.subscribe(cid, "pro", payment_method=card(CARD_OK))
    sid, paid_until = sub["id"], sub["current_period"]["end"]
    engine.advance("1h")
    assert engine.check(cid, "sso")["allowed"] is True

    asked = engine.post(f"/v1/subscriptions/{sid}/pause")
    assert (asked["status"], asked["pause_at_period_end"]) == ("active", True)
    engine.usage(cid, 5)
    assert engine.check(cid, "sso")["allowed"] is True  # the period paid for runs to its end

    engine.advance("32d")  # past the period end: the pause takes effect there
    [paused] = engine.subscriptions(cid)
    assert paused["status"] == "paused" and _day(paused["paused_at"]) == date.fromisoformat(paid_until)
    assert engine.check(cid, "sso")["allowed"] is False  # a paused plan grants nothing
    invoices = engine.invoices(cid)
    assert len(invoices) == 2  # the start, and the close of the period paid for
    for inv in invoices:  # nothing after the pause took effect, and no period paid in advance
        assert all(x["period"]["end"][:10] <= paid_until for x in inv["lines"] if x["period"]), inv["lines"]

    engine.advance("40d")  # a whole month and more while paused: no invoice
    assert len(engine.invoices(cid)) == 2
    engine.post(f"/v1/subscriptions/{sid}/change", {"plan": "enterprise"}, status=409)  # resume first

    today = _day(engine.now())
    resumed = engine.post(f"/v1/subscriptions/{sid}/resume")
    assert resumed["status"] == "active" and resumed["paused_at"] is None
    assert resumed["current_period"]["start"] == today.isoformat()
    engine.advance("1h")
    newest = engine.invoices(cid)
    assert len(newest) == 3
    [opened] = [inv for inv in newest if inv["id"] == resumed["document"]["id"]]
    ahead = [x for x in opened["lines"] if x["timing"] == "in_advance"]
    assert ahead and all(x["period"]["start"][:10] == today.isoformat() for x in ahead)  # the new period, ahead
    assert money(opened["total"]) > 0
    assert engine.check(cid, "sso")["allowed"] is True
    engine.post(f"/v1/subscriptions/{sid}/resume", status=409)  # not paused any more


def test_a_pause_withdrawn_before_the_period_ends_changes_nothing(engine: Engine) -> None:
    cid = engine.customer("unpaused")
    sid = engine.subscribe(cid, "pro", payment_method=card(CARD_OK))["id"]
    engine.post(f"/v1/subscriptions/{sid}/pause")
    withdrawn = engine.post(f"/v1/subscriptions/{sid}/resume")
    assert (withdrawn["status"], withdrawn["pause_at_period_end"]) == ("active", False)
    engine.advance("32d")
    [sub] = engine.subscriptions(cid)
    assert sub["status"] == "active" and len(engine.invoices(cid)) == 2  # renewed as usual
