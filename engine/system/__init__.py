"""The running engine, assembled in one place: `build_system` makes every component (database,
clock, rules runtime, access, payments, automation, scheduler jobs, bus) and hands each package
the components it uses; subscriptions.py is the table of who reacts to which event.

    system = build_system(settings, automation=True)   # what `billing serve` runs
    system.start_workers(stop)
    app = create_app(system.api_context())
"""

from engine.system.access_readers import access_readers
from engine.system.assembly import FROM_SETTINGS, DueWork, FromSettings, System, build_system, lifecycle_system
from engine.system.automation_owners import DatabaseFacts, SubsystemEffects, SubsystemRecords, build_automation, owners
from engine.system.lifecycle import lifecycle_on_engine, units_catalog
from engine.system.lifecycle_cards import DecliningProvider
from engine.system.payments import payment_retry_consumer, payment_service
from engine.system.scheduling import billing, collection, delivery, scheduler_jobs
from engine.system.subscriptions import Subscription, subscriptions

__all__ = [
    "FROM_SETTINGS",
    "DatabaseFacts",
    "DecliningProvider",
    "DueWork",
    "FromSettings",
    "Subscription",
    "SubsystemEffects",
    "SubsystemRecords",
    "System",
    "access_readers",
    "billing",
    "build_automation",
    "build_system",
    "collection",
    "delivery",
    "lifecycle_on_engine",
    "lifecycle_system",
    "owners",
    "payment_retry_consumer",
    "payment_service",
    "scheduler_jobs",
    "subscriptions",
    "units_catalog",
]
