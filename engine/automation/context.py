"""The context a rule's `when` reads (FORMATS §2): event.*, customer.*, subscription.*,
invoice.*, account.*, usage.*, and for access events feature / reason / offer.

Built from the owners' records (`ports.Records`: sales' and dunning's public queries, bound
by engine.system). For the scheduler's `for_each` sweeps over many subjects,
`subject_contexts` builds the same context `subject_context` builds for one, a page of
subjects in a few queries (through the owners' bulk reads, never their tables).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from engine.automation.ports import Record, Records

# Sales' invoice states as the rules name them: a finalized invoice not yet paid is `open`.
INVOICE_STATUS = {"finalized": "open"}
_MONEY_FIELDS = ("subtotal", "discount", "tax", "total", "credit_applied", "amount_due", "amount_paid")
LIVE_SUBSCRIPTIONS = ("trialing", "active")
SUBJECTS = ("invoice", "subscription", "customer")


def parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def context_customer_id(ctx: Mapping[str, Any]) -> str:
    """The customer a context is about: its customer's, or its event's ("": none)."""
    return str(ctx.get("customer", {}).get("id") or ctx.get("event", {}).get("customer_id") or "")


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
        if value is not None:
            inv.setdefault(key, value)
    return inv


def subscription_context(records: Records, session: Session, sub: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(sub)
    out.pop("document", None)
    out["plan_name"] = records.plan_name(session, sub)
    return out


def customer_context(customer: Mapping[str, Any] | None) -> dict[str, Any]:
    """The customer as rules read it, with a locale ({}: none)."""
    if not customer:
        return {}
    out = dict(customer)
    attributes = out.get("attributes") or {}
    out.setdefault("locale", attributes.get("locale") or "en")
    return out


def build_context(records: Records, session: Session, envelope: Mapping[str, Any], now: datetime, *,
                  invoice: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The context of one event, from the owners' records (`invoice`: the invoice already
    read, when the caller has it)."""
    props = dict(envelope.get("properties", {}))  # an envelope's properties: a dict (Envelope)
    customer_id = envelope.get("customer_id") or props.get("customer_id")
    customer, state = None, records.default_state  # an event about no customer
    if customer_id:
        customer = records.customer(session, str(customer_id))
        state = records.dunning_state(session, str(customer_id))
    invoice_id = event_invoice_id(envelope)
    raw = None
    if invoice_id:
        raw = invoice if invoice is not None else records.invoice(session, str(invoice_id))
    sub = _event_subscription(records, session, envelope, raw, str(customer_id) if customer else None)
    return assemble_context(envelope, now, customer=customer, state=state, invoice=raw,
                            subscription=subscription_context(records, session, sub) if sub else None)


def _event_subscription(records: Records, session: Session, envelope: Mapping[str, Any],
                        invoice: Mapping[str, Any] | None, customer_id: str | None) -> Record | None:
    """The subscription an event is about: named by it or by its invoice, else the live one
    of its customer (`customer_id`: None when the customer is unknown)."""
    props = envelope.get("properties", {})
    sub_id = props.get("subscription_id") or (invoice or {}).get("subscription_id") or \
        _own_id(envelope, "subscription.")
    if sub_id:
        return records.subscription(session, str(sub_id))
    return records.live_subscription(session, customer_id) if customer_id else None


def _own_id(envelope: Mapping[str, Any], prefix: str) -> Any:
    """The id in an event about the thing itself (`invoice.*`, `subscription.*`)."""
    return envelope.get("properties", {}).get("id") if str(envelope.get("type") or "").startswith(prefix) else None


def _nested_invoice(props: Mapping[str, Any]) -> Mapping[str, Any]:
    nested = props.get("invoice")
    return nested if isinstance(nested, Mapping) else {}


def event_invoice_id(envelope: Mapping[str, Any]) -> Any:
    """The invoice an event is about, if any."""
    props = dict(envelope.get("properties", {}))  # an envelope's properties: a dict (Envelope)
    return props.get("invoice_id") or _nested_invoice(props).get("id") or _own_id(envelope, "invoice.")


# What an access event's context carries beside the customer (the feature, the reason, ...).
_ACCESS_KEYS = ("feature", "reason", "offer", "plan", "limit", "used", "remaining")


