"""What the scheduler runs besides automation's sweeps and retries, joined here from the
subsystems that do it: sales' billing run, payments' collection, messaging's delivery. The
scheduler owns times and slots only (engine.scheduler.Jobs)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from engine import credits, messaging, payments, sales, webhooks
from engine.automation import Automation
from engine.clock import Clock, FixedClock
from engine.messaging import Channels, Renderer
from engine.payments import PaymentService
from engine.pricing.quoting import PromotionSource
from engine.rules import RulePromotions
from engine.scheduler import Jobs, Work
from engine.scheduler.jobs import OWNER
from engine.store import Database


def billing(db: Database, promotions: PromotionSource) -> Work:
    """Every period close and renewal due at a time, priced with the published promotions."""

    def run(now: datetime) -> dict[str, object]:
        report = sales.run_due_billing(db, FixedClock(now), promotions=promotions)
        return {"steps": len(report.steps), "failures": len(report.failures)}

    return run


def expiry(db: Database) -> Work:
    """After the billing run: the credit grants whose time is up expire (after the invoices
    they could still pay)."""

    def run(now: datetime) -> dict[str, object]:
        with db.session() as session:
            written_off = credits.expire_due(session, now)
            for grant, left in written_off:
                if left > 0:  # the balance fell: low or spent, said once per episode
                    sales.announce_balance(session, grant.customer_id, grant.unit, now)
            expired = len(written_off)
        return {"expired": expired}

    return run


def collection(db: Database, service: PaymentService) -> Work:
    """Invoices due collected through `service`, then payments left pending repaired."""

    def run(now: datetime) -> dict[str, object]:
        with db.session() as session:
            collected = len(payments.collect_due_invoices(session, service=service))
        with db.session() as session:
            repaired = len(payments.repair_pending(session, service=service))
        return {"collected": collected, "repaired": repaired}

    return run


def delivery(
    db: Database,
    channels: Channels | None,
    renderer: messaging.Renderer,
    hooks: webhooks.Sender | None = None,
    watch: messaging.DueWatch | None = None,
) -> Work:
    """Messages due sent over `channels` (None: none), not even asked for while `watch`
    knows none is due (within a clock advance); digests that close now render with
    `renderer`; then the product's webhooks due (`hooks`)."""

    def run(now: datetime) -> dict[str, object]:
        done: dict[str, object] = {}
        if channels is not None:
            report = messaging.deliver_pending(db, channels, now=now, renderer=renderer, watch=watch)
            done |= {"sent": report.sent, "retried": report.retried, "failed": report.failed}
        if hooks is not None:
            sent = hooks.drain(now)
            done |= {"webhooks": sent.delivered, "webhooks_failed": sent.failed}
        return done

    return run


def scheduler_jobs(
    db: Database,
    clock: Clock,
    auto: Automation,
    channels: Channels | None,
    service: PaymentService | None = None,
    *,
    promotions: PromotionSource | None = None,
    renderer: Renderer | None = None,
    after_run: Callable[[], object] = lambda: None,
    drain: Callable[[], object] = lambda: None,
    owner: str = OWNER,
    hooks: webhooks.Sender | None = None,
    watch: messaging.DueWatch | None = None,
) -> Jobs:
    """The scheduler's job table for one system: billing priced with `promotions` (None:
    `auto`'s pricing rules), delivery over `channels` (None: none) with `renderer`'s templates
    (None: the shipped ones), skipped while `watch` knows nothing is due, and of the product's
    webhooks through `hooks`, collection through `service` (None: no payments job)."""
    sends = channels is not None or hooks is not None
    return Jobs(
        db,
        clock,
        auto,
        billing=billing(db, promotions or RulePromotions(auto.runtime)),
        expire=expiry(db),
        deliver=delivery(db, channels, renderer or Renderer(), hooks, watch) if sends else None,
        collect=collection(db, service) if service is not None else None,
        after_run=after_run,
        drain=drain,
        owner=owner,
    )
