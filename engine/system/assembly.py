"""The running engine, assembled: every component made here, once, and handed to the packages
that use it. `billing serve`, `billing up`, the workers and the tests build it here, so the
embedded default and a larger deployment run the same wiring.

Read `build_system` from top to bottom to see the whole system: what each component is made
of and who receives it. No package below receives the `System`; each gets the components it
uses. Who reacts to which event is the table in subscriptions.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import APIRouter

from engine import messaging, pdf, portal, rules, sales, scheduler
from engine.access import AccessRules, AccessService, AccessView
from engine.api import ApiContext, KeyVerifier
from engine.api.payment_parts import PaymentParts
from engine.api.routes.webhooks import webhooks_router
from engine.automation import Automation, Seller
from engine.clock import Clock, SystemClock, TestClock
from engine.config import Settings, get_settings, shipped_dir
from engine.events import EventBus, HandlerRegistry, InProcessBus, make_bus
from engine.events.settle import Settler
from engine.messaging import Channels, Renderer
from engine.payments import PaymentService, books, webhook_router
from engine.pdf.instructions import payment_instructions
from engine.rules import DurableEngine, RulePromotions, RulesRuntime
from engine.scheduler import Jobs
from engine.store import Database, database_of
from engine.store.clock import StoredClock
from engine.system.access_readers import access_readers
from engine.system.api_operations import api_operations
from engine.system.api_readers import api_readers
from engine.system.attachments import PdfAttachments
from engine.system.automation_owners import build_automation
from engine.system.payments import hosted_form_origins, payment_service
from engine.system.portal_readers import portal_readers
from engine.system.scheduling import collection, scheduler_jobs
from engine.system.subscriptions import subscriptions
from engine.webhooks import Sender, UrlPolicy

log = logging.getLogger("engine.system")

DueWork = Callable[[datetime], object]


class FromSettings:
    """`build_system(payments=FROM_SETTINGS)`: the provider the settings name (or none)."""


FROM_SETTINGS = FromSettings()


@dataclass
class System:
    settings: Settings
    db: Database
    clock: Clock
    # The rules runtime, on this system's own durable_rules engine; its pricing rules as the
    # discounts of a period (quotes, invoices, prorations); its access rules' answers.
    rules: RulesRuntime
    promotions: RulePromotions
    access_rules: AccessRules
    access: AccessService
    keys: KeyVerifier
    # The templates this system renders messages with.
    renderer: Renderer
    registry: HandlerRegistry
    bus: EventBus
    # This system's payments (provider adapters on this system's clock); None: no collection.
    payments: PaymentService | None = None
    # Rules acting on events, and the scheduler's jobs (period closes, retries, scheduled
    # rules, message delivery over `channels`); None: built without them.
    automation: Automation | None = None
    scheduler_jobs: Jobs | None = None
    channels: Channels | None = None
    # Work due at each stop of a test clock besides the billing run, in order.
    due_work: list[DueWork] = field(default_factory=list)
    # A broker-backed system on a test clock: waits until the workers applied every event.
    settler: Settler | None = None
    # The customer page's link signer (engine.portal); the PDFs' seller comes from settings.
    portal_links: portal.PortalLinks | None = None
    # Sends the product's webhooks (engine.webhooks); the URL policy checks endpoints.
    webhooks: Sender | None = None
    # When the next message is due, as this process knows it (its delivery job's stops, within
    # a clock advance); None: built without the scheduler.
    deliveries: messaging.DueWatch | None = None

    @property
    def test_clock(self) -> TestClock | None:
        return self.clock if isinstance(self.clock, TestClock) else None

    @property
    def jobs(self) -> Jobs:
        """The scheduler's jobs (a system built with `automation=True`)."""
        if self.scheduler_jobs is None:
            raise RuntimeError("this system was built without automation and the scheduler")
        return self.scheduler_jobs

    def after_commit(self) -> None:
        """A request or a job committed events: the in-process bus dispatches them now."""
        if isinstance(self.bus, InProcessBus):
            self.bus.wake()

    def drain(self) -> int:
        """Announce pending quota thresholds, then dispatch every pending event in this
        process (in-process bus), until quiet."""
        self.access.announce_thresholds()
        self.access.flush_denials()
        if isinstance(self.bus, InProcessBus):
            return int(self.bus.drain())
        if self.settler is not None:
            # Other processes apply the events: wait for them (a clock advance must return
            # only when the work due on the way is done).
            self.settler.wait()
        return 0

    def drain_written(self) -> int:
        """`drain`, skipping the bus's query when this process wrote no event since the bus
        last found nothing (InProcessBus.drain_written): the drains within a clock advance,
        after each job of each stop. The advance itself starts and ends with `drain`, which
        also sees what other processes wrote."""
        if not isinstance(self.bus, InProcessBus):
            return self.drain()
        self.access.announce_thresholds()
        self.access.flush_denials()
        return int(self.bus.drain_written())

    def advance_clock(self, target: datetime, *, within: bool = False) -> dict[str, object]:
        """Move the test clock to `target` through every billing run due on the way, with the
        due work (`due_work`) and the events it caused at each stop. `within`: a step of a
        larger advance that starts and ends with a full `drain` (scheduler.advance), so a
        stop's drain skips the outbox when this process wrote nothing (`drain_written`)."""
        clock = self.test_clock
        if clock is None:
            raise RuntimeError("not on a test clock")
        drain = self.drain_written if within else self.drain

        def also(now: datetime) -> None:
            for work in self.due_work:
                work(now)
            drain()

        # Each stop, the last included, ends with `also`'s drain: no second one after it (a
        # test clock stops hundreds of times a simulated year, and a drain is a transaction).
        reports = sales.advance_clock(self.db, clock, to=target, also=[also], promotions=self.promotions)
        return {"steps": len(reports)}

    def advance_to(self, target: datetime) -> dict[str, object]:
        """What `POST /v1/clock/advance` does: with the scheduler, a stop at every time work
        falls due on the way (retries, scheduled rules) and the messages delivered; without
        it, the clock advance alone."""
        clock = self.test_clock
        if clock is None:
            raise RuntimeError("not on a test clock")
        if self.scheduler_jobs is None:
            return self.advance_clock(target)
        # This process applies the events (in-process bus): it writes the messages of the
        # advance, so the delivery job may skip the stops where it knows nothing is due.
        # (With a broker the workers write them: every stop asks.)
        deliveries = self.deliveries if isinstance(self.bus, InProcessBus) else None
        with (
            self.webhooks.advance() if self.webhooks is not None else nullcontext(),
            deliveries.advance() if deliveries is not None else nullcontext(),
        ):
            return scheduler.advance(
                self.scheduler_jobs, clock, target, step=lambda t: self.advance_clock(t, within=True),
                drain=self.drain, in_flight=lambda: messaging.deliveries_in_flight(self.db),
            )

    def run_scheduler(self, stop: threading.Event) -> None:
        """The scheduler of this system until `stop` (`billing scheduler`, or a thread)."""
        scheduler.run_scheduler(self.jobs, stop)

    def start_workers(self, stop: threading.Event, *, consume: bool = True) -> list[threading.Thread]:
        """The in-process bus dispatcher (and, with a broker, the relay and consumers), the
        rules refresher that picks up versions other processes published, the quota-threshold
        watcher, the denial-event writer and, when installed, the scheduler.

        `consume=False` is an API-only process (`billing serve --no-workers`): it still writes
        its buffered denials, announces thresholds and follows rule publishes and the outbox,
        while handling events is left to `billing worker`."""
        threads = []
        if consume:
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
        if consume:  # the scheduler and webhook delivery are work a worker process does
            if self.scheduler_jobs is not None:
                workers.append(("scheduler", self.run_scheduler))
            if self.webhooks is not None:
                workers.append(("webhooks", self.webhooks.run))
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
            read=api_readers(),
            operations=api_operations(),
            test_clock=self.test_clock,
            advance_to=self.advance_to if self.test_clock is not None else None,
            after_commit=self.after_commit,
            metrics_text=self.metrics_text,
            max_body_bytes=self.settings.max_body_bytes,
            webhooks_allow_private=self.settings.webhooks_allow_private,
            otel=self.settings.otel,
            promotions=self.promotions,
            routers=self.routers(),
            payments=PaymentParts(self.payments, books.chart_for(self.settings.chart_of_accounts or None)),
        )

    def routers(self) -> list[APIRouter]:
        """The customer page and documents (engine.portal), and the provider's webhooks."""
        found: list[APIRouter] = []
        if self.portal_links is not None:
            found.append(portal.router(portal.PortalConfig(
                self.db, self.clock, self.portal_links, pdf.Seller.from_settings(self.settings), payment_instructions,
                portal_readers(), self.payments,
                after_commit=self.after_commit, invalidate=self.access.invalidate,
                hosted_origins=hosted_form_origins(self.settings))))
        if self.payments is not None:
            found.append(webhook_router(self.db, self.payments))
        if self.webhooks is not None:
            found.append(webhooks_router(self.webhooks.policy, wake=self.webhooks.wake))
        return found

    def sync_rules(self) -> list[str]:
        """Swap in newly published ruleset versions (no restart); decisions change with them."""
        changed = rules.sync_runtime(self.rules, self.db)
        if changed:
            self.access.invalidate(None)
        return changed

    def close(self) -> None:
        """Return this system's rules engine memory and its database connections."""
        self.rules.close()
        self.db.dispose()


