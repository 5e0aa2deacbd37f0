"""The context a rule's `when` reads (FORMATS §2): event.*, customer.*, subscription.*,
invoice.*, account.*, usage.*, and for access events feature / reason / offer.

Built from the owners' public query functions (engine.sales, engine.dunning). For the
scheduler's `for_each` sweeps over many subjects, `subject_contexts` builds the same
context `subject_context` builds for one, a page of subjects in a few queries (through the
owners' bulk functions, never their tables).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from engine import dunning, sales

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
    customer: Mapping[str, Any] | None = None
    state = dunning.ACTIVE
    if customer_id:
        try:
            customer = sales.get_customer(session, str(customer_id))
        except sales.NotFound:
            customer = None
        state = dunning.get_state(session, str(customer_id))
    invoice_id = event_invoice_id(envelope)
    raw: Mapping[str, Any] | None = None
    if invoice_id:
        raw = invoice
        if raw is None:
            try:
                raw = sales.get_invoice(session, str(invoice_id))
            except sales.NotFound:
                raw = None
    sub_id = props.get("subscription_id") or (raw or {}).get("subscription_id")
    if not sub_id and etype.startswith("subscription.") and props.get("id"):
        sub_id = props.get("id")
    sub: dict[str, Any] | None = None
    if sub_id:
        try:
            sub = sales.get_subscription(session, str(sub_id))
        except sales.NotFound:
            sub = None
    elif customer:
        live = sales.active_subscription(session, str(customer_id))
        sub = sales.get_subscription(session, live.id) if live is not None else None
    return assemble_context(envelope, now, customer=customer, state=state, invoice=raw,
                            subscription=subscription_context(session, sub) if sub else None)


def event_invoice_id(envelope: Mapping[str, Any]) -> Any:
    """The invoice an event is about, if any."""
    props = dict(envelope.get("properties") or {})
    nested: Mapping[str, Any] = props["invoice"] if isinstance(props.get("invoice"), Mapping) else {}
    invoice_id = props.get("invoice_id") or nested.get("id")
    if not invoice_id and str(envelope.get("type") or "").startswith("invoice.") and props.get("id"):
        invoice_id = props.get("id")
    return invoice_id


def assemble_context(envelope: Mapping[str, Any], now: datetime, *,
                     customer: Mapping[str, Any] | None, state: str,
                     invoice: Mapping[str, Any] | None,
                     subscription: Mapping[str, Any] | None) -> dict[str, Any]:
    """The context of one event from what was looked up for it (`build_context` reads the
    database; `billing lint` passes samples): both build it here, alike."""
    props = dict(envelope.get("properties") or {})
    etype = str(envelope.get("type") or "")
    customer_id = envelope.get("customer_id") or props.get("customer_id")
    ctx: dict[str, Any] = {
        "event": {"id": envelope.get("id"), "type": envelope.get("type"),
                  "customer_id": customer_id, "time": envelope.get("time"), "properties": props},
        "customer": customer_context(customer) if customer else {},
        "subscription": dict(subscription) if subscription else {}, "invoice": {}, "usage": {},
        "account": {"dunning_state": state, "state": state} if customer_id
        else {"dunning_state": state},
    }
    nested: Mapping[str, Any] = props["invoice"] if isinstance(props.get("invoice"), Mapping) else {}
    if invoice is not None:
        extra = {"attempt": props.get("attempt", nested.get("attempt")),
                 "decline_code": props.get("decline_code"),
                 "retryable": props.get("retryable")}
        ctx["invoice"] = invoice_context(invoice, now, extra)
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


# -- many subjects at once (the scheduler's sweeps) ------------------------------------------


def subject_contexts(session: Session, for_each: str, rows: Sequence[Mapping[str, Any]],
                     now: datetime, *, lock: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """The contexts of many subjects (the dicts `sales.scan` or `sales.*_by_id` return), as
    `subject_context` builds one, in a few queries: their customers, subscriptions and
    dunning states. `lock`: the dunning records stay locked until the transaction ends."""
    if for_each not in ("invoice", "subscription", "customer"):
        raise ValueError(f"for_each: {for_each!r} is customer, subscription or invoice")
    cids = [str(r["id"] if for_each == "customer" else r["customer_id"]) for r in rows]
    customers = {str(r["id"]): r for r in rows} if for_each == "customer" \
        else sales.customers_by_id(session, cids)
    states = dunning.states_of(session, cids, lock=lock)
    if for_each == "invoice":
        subs = sales.subscriptions_by_id(session, [str(r["subscription_id"]) for r in rows
                                                   if r.get("subscription_id")])
    elif for_each == "customer":
        subs = sales.live_subscriptions(session, cids)
    else:
        subs = {str(r["id"]): dict(r) for r in rows}
    out = []
    for row, cid in zip(rows, cids, strict=True):
        state = states[cid]
        customer = customers.get(cid)
        ctx: dict[str, Any] = {
            "event": {"type": "schedule", "time": now.isoformat()},
            "customer": customer_context(customer) if customer else {},
            "subscription": {}, "invoice": {}, "usage": {},
            "account": {"dunning_state": state, "state": state},
        }
        sub_key = row.get("subscription_id") if for_each == "invoice" else \
            (cid if for_each == "customer" else row["id"])
        sub = subs.get(str(sub_key)) if sub_key else None
        if sub is not None:
            ctx["subscription"] = subscription_context(session, sub)
        if for_each == "invoice":
            ctx["invoice"] = invoice_context(row, now)
        out.append((str(row["id"]), ctx))
    return out


def subjects_by_id(session: Session, for_each: str, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The subjects' current rows (those that still exist), in the order of `ids`."""
    if for_each == "invoice":
        found = sales.invoices_by_id(session, ids)
    elif for_each == "subscription":
        found = sales.subscriptions_by_id(session, ids)
    elif for_each == "customer":
        found = sales.customers_by_id(session, ids)
    else:
        raise ValueError(f"for_each: {for_each!r} is customer, subscription or invoice")
    return [found[i] for i in ids if i in found]
