"""The decision log read back for one customer: why they were denied, charged, dunned or
messaged (GET /v1/customers/{id}/decisions and the console's Inspect page).

Two sources, both kept with the customer id: the rules decision log (`rules_decisions`: every
access denial, plan-driven or by a rule, and every rule that matched an event) and the outbox
(the charges payments made, the dunning state changes, the messages sent), whose events name
what caused them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.rules.models import DecisionRecord
from engine.store import OutboxEvent

KINDS = ("access", "charge", "dunning", "message")
# Which kind of decision a rule's action is.
_ACTION_KIND = {
    "allow": "access",
    "deny": "access",
    "charge": "charge",
    "set_dunning_state": "dunning",
    "retry_payment": "dunning",
    "cancel_subscription": "dunning",
    "notify": "message",
}
# The outbox events that are decisions of the engine itself (no rule): what each means.
_EVENT_KIND = {
    "payment.succeeded": "charge",
    "invoice.payment_failed": "charge",
    "dunning.state_changed": "dunning",
    "notification.sent": "message",
    "notification.failed": "message",
}


def write_decision(session: Session, row: dict[str, Any]) -> int:
    """Insert a decision-log row. An access decision is memoised: asked again in a later
    window, it is logged again (each use is in the log) as `<decision id>.<n>`, so the id the
    check answered with names the first row and the later ones are found beside it. Returns
    the `n` it took (0: the decision id itself)."""
    base = row["decision_id"]
    for _ in range(5):
        taken: int = session.execute(
            select(func.count()).select_from(DecisionRecord).where(_uses_of(session, base))
        ).scalar_one()
        values = {**row, "decision_id": f"{base}.{taken}" if taken else base}
        try:
            with session.begin_nested():  # a concurrent check of the same decision took the id
                session.execute(insert(DecisionRecord).values(**values))
            return taken
        except IntegrityError:
            continue
    raise RuntimeError(f"could not log decision {base}")


def write_decisions(session: Session, rows: Sequence[tuple[dict[str, Any], int | None]]) -> list[int]:
    """`write_decision` for a window of rows (the access denial writer's), each given with the
    `n` its next use takes when the caller knows it (None: counted in the log). The known
    ones are inserted in one executemany, with no query: the writer runs beside the event
    loop, and four statements a row (count, savepoint, insert, release), hundreds of rows a
    window, kept it busy and took the GIL from the loop at each. A clash (a check's own
    transaction logged one of them meanwhile) falls back to counting, one row at a time."""
    known = [(row, n) for row, n in rows if n is not None]
    taken: dict[int, int] = {}
    if known:
        try:
            with session.begin_nested():
                session.execute(
                    insert(DecisionRecord),
                    [
                        {**row, "decision_id": f"{row['decision_id']}.{n}" if n else row["decision_id"]}
                        for row, n in known
                    ],
                )
            taken = {id(row): n for row, n in known}
        except IntegrityError:
            pass
    return [taken[id(row)] if id(row) in taken else write_decision(session, row) for row, _ in rows]


def _uses_of(session: Session, base: str) -> ColumnElement[bool]:
    """The rows of decision `base`: `base` itself and `base.<n>`. On SQLite, as a range of the
    unique index on decision_id (its BINARY collation orders by bytes, and "/" follows "."):
    SQLite's LIKE is case-insensitive and so never uses that index, and a scan of the whole
    log for every row written made the cost of a write grow with the log."""
    column = DecisionRecord.decision_id
    if session.get_bind().dialect.name == "sqlite":
        return or_(column == base, and_(column >= f"{base}.", column < f"{base}/"))
    return column.like(f"{base}%")


def access_denial_row(decision_id: str, time: datetime, customer_id: str, answer: dict[str, Any]) -> dict[str, Any]:
    """The decision-log row of a denial the plan decided (no rule took part): the plan's
    answer is the input."""
    return dict(
        decision_id=decision_id,
        time=time,
        event="access.check",
        event_id=None,
        customer_id=customer_id,
        outcome="deny",
        rulesets={},
        rules=[],
        actions=[{"action": "deny", "params": {"reason": answer.get("reason")}, "ruleset": None, "rule": None}],
        inputs={"plan": {k: answer.get(k) for k in ("feature", "reason", "plan", "limit", "used", "remaining")}},
    )


def _from_log(record: DecisionRecord) -> Iterable[dict[str, Any]]:
    """One item per kind of action the logged decision took (a rule may notify and retry)."""
    rule = record.rules[0] if record.rules else None
    if record.event == "access.check":
        return [_access_item(record, rule)]
    return _action_items(record, rule)


def _access_item(record: DecisionRecord, rule: str | None) -> dict[str, Any]:
    """An access check: the feature asked for and the reason of the allow or deny."""
    params = next(
        (a.get("params") or {} for a in record.actions if a.get("action", a.get("name")) in ("deny", "allow")), {}
    )
    inputs = record.inputs or {}
    plan = inputs.get("plan") or {}
    feature = plan.get("feature") or (inputs.get("check") or {}).get("feature")
    return _item(
        record.decision_id,
        record.time,
        "access",
        feature or _feature(record),
        record.outcome,
        str(params.get("reason") or plan.get("reason") or ""),
        rule,
        record.event_id,
    )


def _action_items(record: DecisionRecord, rule: str | None) -> Iterable[dict[str, Any]]:
    seen: set[str] = set()
    for action in record.actions:
        name = str(action.get("action", action.get("name", "")))
        kind = _ACTION_KIND.get(name)
        if kind is None or kind in seen:
            continue
        seen.add(kind)
        params = action.get("params") or {}
        who = f"{action.get('ruleset')}/{action.get('rule')}" if action.get("rule") else rule
        yield _item(
            f"{record.decision_id}:{kind}",
            record.time,
            kind,
            _subject(name, params),
            name,
            f"rule {who} on {record.event}",
            who,
            record.event_id,
        )


def _feature(record: DecisionRecord) -> str | None:
    for values in (record.inputs or {}).values():
        if isinstance(values, dict) and values.get("feature"):
            return str(values["feature"])
    return None


# The parameter of an action that names what it acted on (the template sent, the state set).
_SUBJECT = {"notify": "template", "set_dunning_state": "state", "charge": "amount"}


def _subject(action: str, params: dict[str, Any]) -> str | None:
    key = _SUBJECT.get(action)
    if key is None:
        return None
    return str(params.get(key) or "") or None


def _from_event(event: OutboxEvent) -> dict[str, Any]:
    describe = _EVENT_ITEMS[event.type]
    return _item(event.id, event.time, _EVENT_KIND[event.type], *describe(event, event.properties or {}))


# What an event says as a decision item: (subject, outcome, reason, rule, event_id).
_Described = tuple[Any, str, str, str | None, str | None]


def _paid(event: OutboxEvent, p: dict[str, Any]) -> _Described:
    reason = f"collected {p.get('amount', '')} {p.get('currency', '')}".strip()
    return p.get("invoice_id"), "paid", reason + (f", attempt {p['attempt']}" if p.get("attempt") else ""), None, event.id


def _payment_failed(event: OutboxEvent, p: dict[str, Any]) -> _Described:
    return p.get("invoice_id"), "failed", f"attempt {p.get('attempt')}: {p.get('decline_code')}", None, event.id


def _dunning_changed(event: OutboxEvent, p: dict[str, Any]) -> _Described:
    return "account", str(p.get("to")), f"{p.get('from')} -> {p.get('to')}: {p.get('reason')}", None, p.get("cause")


def _message(event: OutboxEvent, p: dict[str, Any]) -> _Described:
    """A notification sent or failed, and the rule that sent it."""
    reason = f"{p.get('template')} by {p.get('channel')}" + (f" ({p['reason']})" if p.get("reason") else "")
    return p.get("template"), event.type.split(".")[1], reason, p.get("rule_id"), p.get("event_id")


# How each event type of _EVENT_KIND reads as an item.
_EVENT_ITEMS: dict[str, Callable[[OutboxEvent, dict[str, Any]], _Described]] = {
    "payment.succeeded": _paid,
    "invoice.payment_failed": _payment_failed,
    "dunning.state_changed": _dunning_changed,
    "notification.sent": _message,
    "notification.failed": _message,
}


def _item(
    id_: str, time: datetime, kind: str, subject: Any, outcome: str, reason: str, rule: str | None, event_id: str | None
) -> dict[str, Any]:
    return {
        "id": id_,
        "time": time.isoformat().replace("+00:00", "Z"),
        "kind": kind,
        "subject": None if subject is None else str(subject),
        "outcome": outcome,
        "reason": reason,
        "rule": rule,
        "event_id": event_id,
    }


def customer_decisions(
    session: Session, customer_id: str, *, kind: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The customer's decisions, newest first: {id, time, kind, subject, outcome, reason, rule,
    event_id}. `kind` narrows to access, charge, dunning or message."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind: one of {', '.join(KINDS)}")
    items: list[dict[str, Any]] = []
    logged = session.scalars(
        select(DecisionRecord)
        .where(DecisionRecord.customer_id == customer_id)
        .order_by(DecisionRecord.time.desc(), DecisionRecord.pk.desc())
        .limit(limit * 4)
    )
    for record in logged:
        items.extend(i for i in _from_log(record) if kind is None or i["kind"] == kind)
    types = [t for t, k in _EVENT_KIND.items() if kind is None or k == kind]
    events = session.scalars(
        select(OutboxEvent)
        .where(OutboxEvent.customer_id == customer_id, OutboxEvent.type.in_(types))
        .order_by(OutboxEvent.time.desc(), OutboxEvent.seq.desc())
        .limit(limit)
    )
    items.extend(_from_event(e) for e in events)
    items.sort(key=lambda i: i["time"], reverse=True)
    return items[:limit]
