"""The console's reads and writes of the store, through the subsystems' public functions.

Adapters kept here (and named in the report) where a subsystem has no public function yet:
`list_customer_ids` pages through engine.sales' public customer listing.

Drafts are the console's own table. Publishing a checked draft and rolling back are
operator operations (engine/system/operations/draft_publishing.py and rollback.py: they join
sales or the rules runtime to users' audit), and the role is checked by users: the functions
that need them receive `ConsoleOperations` (`ops`, bound in
engine/system/console_operations.py), so this module imports sales alone of the subsystems.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import rules, sales
from engine.catalog import Catalog
from engine.clock import Clock, SystemClock
from engine.console import rulesets
from engine.console.drafts import KINDS, check_draft, checksum, diff
from engine.console.models import Draft
from engine.console.operations import ConsoleOperations
from engine.errors import OperationError
from engine.periods import Period, calendar_period


class ConsoleError(ValueError):
    """Something the console user must fix; the message says what."""


# Drafts --------------------------------------------------------------------------------


def list_drafts(session: Session, kind: str | None = None) -> list[dict[str, Any]]:
    stmt = select(Draft).order_by(Draft.kind, Draft.name)
    if kind:
        stmt = stmt.where(Draft.kind == kind)
    return [
        {
            "kind": d.kind,
            "name": d.name,
            "author": d.author,
            "updated_at": d.updated_at.isoformat(),
            "simulated": d.simulated_checksum == checksum(d.text),
        }
        for d in session.scalars(stmt)
    ]


def get_draft(session: Session, kind: str, name: str) -> Draft | None:
    return session.scalars(select(Draft).where(Draft.kind == kind, Draft.name == name)).first()


def save_draft(
    session: Session, user: dict[str, Any] | None, kind: str, name: str, text: str, *, ops: ConsoleOperations,
    clock: Clock | None = None,
) -> Draft:
    """Save a draft (editors). A draft may be invalid: it is work in progress."""
    user = ops.permitted(user, "edit")
    if not name or not name.strip():
        raise ConsoleError("name: give the draft the catalog's or ruleset's name")
    row = get_draft(session, kind, name)
    now = (clock or SystemClock()).now()
    if row is None:
        row = Draft(kind=kind, name=name.strip(), text=text, author=user["name"], updated_at=now)
        session.add(row)
    else:
        row.text, row.author, row.updated_at = text, user["name"], now
    session.flush()
    return row


def mark_simulated(session: Session, kind: str, name: str, text: str, summary: str) -> None:
    """Record that the draft with exactly this text was simulated."""
    row = get_draft(session, kind, name)
    if row is not None and row.text == text:
        row.simulated_checksum = checksum(text)
        row.simulated_summary = summary


# Published catalogs ----------------------------------------------------------------------


def published_catalogs(session: Session) -> dict[str, dict[str, Any]]:
    """The latest published version of every catalog: name -> version summary."""
    latest: dict[str, dict[str, Any]] = {}
    for v in sales.list_versions(session):
        latest[v["catalog"]] = v  # ordered by catalog, version
    return latest


def published_document(session: Session, name: str, version: int | None = None) -> dict[str, Any] | None:
    try:
        row = sales.get_version(session, name, version)
    except sales.NotFound:
        return None
    return dict(row.document)


def published_catalog(session: Session, name: str, version: int | None = None) -> Catalog | None:
    try:
        row = sales.get_version(session, name, version)
    except sales.NotFound:
        return None
    return sales.catalog_for_version(session, row.id)


def document_yaml(document: dict[str, Any]) -> str:
    """A stored document as YAML text, to start a draft from."""
    import yaml

    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)


def check_stored(session: Session, kind: str, text: str, *, ops: ConsoleOperations) -> Any:
    """`check_draft` against what is live: a ruleset's references are the published catalogs;
    a catalog's features may be granted by the live access rules."""
    if kind == "ruleset":
        return check_draft(kind, text, refs=ops.references(session))
    return check_draft(kind, text, granted=rulesets.features_allowed(rulesets.live_texts(session)[0]))


def draft_diff(session: Session, kind: str, text: str) -> str:
    check = check_draft(kind, text, refs=rules.References())  # the name is all it needs
    if check.document is None or check.name is None:
        return ""
    if kind == "ruleset":
        return rulesets.text_diff(rulesets.published_source(session, check.name), text)
    draft_data = json.loads(json.dumps(check.document.data, default=str))
    return diff(published_document(session, check.name), draft_data)


