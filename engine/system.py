"""The running engine, assembled: database, clock, bus with every subsystem's handlers, access
view and the HTTP context. `billing serve`, `billing up`, the workers and the tests build it here,
so the embedded default and a larger deployment run the same wiring.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine import sales
from engine.access import AccessService, AccessView, RuleAction, RulesAnswer
from engine.api import ApiContext, KeyVerifier
from engine.clock import Clock, SystemClock, TestClock
from engine.config import Settings, get_settings
from engine.events import Envelope, EventBus, HandlerRegistry, make_bus
from engine.events.settle import Settler
from engine.rules import RulesRuntime
from engine.store import Database
from engine.store.clock import StoredClock

if TYPE_CHECKING:
    from engine.payments import PaymentService

log = logging.getLogger("engine.system")


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
    registry.register("sales", "charge.requested", as_dict(sales.handle_charge_requested))
    if system.payments is not None:
        from engine import payments

        for event_type, handler in payments.handlers(system.payments).items():
            registry.register("payments", event_type, as_dict(handler))
        registry.register("payments", "payment.retry_requested", as_dict(payment_retry_consumer(system.payments)))
    # Decisions change with plans, payments and dunning: drop the cached view of that customer.
    registry.register("access", "subscription.*", system.invalidate_access)
    registry.register("access", "customer.*", system.invalidate_access)
    registry.register("access", "dunning.state_changed", system.invalidate_access)
    registry.register("access", "invoice.paid", system.invalidate_access)
    for hook in system.extra_wiring:
        hook(registry, system)


def payment_retry_consumer(service: Any) -> Callable[[Any, dict[str, Any]], None]:
    """The consumer of `payment.retry_requested`: automation's `retry_payment` job publishes it
    when the process that ran the job has no provider (a scheduler beside separate payment
    workers). The next collection attempt goes through `service`, this system's payments."""

    def consume_payment_retry(session: Any, envelope: dict[str, Any]) -> None:
        from engine import payments
        from engine.payments.handlers import CONSUMER
        from engine.store import mark_processed

        # Once per request: the bus records the event for "payments"; this record (the one
        # automation's in-process retry writes under the same id) keeps the two paths from
        # both charging.
        if not mark_processed(session, CONSUMER, envelope["id"], service.now()):
            return
        invoice_id = str((envelope.get("properties") or {}).get("invoice_id") or "")
        try:
            invoice = sales.get_invoice(session, invoice_id)
        except sales.NotFound:
            log.warning("payment.retry_requested %s: unknown invoice %r", envelope["id"], invoice_id)
            return
        if invoice.get("status") != "finalized":  # paid, voided or written off meanwhile
            return
        payments.retry_invoice_payment(session, invoice_id, service=service)

    return consume_payment_retry


def payment_service(settings: Settings, clock: Clock) -> PaymentService | None:
    """Automatic collection through the configured provider: the sandbox at `psp_url` (none
    when it is empty), or Stripe with `BILLING_PSP_PROVIDER=stripe`. Payments run on `clock`
    (the system's, possibly a test clock); the adapters check webhook freshness against the
    wall clock, whatever the system's clock says (docs/payments.md)."""
    from engine import payments

    adapter: payments.ProviderAdapter
    if settings.psp_provider == "stripe":
        if not settings.stripe_api_key or not settings.stripe_webhook_secret:
            raise ValueError(
                "BILLING_PSP_PROVIDER=stripe needs BILLING_STRIPE_API_KEY and BILLING_STRIPE_WEBHOOK_SECRET"
            )
        adapter = payments.StripeAdapter(
            settings.stripe_api_key,
            webhook_secret=settings.stripe_webhook_secret,
            api_base=settings.stripe_api_base or None,
        )
    elif settings.psp_provider != "sandbox":
        raise ValueError(f"BILLING_PSP_PROVIDER: {settings.psp_provider!r} is not sandbox or stripe")
    elif not settings.psp_url:
        return None
    elif not settings.psp_webhook_secret:
        raise ValueError(
            "BILLING_PSP_URL is set but BILLING_PSP_WEBHOOK_SECRET is not: webhooks from the payment "
            "provider cannot be verified. Set the secret the provider signs with (there is no default)"
        )
    else:
        adapter = payments.SandboxAdapter(
            settings.psp_url, api_key=settings.psp_api_key, webhook_secret=settings.psp_webhook_secret
        )
    return payments.PaymentService([adapter], clock, default_provider=adapter.name)


def payments_due_work(db: Database, service: PaymentService) -> Callable[[datetime], Any]:
    def run(now: datetime) -> None:
        from engine import payments

        with db.session() as session:
            payments.collect_due_invoices(session, service=service)
        with db.session() as session:
            payments.repair_pending(session, service=service)

    return run


