"""Which events the product can receive, and the patterns an endpoint subscribes with.

The deliverable events are the engine's business events (FORMATS §3 and the other records
the engine publishes for the product); the product's own usage events and the engine's
internal requests (a rule's charge, a payment retry) are not sent back.

A pattern is an event type, `prefix.*` (any last word), or `*` (every deliverable event).
A pattern that matches no deliverable event is refused: a typo would otherwise subscribe
to nothing, silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from engine.events import topic_matches

EVENT_TYPES: tuple[str, ...] = (
    # FORMATS §3
    "customer.created", "subscription.created", "subscription.trial_will_end", "subscription.renewed",
    "subscription.changed", "subscription.canceled", "invoice.finalized", "invoice.paid",
    "invoice.payment_failed", "invoice.overdue", "payment.succeeded", "payment.failed", "payment.refunded",
    "reconciliation.mismatch", "usage.threshold_reached", "access.denied", "dunning.state_changed",
    "notification.sent", "notification.failed",
    # the engine's other records for the product
    "customer.updated", "credit_note.issued", "invoice.credited", "invoice.progressive", "invoice.voided", "invoice.uncollectible",
    "payment_method.attached", "payment_method.detached",
    # wallets and budgets (issue 20, docs/credits.md)
    "credits.balance_low", "credits.exhausted", "spend.threshold_reached",
)


# Every pattern an endpoint can give: `*`, each `prefix.*`, each type (the HTTP schema's enum).
PATTERNS: tuple[str, ...] = ("*", *dict.fromkeys(t.rsplit(".", 1)[0] + ".*" for t in EVENT_TYPES), *EVENT_TYPES)


class PatternError(ValueError):
    """An event type pattern no deliverable event matches; `index` is its place in the list."""

    def __init__(self, index: int, pattern: str) -> None:
        super().__init__(f"event_types[{index}]: {pattern!r} matches no event type the engine delivers "
                         f"(an event type such as invoice.paid, a prefix such as invoice.*, or *)")
        self.index = index
        self.pattern = pattern


def _topic(pattern: str) -> str:
    return "#" if pattern == "*" else pattern


def matches(patterns: Iterable[str], event_type: str) -> bool:
    return any(topic_matches(_topic(p), event_type) for p in patterns)


def check_patterns(patterns: Sequence[str]) -> list[str]:
    """The patterns, each known to match at least one deliverable event; at least one."""
    if not patterns:
        raise PatternError(0, "")
    for index, pattern in enumerate(patterns):
        words = pattern.split(".")
        if pattern != "*" and ("#" in pattern or any(not w for w in words) or "*" in words[:-1]):
            raise PatternError(index, pattern)
        if not any(matches([pattern], t) for t in EVENT_TYPES):
            raise PatternError(index, pattern)
    return list(dict.fromkeys(patterns))
