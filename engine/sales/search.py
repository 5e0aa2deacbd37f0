"""Finding a customer by a piece of their id, name or email (the console's search box)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from engine.sales.customers import customer_to_dict
from engine.sales.errors import SalesError
from engine.sales.models import Customer


def search_customers(session: Session, text: str, *, limit: int = 20) -> list[dict[str, Any]]:
    """Customers whose id, name or email contains `text` (any case), exact id first, then by
    name; at most `limit`. Empty text lists the first customers by name."""
    if not 1 <= limit <= 200:
        raise SalesError("limit", "between 1 and 200")
    needle = text.strip().lower()
    stmt = select(Customer)
    if needle:
        # LIKE's wildcards in the text are meant literally
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(*(func.lower(col).like(pattern, escape="\\")
                                for col in (Customer.id, Customer.name, Customer.email))))
    rows = session.scalars(stmt.order_by(func.lower(Customer.id) != needle, Customer.name, Customer.id).limit(limit))
    return [customer_to_dict(c) for c in rows]
