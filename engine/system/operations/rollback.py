"""Make an earlier version of a catalog or ruleset current again, as a new version (history
only grows), with the audit entry saying who and why (`billing rollback`,
`POST /v1/catalogs/{name}/rollback`, `POST /v1/rulesets/{name}/rollback`, the console)."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy.orm import Session

from engine import rules, sales
from engine.clock import Clock
from engine.errors import OperationError
from engine.users import record_audit

Kind = Literal["catalog", "ruleset"]


def rollback(session: Session, kind: Kind, name: str, to_version: int, why: str, *, actor: dict[str, Any],
             clock: Clock) -> dict[str, Any]:
    """`actor` is the audit's user ({"name", "role"}; the role must allow a rollback).
    Returns the new version, the one restored and the audit entry."""
    if not why or not why.strip():
        raise OperationError("why", "say why you roll back")
    current = _current(session, kind, name)
    if to_version == current:
        raise OperationError("to_version", f"version {to_version} is already the current one", "conflict")
    comment = f"rollback to v{to_version}: {why.strip()}"
    if kind == "ruleset":
        _ruleset_version(session, name, to_version)
        version = rules.rollback_ruleset(session, name, to_version, actor["name"], comment, clock=clock).version
    else:
        document = dict(_catalog_version(session, name, to_version).document)
        version = sales.publish_catalog(session, document, actor["name"], comment, clock=clock).version
    audit = record_audit(session, actor, "rollback", kind, name, why, version=version,
                         details={"restored": to_version, "replaced": current}, clock=clock)
    return {"kind": kind, "name": name, "version": version, "restored": to_version, "audit": audit}


def _current(session: Session, kind: Kind, name: str) -> int:
    if kind == "ruleset":
        current = rules.live_versions(session).get(name)
        if current is None:
            raise OperationError("name", f"ruleset {name!r} has no published version", "not_found")
        return current
    return int(_catalog_version(session, name, None, field="name").version)


def _catalog_version(session: Session, name: str, version: int | None, field: str = "to_version") -> Any:
    try:
        return sales.get_version(session, name, version)
    except sales.NotFound:
        what = f"catalog {name!r} has no version {version}" if version else f"catalog {name!r} has no published version"
        raise OperationError(field, what, "not_found") from None


def _ruleset_version(session: Session, name: str, version: int) -> None:
    try:
        rules.ruleset_version(session, name, version)
    except rules.RulesError:
        raise OperationError("to_version", f"ruleset {name!r} has no version {version}", "not_found") from None
