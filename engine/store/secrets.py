"""Secrets generated once per database: the first process that needs one makes it, every
other process of the deployment reads the same value (e.g. the customer page's link signing
key when BILLING_PORTAL_SECRET is not set). Never a default value in the code."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from engine.store.base import Base
from engine.store.database import Database


class StoredSecret(Base):
    __tablename__ = "engine_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


def stored_secret(db: Database, name: str) -> str:
    """The database's secret called `name`, made (256 random bits) the first time it is
    asked for. Two processes asking at once get the same one (insert-or-ignore, then read)."""
    with db.read_session() as session:
        found = session.scalar(select(StoredSecret.value).where(StoredSecret.name == name))
    if found:
        return found
    values = {"name": name, "value": secrets.token_urlsafe(32), "created_at": datetime.now(UTC)}
    table: Any = StoredSecret.__table__
    with db.session() as session:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(insert(table).values(**values).on_conflict_do_nothing())
    with db.read_session() as session:
        value = session.scalar(select(StoredSecret.value).where(StoredSecret.name == name))
    assert value, name
    return value
