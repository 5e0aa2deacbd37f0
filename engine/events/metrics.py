"""Per-queue event counters and their Prometheus text rendering.

Counters live in the process that counts them (relay: published; worker: consumed, failed,
retried, dead_lettered, unhandled, duplicates). `render_prometheus()` is what `/metrics`
serves; `broker_status()` adds the broker's own view (depths, dead letters).
"""

from __future__ import annotations

import threading
from collections import defaultdict

COUNTERS: dict[str, str] = {
    "published": "Events published towards the queue (confirmed by the broker, or in-process).",
    "consumed": "Events taken off the queue and settled (applied, duplicate or unhandled).",
    "applied": "Events whose handlers ran and committed.",
    "duplicates": "Redelivered events skipped because their id was already processed.",
    "unhandled": "Events no handler of the queue matched: acknowledged and counted.",
    "failed": "Handler failures (each failed attempt counts once).",
    "retried": "Events scheduled for another attempt after a growing delay.",
    "dead_lettered": "Events moved to the dead-letter queue (poison or out of attempts).",
}


class EventMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, str], int] = defaultdict(int)

    def inc(self, queue: str, counter: str, n: int = 1) -> None:
        if counter not in COUNTERS:
            raise KeyError(f"unknown counter {counter!r}")
        if n:
            with self._lock:
                self._values[(queue, counter)] += n

    def get(self, queue: str, counter: str) -> int:
        with self._lock:
            return self._values.get((queue, counter), 0)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """{queue: {counter: value}} with every counter present for each queue seen."""
        with self._lock:
            queues = sorted({q for q, _ in self._values})
            return {q: {c: self._values.get((q, c), 0) for c in COUNTERS} for q in queues}

    def render_prometheus(self, snap: dict[str, dict[str, int]] | None = None) -> str:
        """The counters (or `snap`, e.g. every process's: engine.events.counters)."""
        snap = self.snapshot() if snap is None else snap
        lines: list[str] = []
        for counter, help_text in COUNTERS.items():
            name = f"billing_events_{counter}_total"
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} counter")
            for queue, values in snap.items():
                lines.append(f'{name}{{queue="{_escape(queue)}"}} {values[counter]}')
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


metrics = EventMetrics()
"""This process's counters."""


def render_prometheus(m: EventMetrics | None = None) -> str:
    """Prometheus text exposition (version 0.0.4) of the event counters."""
    return (m or metrics).render_prometheus()