def build_system(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    db: Database | None = None,
    create_tables: bool = True,
    automation: bool = False,
    payments: PaymentService | FromSettings | None = FROM_SETTINGS,
) -> System:
    """The system on `settings`. `automation=True` adds what a full deployment runs: rules
    acting on events and the scheduler (period closes, retries, cron rules, message
    delivery). `payments`: the provider of the settings, or this service (None: no
    collection in this system). `create_tables`: migrate the database (engine.store.migrate);
    without it, a database that is not migrated stops here, naming `billing migrate`."""
    settings = settings or get_settings()
    db = db or database_of(settings)
    if create_tables:
        db.migrate()  # the migrations (a copy of their result for an empty SQLite database)
    else:
        from engine.store.migrate import require_migrated  # alembic: only when asked

        require_migrated(db)  # a process that only uses the tables: `billing migrate` first
    clock = clock or _clock_of(settings, db)
    # Rules: this system's own durable_rules engine, runtime, pricing and access answers.
    runtime = RulesRuntime(clock, durable=DurableEngine())
    promotions = RulePromotions(runtime)
    access_rules = AccessRules(runtime, clock)
    access = AccessService(
        db,
        clock,
        access_readers(),
        AccessView(ttl=settings.access_cache_ttl),
        access_rules,
        denial_buffer_seconds=settings.access_denial_buffer_ms / 1000,
    )
    service = payment_service(settings, clock) if isinstance(payments, FromSettings) else payments
    renderer = Renderer(shipped_dir(settings.templates_dir))
    links = portal.PortalLinks(settings, db)
    auto = _automation(settings, db, clock, runtime, promotions, access, service, renderer, links) if automation else None
    hooks = Sender(db, clock, webhooks_policy(settings))
    registry = HandlerRegistry()
    for sub in subscriptions(access=access, payments_service=service, automation=auto, promotions=promotions):
        registry.register(sub.consumer, sub.pattern, sub.handler)
    system = System(
        settings, db, clock, runtime, promotions, access_rules, access, KeyVerifier(db), renderer, registry,
        bus=make_bus(settings, db, registry, clock=clock), payments=service, automation=auto, portal_links=links,
        webhooks=hooks,
    )
    access.after_denials = system.after_commit
    system.sync_rules()
    if auto is not None:
        # Invoice emails carry their PDF, drawn when they are sent.
        attachments = PdfAttachments(db, pdf.Seller.from_settings(settings))
        system.channels = Channels.from_settings(
            smtp_url=settings.smtp_url,
            attachments=attachments,
            allow_private_webhooks=settings.webhooks_allow_private,
        )
        system.deliveries = messaging.DueWatch(db)
        system.scheduler_jobs = scheduler_jobs(
            db, clock, auto, system.channels, service, promotions=promotions, renderer=renderer,
            after_run=system.after_commit, drain=system.drain_written, hooks=hooks, watch=system.deliveries,
        )
        # At a clock stop sales.advance_clock has just run the billing run: the scheduler's
        # `billing` job does not run it again (a stop is hundreds a simulated year).
        jobs = system.scheduler_jobs
        system.due_work.append(lambda now: jobs.run_due(now, billed=True))
    else:
        # Without the scheduler (it has its own payments and delivery jobs), collect and send
        # webhooks at the clock's stops.
        if service is not None:
            system.due_work.append(collection(db, service))
        system.due_work.append(hooks.drain)
    if settings.broker_url and system.test_clock is not None:
        system.settler = Settler(db, registry)
    return system


