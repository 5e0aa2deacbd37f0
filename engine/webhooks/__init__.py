"""Event webhooks for the product: operators register endpoints (URL, event type patterns,
description); every engine event that matches is delivered as a signed POST following
Standard Webhooks, at least once, in order per customer, from the outbox, with backoff over
more than 24 hours and then a dead letter; each endpoint keeps a delivery log, and a delivery
or a time range can be replayed. See docs/webhooks.md.

    endpoint = create_endpoint(session, "https://product.example/hooks", ["invoice.*"], now=..., policy=...)
    Subscription("webhooks", pattern, fan_out) for pattern in EVENT_TYPES  # engine/system
    Sender(db, clock, policy).run(stop)                                     # a worker thread
"""

from engine.webhooks.delivery import SCHEDULE, Report, Sender
from engine.webhooks.endpoints import (
    Endpoint,
    NotFound,
    create_endpoint,
    get_endpoint,
    list_endpoints,
    new_secret,
    rotate_secret,
    update_endpoint,
)
from engine.webhooks.fanout import CONSUMER, fan_out, payload
from engine.webhooks.log import STATUSES, get_delivery, list_deliveries, replay_delivery, replay_range
from engine.webhooks.patterns import EVENT_TYPES, PATTERNS, PatternError, check_patterns, matches
from engine.webhooks.signing import headers
from engine.webhooks.urls import UrlError, UrlPolicy

__all__ = [
    "CONSUMER",
    "EVENT_TYPES",
    "PATTERNS",
    "SCHEDULE",
    "STATUSES",
    "Endpoint",
    "NotFound",
    "PatternError",
    "Report",
    "Sender",
    "UrlError",
    "UrlPolicy",
    "check_patterns",
    "create_endpoint",
    "fan_out",
    "get_delivery",
    "get_endpoint",
    "headers",
    "list_deliveries",
    "list_endpoints",
    "matches",
    "new_secret",
    "payload",
    "replay_delivery",
    "replay_range",
    "rotate_secret",
    "update_endpoint",
]
