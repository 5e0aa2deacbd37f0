"""An operator's audited changes to a customer's wallet and spend budget (the console's
customer card): a grant with its reason, the budget set or removed, through the services the
HTTP routes use (POST /v1/customers/{id}/wallet/grants, PUT/DELETE /v1/customers/{id}/budget),
each allowed by the user's `operate` permission and recorded in the audit. Input is checked
before anything is written (UserError or PermissionDenied naming the field)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session

from engine import sales
from engine.clock import Clock
from engine.system.operations.subscription_changes import allowed
from engine.users import UserError, record_audit, require


def positive_amount(text: str, field: str = "amount") -> Decimal:
    """A decimal above zero, written as the operator typed it (1,000.50 and 1000.5 alike)."""
    try:
        value = Decimal(text.replace(",", "").strip())
    except (InvalidOperation, AttributeError):
        raise UserError(field, f"a number above zero, not {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise UserError(field, f"above zero, not {text.strip()}")
    return value


def end_of(day: date) -> datetime:
    """A grant usable through `day` expires at the next midnight, UTC."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


def grant_credit(session: Session, user: dict[str, Any], customer_id: str, amount: str, reason: str, *,
                 clock: Clock, last_day: date | None = None, unit: str | None = None) -> dict[str, Any]:
    """An operator's grant, as `POST /v1/customers/{id}/wallet/grants`: the role and the input
    are checked before anything is written (UserError or PermissionDenied naming the field).
    `unit`: the customer's currency when None, else a currency or their catalog's custom unit
    (tokens; a unit neither is refused naming `unit`)."""
    require(user, "operate")
    value = positive_amount(amount)
    if not reason or not reason.strip():
        raise UserError("reason", "say why the credit is granted: it is kept on the grant and in the audit")
    spec: dict[str, Any] = {"amount": value, "reason": reason.strip()}
    if unit:
        spec["unit"] = unit
    if last_day is not None:
        spec["expires_at"] = end_of(last_day)
    out = sales.grant_credit(session, customer_id, spec, clock=clock, created_by=f"console:{user['name']}")
    record_audit(session, user, "grant_credit", "customer", customer_id, reason,
                 details={"customer": customer_id, "amount": out["amount"], "unit": out["unit"]}, clock=clock)
    return out


def alerts_of(text: str) -> list[int] | None:
    """'50, 80, 100' -> [50, 80, 100]; blank: the plan's default alerts (None)."""
    parts = [p.strip().removesuffix("%").strip() for p in text.split(",") if p.strip()]
    if not parts:
        return None
    out = []
    for i, p in enumerate(parts):
        if not p.isdigit():
            raise UserError(f"alerts[{i}]", f"a whole percentage from 1 to 100, not {p!r}")
        out.append(int(p))
    return out


def set_budget(session: Session, user: dict[str, Any], customer_id: str, amount: str, alerts: str,
               hard_stop: bool, why: str, *, clock: Clock) -> dict[str, Any]:
    """The customer's spend budget, as `PUT /v1/customers/{id}/budget`."""
    allowed(user, why)
    spec: dict[str, Any] = {"amount": positive_amount(amount), "hard_stop": hard_stop}
    if (percents := alerts_of(alerts)) is not None:
        spec["alerts"] = percents
    out = sales.set_budget(session, customer_id, spec, clock=clock)
    record_audit(session, user, "set_budget", "customer", customer_id, why,
                 details={"customer": customer_id, "amount": out["amount"], "currency": out["currency"]}, clock=clock)
    return out


def delete_budget(session: Session, user: dict[str, Any], customer_id: str, why: str, *, clock: Clock) -> bool:
    """As `DELETE /v1/customers/{id}/budget`; False when there was none (nothing recorded)."""
    allowed(user, why)
    if not sales.delete_budget(session, customer_id, clock=clock):
        return False
    record_audit(session, user, "delete_budget", "customer", customer_id, why,
                 details={"customer": customer_id}, clock=clock)
    return True
