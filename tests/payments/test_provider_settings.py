"""Choosing the payment provider by settings (BILLING_PSP_PROVIDER)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from engine import payments
from engine.clock import TestClock
from engine.config import Settings
from engine.payments import collection
from engine.system import configure_payments

CLOCK = TestClock(datetime(2026, 11, 1, tzinfo=UTC))


@pytest.fixture(autouse=True)
def keep_service() -> Iterator[None]:
    before = collection._service
    yield
    collection._service = before


def test_stripe_is_chosen_with_its_key_and_secret() -> None:
    settings = Settings(
        psp_provider="stripe",
        stripe_api_key="sk_test_local",
        stripe_webhook_secret="whsec_local",
        stripe_api_base="http://127.0.0.1:9",
    )
    assert configure_payments(settings, CLOCK) is True
    service = payments.get_service()
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
    before = collection._service
    with pytest.raises(ValueError, match=message):
        configure_payments(settings, CLOCK)
    assert collection._service is before  # nothing half-configured


def test_the_sandbox_stays_the_default_and_no_url_means_no_collection() -> None:
    assert configure_payments(Settings(psp_url=""), CLOCK) is False
    assert configure_payments(Settings(psp_url="http://127.0.0.1:9", psp_webhook_secret="whsec_local"), CLOCK) is True
    assert payments.get_service().default_provider == "sandbox"