@dataclass
class System:
    settings: Settings
    db: Database
    clock: Clock
    registry: HandlerRegistry
    access: AccessService
    keys: KeyVerifier
    rules: RulesRuntime = field(default_factory=RulesRuntime)
    bus: EventBus | None = None
    # This system's payments (provider adapters on this system's clock); None: no collection.
    payments: PaymentService | None = None
    # Set by engine.scheduler.install: the scheduler thread and a clock advance that stops
    # at every job due on the way.
    scheduler_runner: Callable[[threading.Event], None] | None = None
    advance_hook: Callable[[datetime], dict[str, Any]] | None = None
    extra_wiring: list[Callable[[HandlerRegistry, System], None]] = field(default_factory=list)
    # Work due at a time besides the billing run (payment retries, scheduled rules), in order.
    due_work: list[Callable[[datetime], Any]] = field(default_factory=list)
    # A broker-backed system on a test clock: waits until the workers applied every event.
    settler: Settler | None = None
    # The customer page's link signer and the PDFs' seller (engine.portal, engine.pdf).
    portal_links: Any = None
    # (rules versions, the sorted validity edges of their access rules), recomputed on a publish.
    _access_windows: tuple[dict[str, int], list[datetime]] = field(default_factory=lambda: ({"": -1}, []))

    @property
    def payments_enabled(self) -> bool:
        return self.payments is not None

    def invalidate_access(self, _session: Any, envelope: Envelope) -> None:
        self.access.invalidate(envelope.customer_id)

    @property
    def test_clock(self) -> TestClock | None:
        return self.clock if isinstance(self.clock, TestClock) else None

    def after_commit(self) -> None:
        if self.bus is not None and hasattr(self.bus, "wake"):
            self.bus.wake()

    def drain(self) -> int:
        """Announce pending quota thresholds, then dispatch every pending event in this
        process (in-process bus), until quiet."""
        self.access.announce_thresholds()
        self.access.flush_denials()
        if self.bus is not None and hasattr(self.bus, "drain"):
            return int(self.bus.drain())
        if self.settler is not None:
            # Other processes apply the events: wait for them (a clock advance must return
            # only when the work due on the way is done).
            self.settler.wait()
        return 0

    def run_due(self, now: datetime) -> dict[str, Any]:
        """Every piece of work due at `now`, then the events it caused."""
        report = sales.run_due_billing(self.db, _Fixed(now), promotions=self.promotions)
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

        reports = sales.advance_clock(self.db, clock, to=target, also=[also], promotions=self.promotions)
        self.drain()
        return {"steps": len(reports)}

    def start_workers(self, stop: threading.Event, *, consume: bool = True) -> list[threading.Thread]:
        """The in-process bus dispatcher (and, with a broker, the relay and consumers), the
        rules refresher that picks up versions other processes published, the quota-threshold
        watcher, the denial-event writer and, when installed, the scheduler.

        `consume=False` is an API-only process (`billing serve --no-workers`): it still writes
        its buffered denials, announces thresholds and follows rule publishes and the outbox,
        while handling events is left to `billing worker`."""
        threads = []
        if self.bus is not None and consume:
            from engine.events import start_counter_flusher

            thread = threading.Thread(target=self.bus.run, args=(stop,), name="bus", daemon=True)
            thread.start()
            threads.append(thread)
            threads.append(start_counter_flusher(self.db, stop))  # for the other processes' /metrics

        def refresh_rules() -> None:
            while not stop.wait(self.settings.rules_refresh_seconds):
                try:
                    self.sync_rules()
                except Exception:  # a bad moment of the database must not kill the refresher
                    log.exception("could not refresh the published rules")

        thread = threading.Thread(target=refresh_rules, name="rules-refresh", daemon=True)
        thread.start()
        threads.append(thread)
        workers: list[tuple[str, Callable[[threading.Event], None]]] = [
            ("quota-thresholds", self.access.watch_thresholds),
            ("access-denials", self.access.write_denials),
        ]
        # The bus may hand another process the event that changes a decision here (several
        # dispatchers, a broker, or none here at all): every process follows the outbox too.
        workers.append(("access-follower", self.access.follow_changes))
        if self.scheduler_runner is not None and consume:
            workers.append(("scheduler", self.scheduler_runner))
        for name, target in workers:
            thread = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
            thread.start()
            threads.append(thread)
        return threads

    def metrics_text(self) -> str:
        """The event counters of every process of the system: this one's, live, and those
        the workers and other processes stored (engine.events.counters)."""
        from engine.events import counters_of_all_processes, metrics

        return metrics.render_prometheus(counters_of_all_processes(self.db))

    def api_context(self) -> ApiContext:

        return ApiContext(
            db=self.db,
            clock=self.clock,
            access=self.access,
            keys=self.keys,
            test_clock=self.test_clock,
            advance_to=(self.advance_hook or self.advance_to) if self.test_clock is not None else None,
            after_commit=self.after_commit,
            metrics_text=self.metrics_text,
            max_body_bytes=self.settings.max_body_bytes,
            otel=self.settings.otel,
            promotions=self.promotions,
            routers=self.routers(),
            payments=self.payments,
        )

    def routers(self) -> list[Any]:
        from engine import pdf, portal

        routers = [portal.router(portal.PortalConfig(
            self.db, self.clock, self.portal_links, pdf.Seller.from_settings(self.settings), self.payments,
            after_commit=self.after_commit, invalidate=self.access.invalidate,
            hosted_origins=portal.origins(self.settings.psp_url)))]
        if self.payments is None:
            return routers
        from engine import payments

        return [*routers, payments.webhook_router(self.db, self.payments)]

    def attachments(self) -> Any:
        """What invoice emails attach, drawn when they are sent (engine.pdf)."""
        from engine import pdf

        return pdf.PdfAttachments(self.db, pdf.Seller.from_settings(self.settings))

    def promotions(self, **kwargs: Any) -> tuple[list[Any], list[dict[str, Any]]]:
        """The published pricing rules' discounts for a period: the one source quotes,
        invoices, prorations and simulations take (`engine.rules.RulePromotions`)."""
        from engine import rules

        return rules.RulePromotions(self.rules)(**kwargs)

    def access_rules(self, context: Mapping[str, Any]) -> RulesAnswer:
        """The allow/deny actions of the published access rules, and a writer for the decision
        log when a rule took part (the access service writes it with the check's other
        effects), so support can answer "why was this denied?"."""
        decision = self.rules.evaluate("access.check", context)
        actions = decision.actions_named("allow", "deny")
        stable_until = self._access_rules_stable_until(self.clock.now())
        if not actions:
            return RulesAnswer(stable_until=stable_until)
        customer = context.get("customer") or {}

        def record(session: Any, decision_id: str) -> None:
            self.rules.log(session, decision, context, customer_id=customer.get("id"), decision_id=decision_id)

        return RulesAnswer(
            tuple(RuleAction(a.ruleset, a.rule, a.name, a.params) for a in actions), record, stable_until
        )

    def _access_rules_stable_until(self, now: datetime) -> datetime | None:
        """The next instant an access rule starts or stops being valid (None: none ahead)."""
        versions = self.rules.versions()
        if self._access_windows[0] != versions:
            found: set[datetime] = set()
            try:
                for name in versions:
                    for rule in self.rules.ruleset(name).rules:
                        if "access.check" in rule.on:
                            found.update(t for t in (rule.valid_from, rule.valid_until) if t is not None)
            except KeyError:  # a publish raced this read: hold the answer for no time at all
                return now
            self._access_windows = (versions, sorted(found))
        edges = self._access_windows[1]
        i = bisect.bisect_right(edges, now)
        return edges[i] if i < len(edges) else None

    def sync_rules(self) -> list[str]:
        """Swap in newly published ruleset versions (no restart); decisions change with them."""
        from engine.rules import sync_runtime

        changed = sync_runtime(self.rules, self.db)
        if changed:
            self.access.invalidate(None)
        return changed


