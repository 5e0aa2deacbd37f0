"""Rule automation: when an event happens, the published rulesets that react to it (`on:`)
are evaluated with the event's context and their actions carried out, once; scheduled
rules (`schedule` + `for_each`) are swept by the scheduler through `Automation.sweep`.

    from engine import automation
    automation.install(system)        # before the bus is made (build_system(wiring=[...]))

See docs/automation.md.
"""

from __future__ import annotations

from typing import Any

from engine.automation.actions import NOT_OURS, ActionRunner, Cause, Outcome
from engine.automation.charges import create_charge
from engine.automation.context import build_context, invoice_context, subject_context, subject_contexts
from engine.automation.models import ActionRecord, ScheduledJob
from engine.automation.service import SUBSYSTEM, Automation, JobsReport, SweepReport
from engine.automation.templating import CustomerLinks, DatabaseFacts, Facts, Seller, template_data
from engine.store import Base

__all__ = [
    "NOT_OURS",
    "SUBSYSTEM",
    "ActionRecord",
    "ActionRunner",
    "Automation",
    "Cause",
    "CustomerLinks",
    "DatabaseFacts",
    "Facts",
    "JobsReport",
    "Outcome",
    "ScheduledJob",
    "Seller",
    "SweepReport",
    "build_context",
    "create_charge",
    "create_tables",
    "for_system",
    "install",
    "invoice_context",
    "register",
    "subject_context",
    "subject_contexts",
    "template_data",
]


def create_tables(db: Any) -> None:
    """This package's tables (engine/models.py does not import them yet)."""
    Base.metadata.create_all(db.engine, tables=[ScheduledJob.__table__, ActionRecord.__table__])  # type: ignore[list-item]


def for_system(system: Any) -> Automation:
    """The system's Automation, made on first use: its RulesRuntime and rules sync."""
    auto = getattr(system, "automation", None)
    if auto is None:
        settings = getattr(system, "settings", None)
        auto = Automation(
            system.db, system.clock, getattr(system, "rules", None),
            sync=getattr(system, "sync_rules", None),
            public_url=str(getattr(settings, "public_url", "") or "https://billing.example.com"),
            seller=Seller(name=str(getattr(settings, "seller_name", "") or ""),
                          iban=str(getattr(settings, "seller_iban", "") or "")),
            # Read when a retry runs: the system may be given its service after this is made.
            payments=lambda: getattr(system, "payments", None),
            links=getattr(system, "portal_links", None),
        )
        system.automation = auto
    return auto


def register(registry: Any, system: Any) -> None:
    """Subscribe the automation handler (subsystem "automation") to every event: which ones
    matter changes when rules are published, and `rules.published` itself reloads them."""
    registry.register(SUBSYSTEM, "#", for_system(system).handler)


def install(system: Any) -> None:
    """Wire automation into a built (or building) System: tables, handler."""
    create_tables(system.db)
    for_system(system)
    if register not in system.extra_wiring:
        system.extra_wiring.append(register)
    if getattr(system, "bus", None) is not None:  # the bus exists already: register now
        register(system.registry, system)
