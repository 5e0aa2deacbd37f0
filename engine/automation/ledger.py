"""What every action shares: why it runs (`Cause`), what came of it (`Outcome`), and the
ledger rows (automation_actions, keyed cause, rule and action index) that make it happen once."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.automation.models import ActionRecord
from engine.rules import Action


@dataclass
class Outcome:
    action: str
    rule: str
    status: str  # done | duplicate | skipped
    detail: str = ""


@dataclass
class Cause:
    """Why the actions run: an event (its id) or a scheduled sweep (job, slot, subject)."""

    key: str
    event_id: str | None
    time: datetime  # the event's time, or the slot: delays count from it
    outcomes: list[Outcome] = field(default_factory=list)


def short_id(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:26]
    return f"{prefix}_{digest}"


def rule_of(action: Action) -> str:
    return f"{action.ruleset}/{action.rule}"


def ledger_row(cause: Cause, action: Action, index: int, ctx: Mapping[str, Any], now: datetime) \
        -> dict[str, Any]:
    """The automation_actions row that makes action `index` of a decision happen once."""
    rule = rule_of(action)
    return {"key": f"{cause.key}|{rule}|{index}|{action.name}"[:400],
            "customer_id": ctx.get("customer", {}).get("id"), "action": action.name,
            "rule": rule, "cause": cause.key[:300], "outcome": "", "created_at": now}


def insert_ledger(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Record many actions in one statement; the keys that were new (to be carried out)."""
    if not rows:
        return set()
    table: Any = ActionRecord.__table__
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table).on_conflict_do_nothing().returning(table.c.key)
    return {r.key for r in session.execute(stmt, rows)}


def insert_ignore(session: Session, model: Any, values: dict[str, Any]) -> bool:
    table = model.__table__
    if session.get_bind().dialect.name == "postgresql":
        stmt: Any = pg_insert(table).values(**values).on_conflict_do_nothing()
    else:
        stmt = sqlite_insert(table).values(**values).on_conflict_do_nothing()
    return session.execute(stmt.returning(*table.primary_key.columns)).first() is not None
