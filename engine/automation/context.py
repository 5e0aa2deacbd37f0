"""The context a rule's `when` reads (FORMATS §2): event.*, customer.*, subscription.*,
invoice.*, account.*, usage.*, and for access events feature / reason / offer.

Built from the owners' public query functions (engine.sales, engine.dunning). For the
scheduler's `for_each` sweeps over many subjects, `subject_pages` reads the same facts in
bulk, read-only, so a tick over 100,000 accounts is a handful of queries per page; a subject
whose rules hold gets its full context from the public functions before anything acts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from engine import dunning, sales
from engine.store import Base

# Sales' invoice states as the rules name them: a finalized invoice not yet paid is `open`.
INVOICE_STATUS = {"finalized": "open"}
_MONEY_FIELDS = ("subtotal", "discount", "tax", "total", "credit_applied", "amount_due", "amount_paid")
LIVE_SUBSCRIPTIONS = ("trialing", "active")


def parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def days_between(start: datetime | date | None, now: datetime) -> int:
    """Whole calendar days (UTC) from `start` to `now`: day 0 is the day of issue."""
    if start is None:
        return 0
    first = start.astimezone(UTC).date() if isinstance(start, datetime) else start
    return (now.astimezone(UTC).date() - first).days


def invoice_context(raw: Mapping[str, Any], now: datetime, extra: Mapping[str, Any] | None = None) \
        -> dict[str, Any]:
    """An invoice as rules read it: `status` open for an unpaid finalized invoice (the sales
    state stays in `state`), amounts as numbers, `days_overdue` counted from issue."""
    inv = dict(raw)
    inv.pop("lines", None)
    inv.pop("credit_notes", None)
    state = str(inv.get("status") or "")
    inv["state"] = state
    inv["status"] = INVOICE_STATUS.get(state, state)
    for key in _MONEY_FIELDS:
        if inv.get(key) is not None:
            inv[key] = Decimal(str(inv[key]))
    issued = parse_time(inv.get("issued_at"))
    inv["days_overdue"] = days_between(issued, now) if inv["status"] == "open" else 0
    inv["days_since_issue"] = days_between(issued, now) if issued else None
    for key, value in (extra or {}).items():
        if value is not None and key not in ("id",):
            inv.setdefault(key, value)
    return inv


def _plan_name(session: Session, sub: Mapping[str, Any]) -> str:
    try:
        catalog = sales.catalog_for_version(session, int(sub["catalog_version_id"]))
        return str(catalog.plan(str(sub["plan"])).name)
    except Exception:  # an old or missing catalog version: the id is still a name
        return str(sub.get("plan") or "")


def subscription_context(session: Session, sub: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(sub)
    out.pop("document", None)
    out["plan_name"] = _plan_name(session, sub)
    return out


def customer_context(customer: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(customer)
    attributes = out.get("attributes") or {}
    out.setdefault("locale", attributes.get("locale") or "en")
    return out


def build_context(session: Session, envelope: Mapping[str, Any], now: datetime, *,
                  invoice: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The context of one event, from the public query functions of sales and dunning
    (`invoice`: the invoice already read, when the caller has it)."""
    props = dict(envelope.get("properties") or {})
    etype = str(envelope.get("type") or "")
    customer_id = envelope.get("customer_id") or props.get("customer_id")
    ctx: dict[str, Any] = {
        "event": {"id": envelope.get("id"), "type": envelope.get("type"),
                  "customer_id": customer_id, "time": envelope.get("time"), "properties": props},
        "customer": {}, "subscription": {}, "invoice": {}, "usage": {},
        "account": {"dunning_state": dunning.ACTIVE},
    }
    if customer_id:
        try:
            ctx["customer"] = customer_context(sales.get_customer(session, str(customer_id)))
        except sales.NotFound:
            pass
        state = dunning.get_state(session, str(customer_id))
        ctx["account"] = {"dunning_state": state, "state": state}
    nested: Mapping[str, Any] = props["invoice"] if isinstance(props.get("invoice"), Mapping) else {}
    invoice_id = props.get("invoice_id") or nested.get("id")
    if not invoice_id and etype.startswith("invoice.") and props.get("id"):
        invoice_id = props.get("id")
    if invoice_id:
        raw: Mapping[str, Any] | None = invoice
        if raw is None:
            try:
                raw = sales.get_invoice(session, str(invoice_id))
            except sales.NotFound:
                raw = None
        if raw is not None:
            extra = {"attempt": props.get("attempt", nested.get("attempt")),
                     "decline_code": props.get("decline_code"),
                     "retryable": props.get("retryable")}
            ctx["invoice"] = invoice_context(raw, now, extra)
    sub_id = props.get("subscription_id") or ctx["invoice"].get("subscription_id")
    if not sub_id and etype.startswith("subscription.") and props.get("id"):
        sub_id = props.get("id")
    sub: dict[str, Any] | None = None
    if sub_id:
        try:
            sub = sales.get_subscription(session, str(sub_id))
        except sales.NotFound:
            sub = None
    elif ctx["customer"]:
        live = sales.active_subscription(session, str(customer_id))
        sub = sales.get_subscription(session, live.id) if live is not None else None
    if sub is not None:
        ctx["subscription"] = subscription_context(session, sub)
    if etype.startswith("access."):
        for key in ("feature", "reason", "offer", "plan", "limit", "used", "remaining"):
            if key in props:
                ctx[key] = props[key]
    if etype == "usage.threshold_reached" and props.get("metric"):
        ctx["usage"] = {str(props["metric"]): props.get("used")}
    return ctx


