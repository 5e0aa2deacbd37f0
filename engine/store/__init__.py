"""Persistence shared by every subsystem: the declarative base, money columns, the database
handle, and the outbox/processed-event tables that make events transactional.

Each subsystem declares its own tables (in its `models.py`) on `Base`; it never writes
another subsystem's tables.
"""

from engine.store.base import Base, DecimalString
from engine.store.database import Database, PoolSize, database_of, is_postgres
from engine.store.outbox import (
    OutboxEvent,
    ProcessedEvent,
    add_event,
    add_events,
    mark_processed,
    mark_processed_many,
    new_event_id,
    note_outbox_write,
)

__all__ = [
    "Base",
    "Database",
    "DecimalString",
    "OutboxEvent",
    "PoolSize",
    "ProcessedEvent",
    "add_event",
    "add_events",
    "database_of",
    "is_postgres",
    "mark_processed",
    "mark_processed_many",
    "new_event_id",
    "note_outbox_write",
]
