"""Choosing the payment provider by settings (BILLING_PSP_PROVIDER)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine import payments
from engine.clock import TestClock
from engine.config import Settings
from engine.system import payment_service

CLOCK = TestClock(datetime(2026, 11, 1, tzinfo=UTC))


def test_stripe_is_chosen_with_its_key_and_secret() -> None:
    settings = Settings(
        psp_provider="stripe",
        stripe_api_key="sk_test_local",
        stripe_webhook_secret="whsec_local",
        stripe_api_base="http://127.0.0.1:9",
    )
    service = payment_service(settings, CLOCK)
    assert service is not None
    assert service.default_provider == "stripe"
    assert isinstance(service.adapter("stripe"), payments.StripeAdapter)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (Settings(psp_provider="stripe"), "needs BILLING_STRIPE_API_KEY"),
        (Settings(psp_provider="stripe", stripe_api_key="sk_test_x"), "BILLING_STRIPE_WEBHOOK_SECRET"),
        (Settings(psp_provider="paypal", psp_url="http://x"), "'paypal' is not sandbox or stripe"),
    ],
)
def test_a_provider_setting_that_cannot_work_is_refused(settings: Settings, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        payment_service(settings, CLOCK)


def test_the_sandbox_stays_the_default_and_no_url_means_no_collection() -> None:
    assert payment_service(Settings(psp_url=""), CLOCK) is None
    service = payment_service(Settings(psp_url="http://127.0.0.1:9", psp_webhook_secret="whsec_local"), CLOCK)
    assert service is not None and service.default_provider == "sandbox"
    # Payments run on the system's clock; the adapter checks webhook freshness on the wall clock.
    assert service.clock is CLOCK
    assert service.adapter("sandbox").clock is not CLOCK  # type: ignore[attr-defined]
