"""A customer's spend budget (an amount per billing period in their currency, alert
percentages, an optional hard stop) and the alerts raised once each (docs/credits.md,
*Budgets*). What counts as spend is sales' to say (engine/sales/budget.py); this module keeps
the settings and decides which thresholds a spend figure reached."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.credits.errors import CreditsError
from engine.credits.models import Alert, Budget
from engine.money import quantum

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class BudgetRequest:
    """What a budget is set with; checked whole before anything is written."""

    amount: Decimal
    currency: str
    alerts: tuple[int, ...] = ()
    hard_stop: bool = False
    low_balance: Decimal | None = None

    def check(self) -> None:
        if self.amount <= ZERO:
            raise CreditsError("amount", f"a budget is above zero, not {self.amount}")
        for i, pct in enumerate(self.alerts):
            if not 1 <= pct <= 100:
                raise CreditsError(f"alerts[{i}]", f"a percentage from 1 to 100, not {pct}")
            if i and pct <= self.alerts[i - 1]:
                raise CreditsError(f"alerts[{i}]", f"ascending and each once: {pct} after {self.alerts[i - 1]}")
        if self.low_balance is not None and self.low_balance < ZERO:
            raise CreditsError("low_balance", f"zero or more, not {self.low_balance}")


def set_budget(session: Session, customer_id: str, req: BudgetRequest, now: datetime) -> Budget:
    req.check()
    row = session.get(Budget, customer_id, with_for_update=True)
    if row is None:
        row = Budget(customer_id=customer_id, updated_at=now)
        session.add(row)
    row.amount, row.currency, row.alerts = req.amount, req.currency, list(req.alerts)
    row.hard_stop, row.low_balance, row.updated_at = req.hard_stop, req.low_balance, now
    return row


def get_budget(session: Session, customer_id: str) -> Budget | None:
    return session.get(Budget, customer_id)


def delete_budget(session: Session, customer_id: str) -> bool:
    row = session.get(Budget, customer_id, with_for_update=True)
    if row is None:
        return False
    session.delete(row)
    return True


def shown(value: Decimal, currency: str) -> str:
    """At the currency's minor unit, or as declared when finer (a budget is a threshold, not a
    charge: 10.005 is a budget one can have, and is never rounded away)."""
    q = value.quantize(quantum(currency))
    return str(q) if q == value else format(value.normalize(), "f")


def budget_to_dict(row: Budget) -> dict[str, object]:
    return {"customer_id": row.customer_id, "amount": shown(row.amount, row.currency), "currency": row.currency,
            "alerts": list(row.alerts), "hard_stop": row.hard_stop,
            "low_balance": None if row.low_balance is None else shown(row.low_balance, row.currency),
            "updated_at": row.updated_at.isoformat()}


def reached(amount: Decimal, alerts: Sequence[int], spent: Decimal) -> list[int]:
    """The alert percentages `spent` reached of `amount` (exact: spent * 100 >= amount * pct)."""
    return [pct for pct in alerts if spent * 100 >= amount * pct]


def raise_once(session: Session, customer_id: str, kind: str, key: str, now: datetime) -> bool:
    """Record the alert; False when it was raised before (a redelivery, a concurrent trigger:
    the unique row decides, in this transaction)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    row = session.execute(
        insert(Alert).values(customer_id=customer_id, kind=kind, key=key[:100], created_at=now)
        .on_conflict_do_nothing().returning(Alert.id)  # rowcount is -1 for ORM inserts on psycopg
    ).first()
    return row is not None


def raised(session: Session, customer_id: str, kind: str) -> list[str]:
    """The keys of the alerts of one kind raised for the customer, oldest first."""
    return list(session.scalars(select(Alert.key).where(Alert.customer_id == customer_id, Alert.kind == kind)
                                .order_by(Alert.id)))
