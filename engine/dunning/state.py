"""Reading and changing a customer's dunning state; every change publishes dunning.state_changed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, insert, select, update
from sqlalchemy.orm import Session

from engine.dunning.models import Account
from engine.store import add_events

ACTIVE = "active"
_CHUNK = 1000  # ids per IN list


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
    """Move the account to `state`. Returns False (and publishes nothing) when it is there
    already. `set_states` with one change: one way to change a state, one or many."""
    return set_states(session, [StateChange(customer_id, state, reason, cause_event_id)], now=now)[0]


# -- many accounts at once (the scheduler's sweeps) -------------------------------------------


def states_of(session: Session, customer_ids: Iterable[str], *, lock: bool = False) -> dict[str, str]:
    """Each given customer's state (`active` when none was recorded). `lock`: the recorded
    rows stay locked until the transaction ends (PostgreSQL), as `set_states` locks them."""
    wanted = sorted(set(customer_ids))
    return dict.fromkeys(wanted, ACTIVE) | _recorded(session, wanted, lock=lock)


def _recorded(session: Session, wanted: list[str], *, lock: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for start in range(0, len(wanted), _CHUNK):
        stmt = select(Account.customer_id, Account.state).where(
            Account.customer_id.in_(wanted[start:start + _CHUNK]))
        if lock:
            stmt = stmt.with_for_update()
        out.update({cid: state for cid, state in session.execute(stmt)})
    return out


def known_states(session: Session) -> set[str]:
    """Every state some account is in, and `active`."""
    return {ACTIVE, *session.scalars(select(Account.state).distinct())}


def recorded_states(session: Session) -> dict[str, str]:
    """Every recorded account's state by customer (customers without a record are `active`)."""
    return {cid: state for cid, state in session.execute(select(Account.customer_id, Account.state))}


def customers_in_states(states: Iterable[str]) -> Select[Any]:
    """A select of the ids of customers whose recorded state is one of `states`, for other
    subsystems' queries (`customer_id IN (...)`). Customers without a record are `active`
    and not in it: to include them, exclude `customers_in_states(all the others)`."""
    return select(Account.customer_id).where(Account.state.in_(sorted(set(states))))


@dataclass(frozen=True)
class StateChange:
    customer_id: str
    state: str
    reason: str = ""
    cause_event_id: str | None = None


_UPDATE = update(Account).where(Account.customer_id == bindparam("cid")).values(
    state=bindparam("st"), since=bindparam("since"), reason=bindparam("why"))


def set_states(session: Session, changes: Sequence[StateChange], *, now: datetime) -> list[bool]:
    """Move many accounts to their states in a few statements, in order (a customer may appear
    more than once); every change publishes dunning.state_changed. Returns, per change,
    whether it changed the state (False: the account was there already)."""
    if not changes:
        return []
    recorded = _recorded(session, sorted({c.customer_id for c in changes}), lock=True)
    current = {c.customer_id: recorded.get(c.customer_id, ACTIVE) for c in changes}
    result: list[bool] = []
    final: dict[str, StateChange] = {}
    events = []
    for change in changes:
        previous = current[change.customer_id]
        if previous == change.state:
            result.append(False)
            continue
        current[change.customer_id] = change.state
        final[change.customer_id] = change
        result.append(True)
        events.append(("dunning.state_changed", change.customer_id,
                       {"from": previous, "to": change.state, "reason": change.reason,
                        "cause": change.cause_event_id}, now))
    add_events(session, events)  # one INSERT, in order; no ORM object per event
    updates: list[dict[str, Any]] = []
    inserts: list[dict[str, Any]] = []
    for c in final.values():
        if c.customer_id in recorded:
            updates.append({"cid": c.customer_id, "st": c.state, "since": now, "why": c.reason})
        else:
            inserts.append({"customer_id": c.customer_id, "state": c.state, "since": now, "reason": c.reason})
    if updates:
        session.connection().execute(_UPDATE, updates)
    if inserts:
        session.connection().execute(insert(Account), inserts)
    _expire_loaded(session, final)
    return result


def _expire_loaded(session: Session, customer_ids: Iterable[str]) -> None:
    """The rows were written past the ORM: an Account this session loaded reloads on next use."""
    for cid in customer_ids:
        loaded = session.identity_map.get(session.identity_key(Account, cid))
        if loaded is not None:
            session.expire(loaded)
