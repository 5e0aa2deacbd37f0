"""What the HTTP layer needs from the running engine, assembled by `engine.system`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine.access import AccessService
from engine.api.keys import KeyVerifier
from engine.api.operations import ApiOperations
from engine.api.payment_parts import PaymentParts
from engine.clock import Clock, TestClock
from engine.pricing.quoting import PromotionSource
from engine.store import Database


@dataclass(frozen=True)
class ApiReaders:
    """What routes read of a subsystem their module does not import, bound in engine.system
    (engine/system/api_readers.py)."""

    # (session, customer id) -> the customer; raises a NotFound naming customer_id (a 404).
    customer: Callable[[Session, str], dict[str, Any]]
    # (session, customer id) -> where dunning stands (active when nothing is recorded).
    dunning_state: Callable[[Session, str], str]


@dataclass
class ApiContext:
    db: Database
    clock: Clock
    access: AccessService
    keys: KeyVerifier
    read: ApiReaders
    # The operator operations the routes call (engine/system/api_operations.py).
    operations: ApiOperations
    # Set only when the engine runs on a test clock: enables POST /v1/clock/advance.
    test_clock: TestClock | None = None
    # Runs every piece of work due up to a time (period closes, retries, scheduled rules).
    advance_to: Callable[[datetime], dict[str, Any]] | None = None
    # Called after a request committed events, so the in-process bus dispatches them now.
    after_commit: Callable[[], None] = lambda: None
    promotions: PromotionSource | None = None
    metrics_text: Callable[[], str] = lambda: ""
    max_body_bytes: int = 1_000_000
    # BILLING_WEBHOOKS_ALLOW_PRIVATE: a customer's notification webhook may point at a private
    # or loopback address (tests, local setups); refused otherwise.
    webhooks_allow_private: bool = False
    # FastAPI's OpenTelemetry spans and metrics (BILLING_OTEL): off unless asked for.
    otel: bool = False
    # Further routers to mount (e.g. the payment provider's webhooks, authenticated by signature).
    routers: list[Any] = field(default_factory=list)
    # The system's payment service and chart of accounts (engine.api.payment_parts).
    payments: PaymentParts = field(default_factory=PaymentParts)
    extra: dict[str, Any] = field(default_factory=dict)
