"""Event types published for the record, that no handler of the engine consumes.

Every event type a subsystem or a shipped rule publishes is either consumed (a row of
engine/system/subscriptions.py other than automation's catch-all, or the `on:` of a shipped
rule) or listed here with the reason nothing needs to act on it.
tests/system/test_subscriptions.py holds the code to that, so an event nobody reads (a retry
request, say) cannot be shipped silently.
"""

from __future__ import annotations

INFORMATIONAL: dict[str, str] = {
    "catalog.published": "audit record; every process reads catalog versions from the database",
    "rules.published": "audit record; every process polls the published versions "
                       "(BILLING_RULES_REFRESH_SECONDS), automation also reloads at once on it",
    "payment_method.attached": "record for the product and the decision log; attaching collects the "
    "customer's failed invoices in the same call",
    "payment_method.detached": "record for the product and the decision log",
    "payment.failed": "the attempt's record (decline code, retryable); dunning reacts to "
                      "invoice.payment_failed, published with it",
    "payment.refunded": "record for the product; the refund and its credit note are written in the call",
    "notification.sent": "record of a delivered message (the decision log and console read the notifications table)",
    "notification.failed": "record for alerting; messaging marked the notification failed itself",
    "reconciliation.mismatch": "record for the operator; the report lists the mismatch",
}
