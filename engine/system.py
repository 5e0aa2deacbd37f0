"""The running engine, assembled: database, clock, bus with every subsystem's handlers, access
view and the HTTP context. `billing serve`, `billing up`, the workers and the tests build it here,
so the embedded default and a larger deployment run the same wiring.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine import sales
from engine.access import AccessService, AccessView
from engine.api import ApiContext, KeyVerifier
from engine.clock import Clock, SystemClock, TestClock
from engine.config import Settings, get_settings
from engine.events import Envelope, EventBus, HandlerRegistry, make_bus
from engine.store import Database


def as_dict(handler: Callable[[Any, dict[str, Any]], object]) -> Callable[[Any, Envelope], None]:
    """Subsystem handlers take the envelope as a plain dict (FORMATS §3)."""

    def adapted(session: Any, envelope: Envelope) -> None:
        handler(session, envelope.model_dump(mode="json"))

    adapted.__name__ = adapted.__qualname__ = getattr(handler, "__qualname__", "handler")
    adapted.__module__ = getattr(handler, "__module__", __name__)
    return adapted


def register_handlers(registry: HandlerRegistry, system: System) -> None:
    """Who reacts to what. Each subsystem consumes its own queue; effects are idempotent."""
    registry.register("sales", "payment.succeeded", as_dict(sales.handle_payment_succeeded))
    for hook in system.extra_wiring:
        hook(registry, system)


@dataclass
class System:
    settings: Settings
    db: Database
    clock: Clock
    registry: HandlerRegistry
    access: AccessService
    keys: KeyVerifier
    bus: EventBus | None = None
    extra_wiring: list[Callable[[HandlerRegistry, System], None]] = field(default_factory=list)
    # Work due at a time besides the billing run (payment retries, scheduled rules), in order.
    due_work: list[Callable[[datetime], Any]] = field(default_factory=list)

    @property
    def test_clock(self) -> TestClock | None:
        return self.clock if isinstance(self.clock, TestClock) else None

    def after_commit(self) -> None:
        if self.bus is not None and hasattr(self.bus, "wake"):
            self.bus.wake()

    def drain(self) -> int:
        """Dispatch every pending event in this process (in-process bus), until quiet."""
        if self.bus is not None and hasattr(self.bus, "drain"):
            return int(self.bus.drain())
        return 0

    def run_due(self, now: datetime) -> dict[str, Any]:
        """Every piece of work due at `now`, then the events it caused."""
        report = sales.run_due_billing(self.db, _Fixed(now))
        for work in self.due_work:
            work(now)
        self.drain()
        return {"invoices": report.invoices_issued if hasattr(report, "invoices_issued") else None}

    def advance_to(self, target: datetime) -> dict[str, Any]:
        clock = self.test_clock
        if clock is None:
            raise RuntimeError("not on a test clock")

        def also(now: datetime) -> None:
            for work in self.due_work:
                work(now)
            self.drain()

        reports = sales.advance_clock(self.db, clock, to=target, also=[also])
        self.drain()
        return {"steps": len(reports)}

    def start_workers(self, stop: threading.Event) -> list[threading.Thread]:
        """The in-process bus dispatcher (and, with a broker, the relay and consumers)."""
        threads = []
        if self.bus is not None:
            thread = threading.Thread(target=self.bus.run, args=(stop,), name="bus", daemon=True)
            thread.start()
            threads.append(thread)
        return threads

    def api_context(self) -> ApiContext:
        from engine.events import render_prometheus

        return ApiContext(
            db=self.db,
            clock=self.clock,
            access=self.access,
            keys=self.keys,
            test_clock=self.test_clock,
            advance_to=self.advance_to if self.test_clock is not None else None,
            after_commit=self.after_commit,
            metrics_text=render_prometheus,
            max_body_bytes=self.settings.max_body_bytes,
        )


class _Fixed:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


def build_system(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    db: Database | None = None,
    create_tables: bool = True,
) -> System:
    settings = settings or get_settings()
    db = db or Database(settings.database_url)
    if create_tables:
        import engine.models  # noqa: F401  (every table on the metadata)

        db.create_all()
    if clock is None:
        clock = (
            TestClock(datetime.fromisoformat(settings.test_clock.replace("Z", "+00:00")))
            if settings.test_clock
            else SystemClock()
        )
    registry = HandlerRegistry()
    access = AccessService(db, clock, AccessView(ttl=settings.access_cache_ttl))
    system = System(settings, db, clock, registry, access, KeyVerifier(db))
    register_handlers(registry, system)
    system.bus = make_bus(settings, db, registry, clock=clock)
    return system
