"""A Python client for the product (issue 19): typed calls for the engine's HTTP surface
(events with batching and retries that reuse the event ids, access checks, quotes, customers,
subscriptions, payment methods, invoices) on httpx, and `AccessCache`, access decisions held
locally with a declared fail-open / fail-closed answer per feature. It imports nothing else
of the engine: a product installs it and talks HTTP (docs/client.md)."""

from engine.client.cache import AccessCache, FailMode
from engine.client.client import BillingClient
from engine.client.errors import BillingError, EngineUnavailable
from engine.client.models import (
    AccessDecision,
    Customer,
    Event,
    IngestReport,
    Invoice,
    PaymentMethod,
    Quote,
    Subscription,
)
from engine.client.transport import RetryPolicy

__all__ = [
    "AccessCache",
    "AccessDecision",
    "BillingClient",
    "BillingError",
    "Customer",
    "EngineUnavailable",
    "Event",
    "FailMode",
    "IngestReport",
    "Invoice",
    "PaymentMethod",
    "Quote",
    "RetryPolicy",
    "Subscription",
]
