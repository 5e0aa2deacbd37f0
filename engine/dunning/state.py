"""Reading and changing a customer's dunning state; every change publishes dunning.state_changed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from engine.dunning.models import Account
from engine.store import add_event

ACTIVE = "active"


def get_state(session: Session, customer_id: str) -> str:
    account = session.get(Account, customer_id)
    return account.state if account is not None else ACTIVE


def set_state(
    session: Session,
    customer_id: str,
    state: str,
    *,
    now: datetime,
    reason: str = "",
    cause_event_id: str | None = None,
) -> bool:
    """Move the account to `state`. Returns False (and publishes nothing) when it is there already."""
    account = session.get(Account, customer_id, with_for_update=True)
    previous = account.state if account is not None else ACTIVE
    if previous == state:
        return False
    if account is None:
        session.add(Account(customer_id=customer_id, state=state, since=now, reason=reason))
    else:
        account.state, account.since, account.reason = state, now, reason
    add_event(
        session,
        "dunning.state_changed",
        customer_id,
        {"from": previous, "to": state, "reason": reason, "cause": cause_event_id},
        time=now,
    )
    return True
