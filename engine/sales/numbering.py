"""Gapless yearly numbering of invoices and credit notes: the counter's row lock, and the next
numbers taken in the documents' transaction. Moved from engine/sales/invoicing.py."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.sales.models import Counter


def _insert(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def lock_counter(session: Session, kind: str, year: int) -> None:
    """Take the counter's row lock now. Every writer of invoice numbers locks it first, so
    concurrent billing runs serialise on it instead of deadlocking on subscription rows."""
    name = f"{kind}:{year}"
    session.execute(
        _insert(session)(Counter).values(name=name, value=0).on_conflict_do_nothing(index_elements=["name"])
    )
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Counter.value).where(Counter.name == name).with_for_update())


def next_number(session: Session, kind: str, year: int, count: int = 1) -> int:
    """The next number of a gapless yearly sequence (the last of `count` taken at once).
    The increment commits or rolls back with the documents that use it, so no number is
    ever skipped or used twice."""
    name = f"{kind}:{year}"
    stmt = (
        _insert(session)(Counter)
        .values(name=name, value=count)
        .on_conflict_do_update(index_elements=["name"], set_={"value": Counter.value + count})
        .returning(Counter.value)
    )
    return int(session.execute(stmt).scalar_one())
