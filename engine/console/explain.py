""""Why" in plain sentences: why an invoice line has its amount, why access was denied, why a
message was sent or the dunning state changed. Pure functions over what the sales read
functions and the decision log return; money is written with thousands separators."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

MODELS = {
    "flat": "a flat fee", "per_unit": "per unit", "graduated": "graduated tiers (each tier at its own price)",
    "volume": "volume tiers (every unit at the price of the tier the total falls in)",
    "package": "packages", "percentage": "a percentage",
}
ACCESS_REASONS = {
    "payment_overdue": "the account is suspended by dunning (a payment is overdue)",
    "subscription_inactive": "the customer has no live subscription (never had one, it ended, or dunning cancelled it)",
    "not_in_plan": "the plan does not include this feature",
    "quota_exceeded": "the quota would be exceeded and the plan blocks overage",
    "no_customer": "the customer is unknown",
}
CHANNELS = {"email": "Email", "sms": "SMS", "in_app": "In-app message", "webhook": "Webhook"}

# (ruleset, issued or decided at) -> the version in force then, or None
VersionAt = Callable[[str, datetime | None], int | None]


@dataclass(frozen=True)
class Source:
    """A discount source (`coupon:CODE`, `rule:ruleset/rule`) in words."""

    kind: str  # coupon | rule | other
    name: str
    ruleset: str | None = None


def source(text: str) -> Source:
    kind, _, rest = text.partition(":")
    if kind == "rule" and "/" in rest:
        ruleset, _, rule = rest.partition("/")
        return Source("rule", rule, ruleset)
    if kind == "coupon":
        return Source("coupon", rest)
    return Source("other", text)


def money(v: Any, currency: str) -> str:
    return f"{Decimal(str(v)):,.2f} {currency}"


def unit_price(v: Decimal, currency: str) -> str:
    """A unit price as exact as it is (0.002), never fewer than two decimals."""
    d = v.quantize(Decimal("0.000001")).normalize()
    places = max(2, -int(d.as_tuple().exponent))
    return f"{d:,.{places}f} {currency}"


def quantity(v: Any) -> str:
    d = Decimal(str(v))
    return f"{d.normalize() if d != d.to_integral_value() else d.quantize(Decimal(1)):,}"


def line_reasons(invoice: Mapping[str, Any], line: Mapping[str, Any], version_at: VersionAt) -> list[str]:
    """Why one line of an invoice (as `sales.get_invoice` returns it) has its amount."""
    cur = invoice["currency"]
    out = [_charge(line, cur)]
    out.extend(_tiers(line, cur))
    if Decimal(line["discount"]) != 0:
        out.append(f"{money(line['discount'], cur)} off this line, its share of the invoice's discounts: "
                   + "; ".join(discount_reason(d, cur, invoice.get("issued_at"), version_at)
                               for d in invoice.get("discounts") or []) + ".")
    if Decimal(line["tax"]) != 0:
        out.append(f"Tax {money(line['tax'], cur)}: {quantity(invoice.get('tax_rate') or 0)} % "
                   f"{_country(invoice)}on {money(Decimal(line['amount']) - Decimal(line['discount']), cur)}.")
    elif invoice.get("reverse_charge"):
        out.append("No tax: the customer is a business with a VAT id (reverse charge).")
    return out


def _country(invoice: Mapping[str, Any]) -> str:
    return f"({invoice['tax_country']} VAT) " if invoice.get("tax_country") else ""


def _charge(line: Mapping[str, Any], cur: str) -> str:
    q, amount, model = Decimal(line["quantity"]), Decimal(line["amount"]), str(line["model"])
    name = line["name"]
    if line.get("kind") == "proration":
        return f"{name}: {money(amount, cur)} for part of the period (a plan or quantity change, by days)."
    if line.get("kind") == "minimum_commitment":
        return f"{name}: {money(amount, cur)} to reach the plan's minimum commitment."
    if model == "flat":
        return f"{name}: a flat fee of {money(amount, cur)} for the period."
    if model == "per_unit" and q:
        return f"{name}: {quantity(q)} × {unit_price(amount / q, cur)} = {money(amount, cur)}."
    return f"{name}: {quantity(q)} units priced by {MODELS.get(model, model)} = {money(amount, cur)}."


def _tiers(line: Mapping[str, Any], cur: str) -> list[str]:
    out = []
    for t in line.get("tiers") or []:
        q, amount = Decimal(str(t.get("quantity", 0))), Decimal(str(t.get("amount", 0)))
        each = f" at {unit_price(amount / q, cur)} each" if q else ""
        out.append(f"Tier {t.get('tier')}: {quantity(q)} units{each} = {money(amount, cur)}.")
    return out


def discount_reason(d: Mapping[str, Any], cur: str, at: Any, version_at: VersionAt) -> str:
    s = source(str(d.get("source", "")))
    amount = money(d.get("amount", 0), cur)
    if s.kind == "coupon":
        return f"coupon {s.name} ({amount} off the invoice)"
    if s.kind == "rule" and s.ruleset:
        version = version_at(s.ruleset, _when(at))
        v = f", version {version}" if version else ""
        return f"{d.get('reason') or 'a discount'}: promotion rule {s.name} of ruleset {s.ruleset}{v} ({amount} off the invoice)"
    return f"{d.get('reason') or s.name} ({amount} off the invoice)"


def denial_reason(
    feature: str | None, inputs: Mapping[str, Any], rule: str | None, state: str | None, decided: str = ""
) -> str:
    """Why access to `feature` was denied, from the decision's inputs (limit, usage, plan);
    `decided` is the decision's own reason (the API's `reason`), said in words when a rule
    denied (the plan's inputs do not carry it then)."""
    plan = inputs.get("plan") or {}
    reason = str(plan.get("reason") or "")
    what = f"Access to {feature or 'the feature'} was denied"
    if rule:
        said = f": {ACCESS_REASONS.get(decided, decided)}" if decided else ""
        because = f" ({reason})" if reason else ""
        return f"{what} by access rule {rule}{because}{said}" + (f"; the dunning state is {state}." if state else ".")
    words = ACCESS_REASONS.get(reason, reason or "no reason was recorded")
    out = f"{what}: {words}"
    if reason == "quota_exceeded" and plan.get("limit") is not None:
        out += f": used {quantity(plan.get('used') or 0)} of a limit of {quantity(plan['limit'])}"
    if plan.get("plan"):
        out += f" (plan {plan['plan']})"
    if reason in ("payment_overdue", "subscription_inactive") and state:
        out += f"; the dunning state is {state}"
    return out + "."


def message_reason(item: Mapping[str, Any], version_at: VersionAt) -> str:
    """Why a message was sent: the rule (and its version then) and the event it acted on."""
    when = _when(item.get("time"))
    if item.get("outcome") != "notify":  # the delivery's own record: "TEMPLATE by CHANNEL (why)"
        _, _, by = str(item.get("reason") or "").partition(" by ")
        channel, _, why = by.partition(" (")
        how = CHANNELS.get(channel, channel).lower() if channel else "its channel"
        return f"{item.get('subject')} was {item.get('outcome')} as {how}" + (f" ({why}" if why else ".")
    rule, trigger = item.get("rule"), _trigger(str(item.get("reason") or ""))
    if not rule:
        return f"{item.get('subject')} was recorded: {item.get('reason')}."
    ruleset, _, name = str(rule).partition("/")
    version = version_at(ruleset, when)
    v = f", version {version}" if version else ""
    return f"{item.get('subject')} was sent because rule {name} of ruleset {ruleset}{v} acted on {trigger}."


def charge_reason(item: Mapping[str, Any], invoice_number: str) -> str:
    """A payment attempt's outcome: paid, or failed with the provider's decline code."""
    if item.get("outcome") == "paid":
        return f"Invoice {invoice_number}: {item.get('reason')}."
    detail = str(item.get("reason") or "").replace("_", " ")
    return f"Invoice {invoice_number}: the payment {item.get('outcome')} ({detail})."


def dunning_reason(item: Mapping[str, Any]) -> str:
    if item.get("outcome") == "set_dunning_state":
        return f"Rule {item.get('rule')} moved the account to {item.get('subject')} (on {_trigger(str(item.get('reason')))})."
    return f"Dunning state {str(item.get('reason') or '').replace(' -> ', ' → ')}."


def _trigger(reason: str) -> str:
    _, _, event = reason.rpartition(" on ")
    if event.startswith("schedule:"):
        return f"its schedule ({event.removeprefix('schedule:')})"
    return f"the event {event}" if event else "an event"


def _when(at: Any) -> datetime | None:
    if isinstance(at, datetime) or at is None:
        return at
    return datetime.fromisoformat(str(at).replace("Z", "+00:00"))
