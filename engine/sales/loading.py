"""One row by its id, as the sales loaders read it: the id checked first, then a read
(locked on request) and `NotFound` naming the field when there is no such row."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.sales.errors import NotFound, required_id

T = TypeVar("T")


def load_by_id(session: Session, model: type[T], key: Any, field: str, noun: str, article: str, *,
               lock: bool) -> T:
    """The `model` row with id `key` (`noun` names it in errors: "required: an invoice id",
    "unknown invoice 'x'"); with `lock`, read FOR UPDATE."""
    required_id(key, field, f"{article} {noun} id")
    stmt = select(model).filter_by(id=key)
    row = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if row is None:
        raise NotFound(field, f"unknown {noun} {key!r}")
    return row