def webhooks_policy(settings: Settings) -> UrlPolicy:
    """Where the product's webhook endpoints may point (BILLING_WEBHOOKS_ALLOW_*)."""
    return UrlPolicy(allow_http=settings.webhooks_allow_http, allow_private=settings.webhooks_allow_private)


def _clock_of(settings: Settings, db: Database) -> Clock:
    if not settings.test_clock:
        return SystemClock()
    # Stored: every process of the system (API, workers, scheduler) reads one clock.
    start = datetime.fromisoformat(settings.test_clock.replace("Z", "+00:00"))
    return StoredClock(db, start, shared=bool(settings.broker_url))


def _automation(
    settings: Settings, db: Database, clock: Clock, runtime: RulesRuntime, promotions: RulePromotions,
    access: AccessService, service: PaymentService | None, renderer: Renderer, links: portal.PortalLinks,
) -> Automation:
    def sync() -> None:
        if rules.sync_runtime(runtime, db):
            access.invalidate(None)

    return build_automation(
        db, clock, runtime, sync=sync, promotions=promotions,
        seller=Seller(name=settings.seller_name, iban=settings.seller_iban),
        payments_service=service, renderer=renderer, links=links,
    )


def lifecycle_system(settings: Settings, clock: TestClock, db: Database, service: PaymentService) -> System:
    """A throwaway full system for the console's lifecycle what-if: its own database, test
    clock and card provider (engine.system.lifecycle.Build)."""
    return build_system(settings, clock=clock, db=db, automation=True, payments=service)
