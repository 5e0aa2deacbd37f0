"""Days of stored times, computed by the database for the reports that read many rows."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Numeric, func, type_coerce
from sqlalchemy.orm import Session


def utc_day(session: Session, column: Any) -> Any:
    """The UTC day of a stored time, computed by the database: converting 100,000 datetimes
    in Python (with their zones) took longer than the query that read them."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)  # SQLite keeps UTC text: its date() is the day


def as_day(value: date | str | None) -> date:
    """A day as the database returned it (SQLite's date() answers text)."""
    assert value is not None  # the queries keep dated rows only
    return value if isinstance(value, date) else date.fromisoformat(value)


def exact(session: Session, column: Any) -> Any:
    """A money column read in bulk: PostgreSQL's NUMERIC arrives as a Decimal already, so the
    column is read without the per-value conversion `DecimalString` does (SQLite's stored
    text still needs it)."""
    if session.get_bind().dialect.name == "postgresql":
        return type_coerce(column, Numeric(24, 8, asdecimal=True))
    return column
