"""`AccessCache`: access decisions kept in the product's own process, so most checks cost no
call, with a declared answer per feature for when the engine cannot be reached.

A decision is kept `ttl` seconds. It is dropped sooner when the engine says something changed
for that customer: pass each (verified) event the engine's webhooks deliver to `on_event`. Or
poll: `refresh()` asks again, in one call, every question held (`start_polling` runs it on a
thread). When the engine is unreachable, a decision not older than `stale_for` is still used
(`source="stale"`); past that, the feature's policy answers (`source="policy"`): "open" lets
the customer in (an API the product would rather serve than refuse), "closed" keeps them out
(a paid feature). Unnamed features take `default`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from engine.client.errors import EngineUnavailable
from engine.client.models import AccessDecision
from engine.client.resources import Access

FailMode = Literal["open", "closed"]
# The engine events after which a customer's decisions may differ (README "How fresh is a
# decision?"): usage, subscriptions, the customer, payments and dunning.
CHANGES = ("usage.", "subscription.", "customer.", "invoice.paid", "payment.succeeded", "dunning.")
Key = tuple[str, str, Decimal]


@dataclass
class _Held:
    decision: AccessDecision
    at: float


class AccessCache:
    def __init__(self, access: Access, *, ttl: float = 30.0, stale_for: float = 300.0,
                 policies: Mapping[str, FailMode] | None = None, default: FailMode = "closed",
                 clock: Callable[[], float] = time.monotonic) -> None:
        for feature, mode in {**(policies or {}), "(default)": default}.items():
            if mode not in ("open", "closed"):
                raise ValueError(f"policies[{feature}]: 'open' or 'closed', not {mode!r}")
        self.access = access
        self.ttl, self.stale_for = ttl, stale_for
        self.policies = dict(policies or {})
        self.default = default
        self.clock = clock
        self._held: dict[Key, _Held] = {}
        self._lock = threading.Lock()

    def allowed(self, customer_id: str, feature: str, quantity: int | Decimal = 1) -> bool:
        return self.check(customer_id, feature, quantity).allowed

    def check(self, customer_id: str, feature: str, quantity: int | Decimal = 1) -> AccessDecision:
        key = (customer_id, feature, Decimal(quantity))
        with self._lock:
            held = self._held.get(key)
        now = self.clock()
        if held is not None and now - held.at < self.ttl:
            return held.decision.model_copy(update={"source": "cache"})
        try:
            decision = self.access.check(customer_id, feature, quantity)
        except EngineUnavailable:
            return self._unreachable(held, now, feature)
        with self._lock:
            self._held[key] = _Held(decision, now)
        return decision

    def policy(self, feature: str) -> FailMode:
        return self.policies.get(feature, self.default)

    def _unreachable(self, held: _Held | None, now: float, feature: str) -> AccessDecision:
        if held is not None and now - held.at < self.stale_for:
            return held.decision.model_copy(update={"source": "stale"})
        return AccessDecision(allowed=self.policy(feature) == "open", feature=feature, reason="engine_unreachable",
                              source="policy")

    def on_event(self, event: Mapping[str, Any]) -> None:
        """An engine event (FORMATS §3 envelope, from a verified webhook): forget the decisions
        of the customer it concerns (every customer's when it names none or a batch)."""
        kind = str(event.get("type", ""))
        if not kind.startswith(CHANGES):
            return
        customer = event.get("customer_id")
        named = (event.get("properties") or {}).get("customers")
        if customer:
            self.invalidate(str(customer))
        elif isinstance(named, list):
            for one in named:
                self.invalidate(str(one))
        else:
            self.invalidate()

    def on_webhook(self, headers: Mapping[str, str], body: bytes, secret: str) -> dict[str, Any]:
        """A delivery of the engine's webhooks as it arrived: verified with the Standard
        Webhooks algorithm (`webhook-id`, `webhook-timestamp`, `webhook-signature`; the
        `standardwebhooks` reference code), then `on_event`. Returns the event; a bad or stale
        signature raises `WebhookVerificationError` and drops nothing."""
        from standardwebhooks.webhooks import Webhook

        event: dict[str, Any] = Webhook(secret).verify(body, {k.lower(): v for k, v in headers.items()})
        self.on_event(event)
        return event

    def invalidate(self, customer_id: str | None = None) -> None:
        with self._lock:
            if customer_id is None:
                self._held.clear()
            else:
                for key in [k for k in self._held if k[0] == customer_id]:
                    del self._held[key]

    def refresh(self) -> int:
        """Ask again every question held, in one call. Returns how many were refreshed (0 when
        the engine is unreachable: what is held ages towards `stale_for`)."""
        with self._lock:
            keys = list(self._held)
        if not keys:
            return 0
        try:
            decisions = self.access.check_many(keys)
        except EngineUnavailable:
            return 0
        now = self.clock()
        with self._lock:
            for key, decision in zip(keys, decisions, strict=True):
                self._held[key] = _Held(decision, now)
        return len(keys)

    def start_polling(self, every: float, stop: threading.Event) -> threading.Thread:
        """`refresh()` every `every` seconds on a daemon thread until `stop` is set."""

        def run() -> None:
            while not stop.wait(every):
                self.refresh()

        thread = threading.Thread(target=run, name="access-cache-poll", daemon=True)
        thread.start()
        return thread
