"""A retry that automation asks for from a process without a provider (a scheduler beside
separate payment workers) is carried out by the payments consumer of another process, once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from engine.config import Settings
from engine.store import OutboxEvent
from engine.system import System, build_system
from tests.automation.conftest import FAILING_CARD, START, new_customer


def scheduler_without_provider(system: System, tmp_path: Path) -> System:
    """A second process on the same database, with no payment provider configured."""
    settings = Settings(database_url=system.settings.database_url, test_clock=(START + timedelta(days=1)).isoformat())
    return build_system(settings, automation=True)


def retries(system: System, invoice_id: str) -> list[int]:
    """The collection attempts after the first that failed (each publishes invoice.payment_failed,
    whether the card declined or no method was stored yet)."""
    with system.db.session() as s:
        failed = s.scalars(select(OutboxEvent).where(OutboxEvent.type == "invoice.payment_failed")).all()
    return sorted(int(e.properties["attempt"]) for e in failed
                  if e.properties["invoice_id"] == invoice_id and int(e.properties["attempt"]) > 1)


def test_retry_requested_by_another_process_is_collected_once(
    engine_system: System, tmp_path: Path
) -> None:
    system = engine_system
    invoice_id = new_customer(system, "cus_retry", FAILING_CARD)
    assert retries(system, invoice_id) == []

    other = scheduler_without_provider(system, tmp_path)
    # The provider-less process owns no payment service: nothing of the first one reaches it.
    assert other.payments is None and other.automation is not None
    report: Any = other.automation.run_jobs(other.db, START + timedelta(days=1))
    assert report.run == 1
    with system.db.session() as s:
        requested = s.scalars(select(OutboxEvent).where(OutboxEvent.type == "payment.retry_requested")).all()
        assert [e.properties["invoice_id"] for e in requested] == [invoice_id]

    system.drain()
    assert retries(system, invoice_id) == [2]

    # Delivered again (a broker redelivery, an outbox row not marked): no third charge.
    with system.db.session() as s:
        s.execute(update(OutboxEvent).where(OutboxEvent.type == "payment.retry_requested").values(published_at=None))
    system.drain()
    assert retries(system, invoice_id) == [2]
    other.db.dispose()