def assemble_context(envelope: Mapping[str, Any], now: datetime, *,
                     customer: Mapping[str, Any] | None, state: str,
                     invoice: Mapping[str, Any] | None,
                     subscription: Mapping[str, Any] | None) -> dict[str, Any]:
    """The context of one event from what was looked up for it (`build_context` reads the
    database; `billing lint` passes samples): both build it here, alike."""
    props = dict(envelope.get("properties", {}))  # an envelope's properties: a dict (Envelope)
    etype = str(envelope.get("type") or "")
    customer_id = envelope.get("customer_id") or props.get("customer_id")
    account = {"dunning_state": state, "state": state} if customer_id else {"dunning_state": state}
    ctx: dict[str, Any] = {
        "event": {"id": envelope.get("id"), "type": envelope.get("type"),
                  "customer_id": customer_id, "time": envelope.get("time"), "properties": props},
        "customer": customer_context(customer),
        "subscription": dict(subscription) if subscription else {}, "invoice": {}, "usage": {},
        "account": account,
    }
    if invoice is not None:
        extra = {"attempt": props.get("attempt", _nested_invoice(props).get("attempt")),
                 "decline_code": props.get("decline_code"), "retryable": props.get("retryable")}
        ctx["invoice"] = invoice_context(invoice, now, extra)
    if etype.startswith("access."):
        ctx.update({key: props[key] for key in _ACCESS_KEYS if key in props})
    if etype == "usage.threshold_reached" and props.get("metric"):
        ctx["usage"] = {str(props["metric"]): props.get("used")}
    return ctx


def subject_context(records: Records, session: Session, for_each: str, subject_id: str, now: datetime) \
        -> dict[str, Any] | None:
    """The full context of one scheduled-rule subject (customer, subscription or invoice)."""
    found: Record | None = {"customer_id": subject_id}
    props: dict[str, Any] = {}
    if for_each in ("invoice", "subscription"):
        found = records.invoice(session, subject_id) if for_each == "invoice" \
            else records.subscription(session, subject_id)
        props = {f"{for_each}_id": subject_id}
    if found is None:
        return None
    envelope = {"id": None, "type": None, "customer_id": found.get("customer_id"),
                "time": now.isoformat(), "properties": props}
    ctx = build_context(records, session, envelope, now, invoice=found if for_each == "invoice" else None)
    ctx["event"] = {"type": "schedule", "time": now.isoformat()}
    return ctx


# -- many subjects at once (the scheduler's sweeps) ------------------------------------------


def subject_contexts(records: Records, session: Session, for_each: str, rows: Sequence[Mapping[str, Any]],
                     now: datetime, *, lock: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """The contexts of many subjects (the rows `Records.scan` or `subjects_by_id` return), as
    `subject_context` builds one, in a few queries: their customers, subscriptions and
    dunning states. `lock`: the dunning records stay locked until the transaction ends."""
    if for_each not in SUBJECTS:
        raise ValueError(f"for_each: {for_each!r} is customer, subscription or invoice")
    cids = [str(r["id"] if for_each == "customer" else r["customer_id"]) for r in rows]
    customers = {str(r["id"]): r for r in rows} if for_each == "customer" else records.customers(session, cids)
    states = records.dunning_states(session, cids, lock=lock)
    subs, sub_keys = _subscriptions_of(records, session, for_each, rows, cids)
    out = []
    for row, cid, sub_key in zip(rows, cids, sub_keys, strict=True):
        customer = customers.get(cid)
        sub = subs.get(str(sub_key)) if sub_key else None
        ctx: dict[str, Any] = {
            "event": {"type": "schedule", "time": now.isoformat()},
            "customer": customer_context(customer),
            "subscription": subscription_context(records, session, sub) if sub is not None else {},
            "invoice": invoice_context(row, now) if for_each == "invoice" else {}, "usage": {},
            "account": {"dunning_state": states[cid], "state": states[cid]},
        }
        out.append((str(row["id"]), ctx))
    return out


def _subscriptions_of(records: Records, session: Session, for_each: str, rows: Sequence[Mapping[str, Any]],
                      cids: list[str]) -> tuple[Mapping[str, Mapping[str, Any]], list[Any]]:
    """The subjects' subscriptions, and the key of each subject's in them: an invoice's own,
    a customer's live one, a subscription itself."""
    if for_each == "invoice":
        keys = [r.get("subscription_id") for r in rows]
        return records.subscriptions(session, [str(k) for k in keys if k]), keys
    if for_each == "customer":
        return records.live_subscriptions(session, cids), list(cids)
    return {str(r["id"]): dict(r) for r in rows}, [r["id"] for r in rows]


def subjects_by_id(records: Records, session: Session, for_each: str, ids: Sequence[str]) -> list[Record]:
    """The subjects' current rows (those that still exist), in the order of `ids`."""
    if for_each not in SUBJECTS:
        raise ValueError(f"for_each: {for_each!r} is customer, subscription or invoice")
    read = {"invoice": records.invoices, "subscription": records.subscriptions, "customer": records.customers}
    found = read[for_each](session, ids)
    return [found[i] for i in ids if i in found]
