"""The `charge` action (a one-off fee: late fee, setup fee).

A charge is published as `charge.requested` (amount as a decimal string, currency when the
context knows it, description, and an id derived from the cause and the rule): sales
(`sales.handle_charge_requested`, its bus handler) turns it into a finalized one-off invoice,
once per event id, which payments then collects. Automation does not write sales' tables.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session

from engine.store import add_event


def create_charge(session: Session, customer_id: str, amount: Any, description: str, *,
                  currency: str | None, now: datetime, key: str) -> dict[str, Any]:
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise ValueError(f"charge: amount {amount!r} is not a decimal") from None
    if value <= 0:
        raise ValueError("charge: the amount is above zero")
    props = {"charge_id": key, "amount": str(value), "currency": currency,
             "description": description, "idempotency_key": key}
    add_event(session, "charge.requested", customer_id, props, time=now, id=key)
    return {"id": key, **props}
