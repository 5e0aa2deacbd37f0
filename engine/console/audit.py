"""The audit as the Audit & users page shows it: every publish, rollback and user change,
newest first, with who, when and why, and for a publish or rollback the diff it made. The
audit is the users subsystem's; a subscription's customer is read through `customer_of` (the
page passes sales' `get_customer`), so this module imports users alone."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from engine import errors, rules
from engine.console.store import history
from engine.users import list_audit

ACTION_WORDS = {
    "publish": "published",
    "rollback": "rolled back",
    "user.add": "added user",
    "user.role": "changed the role of",
    "user.disable": "disabled",
    "user.enable": "enabled",
    "change_plan": "changed the plan of",
    "apply_coupon": "applied a coupon to",
    "cancel": "cancelled",
    "pause": "paused",
    "resume": "resumed",
    "grant_credit": "granted credit to",
    "set_budget": "set the spend budget of",
    "delete_budget": "removed the spend budget of",
}


def _diffs(session: Session, kind: str, name: str) -> dict[int, str]:
    try:
        return {int(v["version"]): str(v.get("diff") or "") for v in history(session, name, kind)}
    except (rules.RulesError, errors.NotFound):  # gone from the store: the entry still shows
        return {}


# (session, customer id) -> the customer (its name and email); raises errors.NotFound.
CustomerOf = Callable[[Session, str], Mapping[str, Any]]


def audit_entries(session: Session, customer_of: CustomerOf, limit: int = 200) -> list[dict[str, Any]]:
    """Entries with `summary` (a sentence) and `diff` (publish and rollback; '' otherwise)."""
    entries = list_audit(session, limit=limit)
    cache: dict[tuple[str, str], dict[int, str]] = {}
    out = []
    for e in entries:
        diff = ""
        if e["kind"] in ("catalog", "ruleset") and e["version"] is not None:
            key = (e["kind"], e["target"])
            if key not in cache:
                cache[key] = _diffs(session, *key)
            diff = cache[key].get(int(e["version"]), "")
        details = e.get("details") or {}
        what = f"{e['kind']} {e['target']}" + (f" v{e['version']}" if e["version"] is not None else "")
        if e["kind"] == "user":
            what = e["target"]
        elif e["kind"] == "subscription":  # the customer's name, not the subscription's id
            what = _subscription_of(session, customer_of, details.get("customer"))
        elif e["kind"] == "customer":  # a wallet or budget change: the customer's name
            what = _customer_name(session, customer_of, e["target"])
        restored = details.get("restored")
        tail = f" (content of v{restored})" if restored else ""
        summary = f"{e['user']} ({e['role']}) {ACTION_WORDS.get(e['action'], e['action'])} {what}{tail}: {e['why']}"
        out.append({**e, "summary": summary, "diff": diff})
    return out


def _subscription_of(session: Session, customer_of: CustomerOf, customer_id: str | None) -> str:
    name = _customer_name(session, customer_of, customer_id)
    return f"the subscription of {name}" if name != "a customer" else "a subscription"


def _customer_name(session: Session, customer_of: CustomerOf, customer_id: str | None) -> str:
    try:
        customer = customer_of(session, str(customer_id)) if customer_id else None
    except errors.NotFound:
        customer = None
    return str(customer.get("name") or customer.get("email") or "a customer") if customer else "a customer"