def subject_context(session: Session, for_each: str, subject_id: str, now: datetime) \
        -> dict[str, Any] | None:
    """The full context of one scheduled-rule subject (customer, subscription or invoice)."""
    if for_each == "invoice":
        try:
            found = sales.get_invoice(session, subject_id)
        except sales.NotFound:
            return None
        envelope = {"id": None, "type": None, "customer_id": found.get("customer_id"),
                    "time": now.isoformat(), "properties": {"invoice_id": subject_id}}
        ctx = build_context(session, envelope, now, invoice=found)
        ctx["event"] = {"type": "schedule", "time": now.isoformat()}
        return ctx
    elif for_each == "subscription":
        try:
            sub = sales.get_subscription(session, subject_id)
        except sales.NotFound:
            return None
        envelope = {"id": None, "type": None, "customer_id": sub.get("customer_id"),
                    "time": now.isoformat(), "properties": {"subscription_id": subject_id}}
    else:
        envelope = {"id": None, "type": None, "customer_id": subject_id, "time": now.isoformat(),
                    "properties": {}}
    ctx = build_context(session, envelope, now)
    ctx["event"] = {"type": "schedule", "time": now.isoformat()}
    return ctx


# -- bulk reads for the scheduler's sweeps -------------------------------------------------


def _table(name: str) -> Table:
    table = Base.metadata.tables.get(name)
    if table is None:  # the owner's models are imported with engine.sales / engine.dunning
        raise RuntimeError(f"table {name} is not on the metadata")
    return table


def subject_pages(session: Session, for_each: str, now: datetime, *, page: int = 2000) \
        -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """(subject id, light context) in pages, keyset-ordered by id: what a scheduled rule's
    condition needs (invoice, subscription, customer basics and the dunning state). Read only.
    Subjects: open invoices; live subscriptions; every customer."""
    invoices, subs = _table("sales_invoices"), _table("sales_subscriptions")
    customers, accounts = _table("sales_customers"), _table("dunning_accounts")
    if for_each == "invoice":
        base = select(invoices).where(invoices.c.status == "finalized")
        key = invoices.c.id
    elif for_each == "subscription":
        base = select(subs).where(subs.c.status.in_(LIVE_SUBSCRIPTIONS))
        key = subs.c.id
    elif for_each == "customer":
        base = select(customers)
        key = customers.c.id
    else:
        raise ValueError(f"for_each: {for_each!r} is customer, subscription or invoice")
    after = ""
    while True:
        rows = [dict(r._mapping) for r in session.execute(
            base.where(key > after).order_by(key).limit(page))]
        if not rows:
            return
        after = str(rows[-1]["id"])
        cids = sorted({r["customer_id"] if for_each != "customer" else r["id"] for r in rows})
        states = dict(session.execute(select(accounts.c.customer_id, accounts.c.state)
                                      .where(accounts.c.customer_id.in_(cids))).all())
        if for_each == "customer":
            custs = {r["id"]: r for r in rows}
        else:
            custs = {}
            for row in session.execute(select(customers).where(customers.c.id.in_(cids))):
                found = dict(row._mapping)
                custs[found["id"]] = found
        out = []
        for r in rows:
            cid = r["id"] if for_each == "customer" else r["customer_id"]
            state = states.get(cid, dunning.ACTIVE)
            c = custs.get(cid) or {}
            ctx: dict[str, Any] = {
                "event": {"type": "schedule", "time": now.isoformat()},
                "customer": _light_customer(c), "account": {"dunning_state": state, "state": state},
                "invoice": {}, "subscription": {}, "usage": {},
            }
            if for_each == "invoice":
                ctx["invoice"] = _light_invoice(r, now)
            elif for_each == "subscription":
                ctx["subscription"] = _light_subscription(r)
            out.append((str(r["id"]), ctx))
        yield out


def _light_customer(c: Mapping[str, Any]) -> dict[str, Any]:
    if not c:
        return {}
    return {"id": c.get("id"), "name": c.get("name"), "email": c.get("email"),
            "country": c.get("country"), "segment": c.get("segment"),
            "tags": list(c.get("tags") or []), "attributes": dict(c.get("attributes") or {}),
            "timezone": c.get("timezone")}


def _light_invoice(r: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    state = str(r["status"])
    status = INVOICE_STATUS.get(state, state)
    issued = r.get("issued_at")
    if isinstance(issued, datetime) and issued.tzinfo is None:
        issued = issued.replace(tzinfo=UTC)
    out: dict[str, Any] = {
        "id": r["id"], "number": r.get("number"), "customer_id": r["customer_id"],
        "subscription_id": r.get("subscription_id"), "status": status, "state": state,
        "reason": r.get("reason"), "currency": r.get("currency"), "plan": r.get("plan_id"),
        "days_overdue": days_between(issued, now) if status == "open" else 0,
        "days_since_issue": days_between(issued, now) if issued else None,
        "issued_at": issued.isoformat() if isinstance(issued, datetime) else None,
    }
    for key in _MONEY_FIELDS:
        if r.get(key) is not None:
            out[key] = Decimal(str(r[key]))
    return out


def _light_subscription(r: Mapping[str, Any]) -> dict[str, Any]:
    def d(value: Any) -> Any:
        return value.isoformat() if isinstance(value, (date, datetime)) else value

    return {"id": r["id"], "customer_id": r["customer_id"], "plan": r.get("plan_id"),
            "status": r.get("status"), "interval": r.get("interval"),
            "quantity": Decimal(str(r["quantity"])) if r.get("quantity") is not None else None,
            "trial_end": d(r.get("trial_end")), "start_date": d(r.get("start_date")),
            "current_period": {"start": d(r.get("period_start")), "end": d(r.get("period_end"))},
            "cancel_at_period_end": r.get("cancel_at_period_end")}
