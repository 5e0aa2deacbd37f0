"""Imports every subsystem's tables, so the migrations see the whole schema."""

import importlib

# Each subsystem declares its tables in its own models module.
MODEL_MODULES = (
    "engine.store.outbox",
    "engine.events.counters",
    "engine.store.clock",
    "engine.store.secrets",
    "engine.sales.models",
    "engine.rules.models",
    "engine.payments.models",
    "engine.messaging.models",
    "engine.access.models",
    "engine.dunning.models",
    "engine.api.models",
    "engine.users.models",
    "engine.console.models",
    "engine.automation.models",
    "engine.scheduler.models",
    "engine.webhooks.models",
    "engine.credits.models",
)

for _name in MODEL_MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # a subsystem without tables (yet) is fine; a broken import is not
        if exc.name is None or not _name.startswith(exc.name):
            raise