def publish(
    session: Session,
    user: dict[str, Any] | None,
    kind: str,
    text: str,
    comment: str,
    *,
    accept_warnings: bool = False,
    require_simulation: bool = True,
    ops: ConsoleOperations,
    clock: Clock,
) -> dict[str, Any]:
    """Publish a draft as a new version, recording who, when and why. Nothing is written
    unless every check passes: the role, validation, lint (or accepted warnings), a
    simulation of exactly this text, and a comment."""
    user = ops.permitted(user, "publish")
    if not comment.strip():  # a str (typed; the page's text input)
        raise ConsoleError("comment: say why this version is published")
    if kind not in KINDS:
        raise ConsoleError(f"kind: one of {', '.join(KINDS)}")
    check = check_stored(session, kind, text, ops=ops)
    if check.errors:
        raise ConsoleError(f"the draft has {len(check.errors)} error(s): fix them before publishing")
    if check.warnings and not accept_warnings:
        raise ConsoleError(f"the draft has {len(check.warnings)} lint warning(s): fix them or accept them")
    try:
        if kind == "ruleset":
            # Rulesets are not priced by the what-if simulator: validation, lint and the rules
            # runtime's smoke test (in a subprocess, inside publish_ruleset) stand for it.
            return ops.publish_ruleset(
                session, user, check.name or "ruleset", text, comment, warnings_accepted=len(check.warnings),
                refs=ops.references(session), clock=clock)
        assert check.catalog is not None and check.name is not None
        if require_simulation:
            _require_simulated(session, kind, check.name, text)
        return ops.publish_catalog(session, user, check.name, check.catalog, comment,
                                   warnings_accepted=len(check.warnings), clock=clock)
    except OperationError as exc:
        raise ConsoleError(exc.message) from None


def _require_simulated(session: Session, kind: str, name: str, text: str) -> None:
    """The draft was saved as `text` and simulated as saved."""
    row = get_draft(session, kind, name)
    if row is None or row.text != text or row.simulated_checksum != checksum(text):
        raise ConsoleError("simulate this draft (as saved) before publishing it")


def rollback(
    session: Session,
    user: dict[str, Any] | None,
    name: str,
    to_version: int,
    why: str,
    *,
    kind: str = "catalog",
    ops: ConsoleOperations,
    clock: Clock,
) -> dict[str, Any]:
    """Make `to_version`'s content current again, as a new version (history is never
    rewritten): the operation `billing rollback` and the HTTP route call (`ops.rollback`)."""
    user = ops.permitted(user, "rollback")
    if kind not in KINDS:
        raise ConsoleError(f"kind: one of {', '.join(KINDS)}")
    try:
        return ops.rollback(
            session, "ruleset" if kind == "ruleset" else "catalog", name, to_version, why, actor=user, clock=clock
        )
    except OperationError as exc:
        raise ConsoleError(exc.message if exc.field in ("name", "to_version") else str(exc)) from None


def history(session: Session, name: str, kind: str = "catalog") -> list[dict[str, Any]]:
    """Every version of a catalog or ruleset, newest first, with its diff against the one before."""
    if kind == "ruleset":
        return rulesets.ruleset_history(session, name)
    versions = sales.list_versions(session, name)
    out = []
    previous: dict[str, Any] | None = None
    for v in versions:
        doc = published_document(session, name, v["version"])
        v = dict(v)
        v["diff"] = diff(previous, doc, before=f"v{v['version'] - 1}", after=f"v{v['version']}") if previous else ""
        out.append(v)
        previous = doc
    return list(reversed(out))


# Customers (for simulations and the Inspect page) --------------------------------------------


def customer_labels(session: Session, limit: int = 5000) -> dict[str, str]:
    """Each customer's id -> "Name · email", for pickers that show people, not ids."""
    from engine import sales

    out: dict[str, str] = {}
    page = 1
    while len(out) < limit:
        items = sales.list_customers(session, page=page, per_page=1000)["items"]
        out.update((c["id"], f"{c.get('name') or c['id']} · {c.get('email') or 'no email'}") for c in items)
        if len(items) < 1000:
            break
        page += 1
    return dict(list(out.items())[:limit])


def list_customer_ids(session: Session, limit: int = 10_000) -> list[str]:
    """Customer ids through sales' public listing, page by page."""
    from engine import sales

    ids: list[str] = []
    page = 1
    while len(ids) < limit:
        found = sales.list_customers(session, page=page, per_page=1000)
        items = found["items"]
        ids.extend(c["id"] for c in items)
        if len(items) < 1000:
            break
        page += 1
    return ids[:limit]


def last_full_month(today: date) -> Period:
    first = today.replace(day=1)
    prev = date(first.year - 1, 12, 1) if first.month == 1 else date(first.year, first.month - 1, 1)
    return calendar_period("month", prev)


def _cohort_row(session: Session, cid: str, period: Period) -> dict[str, Any] | None:
    """The customer's plan and real usage of `period` (None: no live subscription)."""
    found = sales.customer_plan(session, cid)
    if found is None:
        return None
    sub, catalog, plan = found
    customer = sales.get_customer(session, cid)
    metrics = {p.metric for p in plan.prices if p.metric}
    metrics |= {f.metric for fid, f in catalog.features.items() if f.metric and fid in plan.entitlements}
    return {
        "customer_id": cid,
        "plan": sub.get("plan") or plan.id,
        "quantity": sub.get("quantity") or 1,
        "segment": customer.get("segment") or "",
        "country": customer.get("country") or "",
        "usage": {m: sales.usage_in_period(session, cid, catalog, m, period) for m in sorted(metrics)},
    }


def store_records(session: Session, now: datetime, *, limit: int = 10_000) -> tuple[list[dict[str, Any]], list[str]]:
    """The store's customers with a live subscription and their real usage of the last full
    calendar month, as cohort rows; plus notes about customers left out."""
    period = last_full_month(now.date())
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for cid in list_customer_ids(session, limit):
        row = _cohort_row(session, cid, period)
        if row is not None:
            rows.append(row)
    if not rows:
        notes.append("the store has no customers with a live subscription")
    return rows, notes
