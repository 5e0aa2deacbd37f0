"""A customer's wallet and spend budget on the console: balances per unit, grants with what is
left, the ledger page by page, an operator's grant with its reason, and the budget set, shown
and deleted. The same engine services as the HTTP routes (engine/api/routes/wallets.py and
budgets.py); every change is allowed by the `operate` permission and recorded in the audit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session

from engine import sales
from engine.clock import Clock
from engine.users import UserError, record_audit, require

LEDGER_PAGE = 20


@dataclass(frozen=True)
class WalletReaders:
    """What the page reads of the credits subsystem, bound in engine/system/console_readers.py
    (this module imports sales alone of the subsystems besides the operator's audit)."""

    wallet: Callable[[Session, str, datetime], dict[str, Any]]  # as GET /v1/customers/{id}/wallet
    ledger_page: Callable[..., dict[str, Any]]  # (session, customer id, after=, limit=) -> a page


@dataclass(frozen=True)
class WalletView:
    balances: list[dict[str, Any]]  # unit, balance, available, pending (decimal strings)
    grants: list[dict[str, Any]]  # as GET /v1/customers/{id}/wallet gives them
    budget: dict[str, Any] | None  # as GET /v1/customers/{id}/budget, None: no budget


def wallet_view(session: Session, read: WalletReaders, customer_id: str, now: datetime) -> WalletView:
    sales.get_customer(session, customer_id)  # NotFound naming customer_id
    out = read.wallet(session, customer_id, now)
    return WalletView(out["balances"], out["grants"], sales.budget_status(session, customer_id))


def ledger(session: Session, read: WalletReaders, customer_id: str, after: int = 0,
           limit: int = LEDGER_PAGE) -> dict[str, Any]:
    """One page of entries, oldest first; `next_after` pages on (None: the last page)."""
    return read.ledger_page(session, customer_id, after=after, limit=limit)


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
                 clock: Clock, last_day: date | None = None) -> dict[str, Any]:
    """An operator's grant, as `POST /v1/customers/{id}/wallet/grants`: the role and the input
    are checked before anything is written (UserError or PermissionDenied naming the field)."""
    require(user, "operate")
    value = positive_amount(amount)
    if not reason or not reason.strip():
        raise UserError("reason", "say why the credit is granted: it is kept on the grant and in the audit")
    spec: dict[str, Any] = {"amount": value, "reason": reason.strip()}
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
    _allowed(user, why)
    spec: dict[str, Any] = {"amount": positive_amount(amount), "hard_stop": hard_stop}
    if (percents := alerts_of(alerts)) is not None:
        spec["alerts"] = percents
    out = sales.set_budget(session, customer_id, spec, clock=clock)
    record_audit(session, user, "set_budget", "customer", customer_id, why,
                 details={"customer": customer_id, "amount": out["amount"], "currency": out["currency"]}, clock=clock)
    return out


def delete_budget(session: Session, user: dict[str, Any], customer_id: str, why: str, *, clock: Clock) -> bool:
    """As `DELETE /v1/customers/{id}/budget`; False when there was none (nothing recorded)."""
    _allowed(user, why)
    if not sales.delete_budget(session, customer_id, clock=clock):
        return False
    record_audit(session, user, "delete_budget", "customer", customer_id, why,
                 details={"customer": customer_id}, clock=clock)
    return True


def _allowed(user: dict[str, Any], why: str) -> None:
    require(user, "operate")
    if not why or not why.strip():
        raise UserError("why", "say why: the change is recorded in the audit")
