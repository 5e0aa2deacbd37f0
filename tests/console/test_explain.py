"""The sentences of "why" for cases the seeded customers do not reach."""

from __future__ import annotations

from engine.console.explain import charge_reason, denial_reason, line_reasons, message_reason


def test_a_quota_denial_says_the_limit_and_the_usage() -> None:
    inputs = {"plan": {"feature": "api", "reason": "quota_exceeded", "plan": "free", "limit": "1000", "used": "1200"}}
    assert denial_reason("api", inputs, None, None) == (
        "Access to api was denied: the quota would be exceeded and the plan blocks overage: "
        "used 1,200 of a limit of 1,000 (plan free).")


def test_a_rule_denial_says_the_decisions_own_reason() -> None:
    # The plan would allow it (no reason in its inputs): the reason is the decision's.
    inputs = {"plan": {"feature": "sso", "allowed": True, "plan": "pro"}}
    assert denial_reason("sso", inputs, "access/suspended-read-only", "suspended", "payment_overdue") == (
        "Access to sso was denied by access rule access/suspended-read-only: the account is suspended by "
        "dunning (a payment is overdue); the dunning state is suspended.")
    assert denial_reason("sso", inputs, "access/x", None, "a reason of the rule's own") == (
        "Access to sso was denied by access rule access/x: a reason of the rule's own.")


def test_a_proration_line_and_a_reverse_charge() -> None:
    invoice = {"currency": "EUR", "discounts": [], "reverse_charge": True, "tax_rate": "0"}
    line = {"name": "Seats", "model": "per_unit", "kind": "proration", "quantity": "2", "amount": "12.50",
            "discount": "0", "tax": "0", "tiers": []}
    assert line_reasons(invoice, line, lambda _r, _w: None) == [
        "Seats: 12.50 EUR for part of the period (a plan or quantity change, by days).",
        "No tax: the customer is a business with a VAT id (reverse charge)."]


def test_a_delivery_and_a_paid_invoice() -> None:
    sent = {"outcome": "sent", "subject": "trial_ending", "reason": "trial_ending by in_app", "rule": "n/t"}
    assert message_reason(sent, lambda _r, _w: None) == "trial_ending was sent as in-app message."
    paid = {"outcome": "paid", "reason": "collected 63.20 USD, attempt 1"}
    assert charge_reason(paid, "INV-2026-000004") == "Invoice INV-2026-000004: collected 63.20 USD, attempt 1."
