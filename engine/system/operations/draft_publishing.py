"""A console user's publish of a checked draft: a new catalog or ruleset version, allowed by
the user's role and recorded in the audit with who, why and how many lint warnings were
accepted. The console (engine/console/store.py) checks the draft first (validation, lint,
the simulation of exactly this text); here the write, because it joins sales or the rules
runtime to users' audit: the console's modules import one subsystem each at most."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engine import rules, sales
from engine.catalog import Catalog
from engine.clock import Clock
from engine.documents import DocumentError, load_yaml_text
from engine.errors import OperationError
from engine.users import record_audit, require


def publish_catalog_draft(session: Session, user: dict[str, Any], name: str, catalog: Catalog, comment: str, *,
                          warnings_accepted: int, clock: Clock) -> dict[str, Any]:
    """The catalog as a new version (a conflict when the latest has exactly this content)."""
    require(user, "publish")
    published = sales.publish_catalog(session, catalog, user["name"], comment.strip(), clock=clock)
    if not published.created:
        raise _unchanged(published.version)
    audit = record_audit(session, user, "publish", "catalog", name, comment, version=published.version,
                         details={"checksum": published.checksum, "warnings_accepted": warnings_accepted},
                         clock=clock)
    return {"version": published.version, "catalog": name, "name": name, "audit": audit}


def publish_ruleset_draft(session: Session, user: dict[str, Any], name: str, text: str, comment: str, *,
                          warnings_accepted: int, refs: rules.References, clock: Clock) -> dict[str, Any]:
    """Through `engine.rules.publish_ruleset`, as `billing publish` does: validated against
    `refs` (the published catalogs), compiled and smoke-tested in a subprocess, stored with who
    and why. Rulesets are not priced by the what-if simulator: that stands for it."""
    require(user, "publish")
    try:
        doc = load_yaml_text(text, f"{name}.yaml")
        published = rules.publish_ruleset(session, doc, user["name"], comment.strip(), refs=refs, clock=clock)
    except DocumentError as exc:
        raise OperationError("ruleset", "the rules runtime refused it: " + "; ".join(p.message for p in exc.problems),
                             problems=[str(p) for p in exc.problems]) from None
    if not published.created:
        raise _unchanged(published.version)
    audit = record_audit(session, user, "publish", "ruleset", published.ruleset, comment, version=published.version,
                         details={"checksum": published.checksum, "warnings_accepted": warnings_accepted},
                         clock=clock)
    return {"version": published.version, "ruleset": published.ruleset, "name": published.ruleset, "audit": audit}


def _unchanged(version: int) -> OperationError:
    return OperationError("text", f"nothing to publish: version {version} already has exactly this content",
                          "conflict")
