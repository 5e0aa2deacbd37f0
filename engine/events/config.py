"""Bus settings that are not in engine.config: names, retry schedule, batch sizes.

Defaults suit production; tests pass a unique `prefix` so parallel runs never share queues.
`BILLING_BROKER_PREFIX`, `BILLING_EVENTS_MAX_ATTEMPTS` and `BILLING_EVENTS_RETRY_DELAYS_MS`
(comma-separated) override them from the environment.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class BusConfig:
    prefix: str = "billing"
    # Attempts in all: after the last one fails the event goes to the dead-letter queue.
    max_attempts: int = 5
    # Delay before attempt k+1 after attempt k failed: the k-th entry (the last one repeats).
    retry_delays_ms: tuple[int, ...] = (1_000, 10_000, 60_000, 300_000)
    prefetch: int = 1000
    batch_size: int = 250
    relay_batch_size: int = 500
    poll_interval: float = 0.02
    reconnect_delay: float = 0.5
    reconnect_delay_max: float = 10.0
    publish_timeout: float = 15.0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,60}", self.prefix):
            raise ValueError(f"broker prefix {self.prefix!r}: letters, digits, _ . - only")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not self.retry_delays_ms or any(d <= 0 for d in self.retry_delays_ms):
            raise ValueError("retry_delays_ms: one or more positive delays")

    @classmethod
    def from_env(cls) -> BusConfig:
        kwargs: dict[str, object] = {}
        if prefix := os.environ.get("BILLING_BROKER_PREFIX"):
            kwargs["prefix"] = prefix
        if attempts := os.environ.get("BILLING_EVENTS_MAX_ATTEMPTS"):
            kwargs["max_attempts"] = int(attempts)
        if delays := os.environ.get("BILLING_EVENTS_RETRY_DELAYS_MS"):
            kwargs["retry_delays_ms"] = tuple(int(d) for d in delays.split(",") if d.strip())
        return cls(**kwargs)  # type: ignore[arg-type]

    # -- names -------------------------------------------------------------------------
    @property
    def exchange(self) -> str:
        return f"{self.prefix}.events"

    @property
    def unrouted_exchange(self) -> str:
        return f"{self.prefix}.unrouted"

    @property
    def unrouted_queue(self) -> str:
        return f"{self.prefix}.unrouted"

    def queue(self, subsystem: str) -> str:
        return f"{self.prefix}.{subsystem}"

    def dead_queue(self, subsystem: str) -> str:
        return f"{self.prefix}.{subsystem}.dead"

    def retry_queue(self, subsystem: str, delay_ms: int) -> str:
        return f"{self.prefix}.{subsystem}.retry.{delay_ms}ms"

    def retry_delay_ms(self, failed_attempt: int) -> int:
        """How long to wait after attempt number `failed_attempt` (1-based) failed."""
        return self.retry_delays_ms[min(failed_attempt, len(self.retry_delays_ms)) - 1]
