"""Sample data for previews (`billing template preview NAME`). Each entry also documents
the variables a template expects; the tests render every template with it."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from typing import Any

_INVOICE = {
    "id": "inv_0001",
    "number": "INV-2026-0042",
    "total": Decimal("1234.50"),
    "currency": "EUR",
    "due_date": date(2026, 12, 14),
    "url": "https://billing.example.com/invoices/inv_0001",
}

SAMPLES: dict[str, dict[str, Any]] = {
    # A customer who pays by bank transfer (`bank_transfer` is None for one paying by card).
    "invoice_issued": {
        "invoice": _INVOICE | {"payment_reference": "RF73INV20260042", "amount_due": Decimal("1234.50")},
        "bank_transfer": {"beneficiary": "Example Billing GmbH", "iban": "DE89370400440532013000",
                          "reference": "RF73INV20260042"},
        "seller": {"name": "Example Billing GmbH", "iban": "DE89370400440532013000"},
    },
    "payment_failed": {
        "invoice": _INVOICE,
        "payment": {"attempt": 1, "reason": "card_declined", "next_attempt": date(2026, 12, 3)},
    },
    "payment_succeeded": {
        "invoice": _INVOICE,
        # The amount of this payment, and what remains due after it.
        "payment": {"amount": Decimal("1000.00"), "currency": "EUR", "remaining": Decimal("234.50"),
                    "paid_in_full": False},
    },
    "payment_method_needed": {
        "invoice": _INVOICE,
        "payment": {"attempt": 1, "reason": "generic_decline"},
    },
    "payment_retry_scheduled": {
        "invoice": _INVOICE,
        "payment": {"attempt": 2, "next_attempt": date(2026, 12, 6)},
    },
    "trial_ending": {
        "subscription": {
            "id": "sub_0001",
            "plan": "pro",
            "plan_name": "Pro",
            "trial_end": date(2026, 12, 1),
            "url": "https://billing.example.com/subscription",
        }
    },
    "quota_warning": {
        "quota": {"feature": "api", "feature_name": "API calls", "used": 80000,
                  "limit": 100000, "percent": 80},
        "offer": {"plan": "enterprise", "plan_name": "Enterprise",
                  "url": "https://billing.example.com/upgrade?plan=enterprise"},
    },
    "quota_reached": {
        "quota": {"feature": "api", "feature_name": "API calls", "used": 100000,
                  "limit": 100000, "percent": 100},
        "offer": {"plan": "enterprise", "plan_name": "Enterprise",
                  "url": "https://billing.example.com/upgrade?plan=enterprise"},
    },
    "upgrade_offer": {
        "offer": {"plan": "pro", "plan_name": "Pro", "feature_name": "Single sign-on",
                  "coupon": "WELCOME20", "url": "https://billing.example.com/upgrade?plan=pro"},
    },
    "account_warning": {
        "invoice": _INVOICE,
        "account": {"state": "warning", "suspend_on": date(2026, 12, 28)},
    },
    "account_suspended": {"invoice": _INVOICE, "account": {"state": "suspended"}},
    "subscription_cancelled": {
        "subscription": {"id": "sub_0001", "plan": "pro", "plan_name": "Pro",
                         "ended_at": date(2026, 12, 31), "reason": "unpaid"},
    },
    # invoice.progressive (engine/sales/progressive.py): an interim invoice at a usage threshold.
    "invoice_progressive": {
        "invoice": _INVOICE,
        "progressive": {"threshold": Decimal("500.00"), "accrued": Decimal("512.40"), "level": 2},
    },
    # credits.expired (engine/credits): what was left of a grant when it expired.
    "credits_expired": {"credits": {"amount": Decimal("29.79"), "unit": "USD", "grant_id": "grt_0001"}},
    # credits.balance_low / credits.exhausted (engine/credits/balance.py): the wallet's available balance.
    "credits_balance_low": {"credits": {"amount": Decimal("4.20"), "unit": "USD", "threshold": Decimal("10.00")}},
    "credits_exhausted": {"credits": {"amount": Decimal("0.00"), "unit": "USD", "threshold": None}},
    # spend.threshold_reached (engine/sales/budget.py): a budget alert.
    "spend_threshold": {"budget": {"threshold": 80, "amount": Decimal("200.00"), "spent": Decimal("161.40"),
                                   "currency": "USD", "hard_stop": True, "period_start": "2026-11-01",
                                   "period_end": "2026-12-01"}},
    "digest": {
        "items": [
            {"template": "quota_warning", "summary": "You have used 80% of your API calls",
             "time": "2026-11-23T10:00:00Z"},
            {"template": "quota_warning", "summary": "You have used 90% of your API calls",
             "time": "2026-11-23T14:00:00Z"},
        ]
    },
}


def sample_data(name: str) -> dict[str, Any]:
    try:
        return copy.deepcopy(SAMPLES[name])
    except KeyError:
        raise KeyError(f"no sample data for template {name!r}; "
                       f"samples exist for {', '.join(sorted(SAMPLES))}") from None


def sample_customer(locale: str = "en") -> dict[str, Any]:
    return {"id": "cus_demo", "name": "Ada Lovelace" if locale.startswith("en") else "Ada Müller",
            "email": "ada@example.com", "phone": "+4915112345678", "locale": locale,
            "timezone": "Europe/Berlin"}