class _Fixed:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


def standard_wiring() -> list[Callable[[System], None]]:
    """The optional subsystems a full deployment runs: automation (rules acting on events)
    and the scheduler (period closes, retries, cron rules), installed together."""
    from engine import scheduler

    def install(system: System) -> None:
        scheduler.install(system)
        system.scheduler_runner = lambda stop: scheduler.run_scheduler(system.settings, stop, system=system)
        system.advance_hook = lambda target: scheduler.advance(system, target)

    return [install]


def build_system(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    db: Database | None = None,
    create_tables: bool = True,
    wiring: Sequence[Callable[[System], None]] = (),
) -> System:
    settings = settings or get_settings()
    db = db or Database(settings.database_url)
    if create_tables:
        import engine.models  # noqa: F401  (every table on the metadata)

        db.create_all()
    if clock is None:
        clock = (
            # Stored: every process of the system (API, workers, scheduler) reads one clock.
            StoredClock(
                db,
                datetime.fromisoformat(settings.test_clock.replace("Z", "+00:00")),
                shared=bool(settings.broker_url),
            )
            if settings.test_clock
            else SystemClock()
        )
    registry = HandlerRegistry()
    access = AccessService(
        db,
        clock,
        AccessView(ttl=settings.access_cache_ttl),
        denial_buffer_seconds=settings.access_denial_buffer_ms / 1000,
    )
    system = System(settings, db, clock, registry, access, KeyVerifier(db), rules=RulesRuntime(clock))
    access.rules = system.access_rules
    access.after_denials = system.after_commit
    from engine.portal import PortalLinks

    system.portal_links = PortalLinks(settings, db)
    system.sync_rules()
    system.payments = payment_service(settings, clock)
    for install in wiring:
        install(system)
    if system.payments is not None and system.scheduler_runner is None:
        # Without the scheduler (which has its own payments job), collect at the clock's stops.
        system.due_work.append(payments_due_work(db, system.payments))
    register_handlers(registry, system)
    system.bus = make_bus(settings, db, registry, clock=clock)
    if settings.broker_url and system.test_clock is not None:
        system.settler = Settler(db, registry)
    return system
