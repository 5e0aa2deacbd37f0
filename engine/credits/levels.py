"""A customer's own low-balance level for a custom-unit (token) wallet: below it,
`credits.balance_low` (engine/credits/balance.py). A money wallet's per-customer level is the
budget's `low_balance`; whether a unit is the customer's catalog's is sales' to say (the door)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from engine.credits.amounts import amount_text, is_custom
from engine.credits.errors import CreditsError
from engine.credits.models import Level

ZERO = Decimal(0)


def set_level(session: Session, customer_id: str, unit: str, low_balance: Decimal, now: datetime) -> Level:
    """Set (or change) the customer's level in `unit`; checked before anything is written."""
    if not is_custom(unit):
        raise CreditsError("unit", f"{unit} is money: its low-balance level is the budget's low_balance")
    if low_balance <= ZERO:
        raise CreditsError("low_balance", f"a level is above zero, not {low_balance}")
    row = session.get(Level, (customer_id, unit))
    if row is None:
        row = Level(customer_id=customer_id, unit=unit, low_balance=low_balance, updated_at=now)
        session.add(row)
    else:
        row.low_balance, row.updated_at = low_balance, now
    return row


def get_level(session: Session, customer_id: str, unit: str) -> Level | None:
    return session.get(Level, (customer_id, unit))


def delete_level(session: Session, customer_id: str, unit: str) -> bool:
    """False when there was none."""
    row = session.get(Level, (customer_id, unit))
    if row is None:
        return False
    session.delete(row)
    return True


def level_to_dict(
    customer_id: str, unit: str, own: Level | None, effective: Decimal | None, source: str | None
) -> dict[str, Any]:
    """The customer's own level (None: not set), the level in force and where it comes from
    (`top_up`: the enabled automatic top-up's threshold; `customer`; `catalog`; None: none)."""
    return {
        "customer_id": customer_id,
        "unit": unit,
        "low_balance": None if own is None else amount_text(own.low_balance, unit),
        "effective": None if effective is None else amount_text(effective, unit),
        "source": source,
    }
