"""What a template sees: plain data made from a rule's context (engine.automation.context).

One function, `template_data`, for everything that renders a notification: the `notify`
action (one at a time and in scheduler batches), `billing lint` and `billing template
preview` (the sample context of the template's real triggering event, see samples.py), and
the tests. The facts it needs beyond the context (a feature's or plan's name, how the
customer pays, the invoice's bank reference) come from a `Facts` (automation/ports.py): the
database's when the engine runs (engine.system binds it), a fixed sample's when linting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from engine.automation.context import context_customer_id, parse_time
from engine.automation.ports import Facts
from engine.durations import parse_duration


@dataclass(frozen=True)
class Seller:
    """Who the customer pays (BILLING_SELLER_NAME, BILLING_SELLER_IBAN): printed on the
    bank-transfer instructions. Empty in production until configured."""

    name: str = ""
    iban: str = ""


class CustomerLinks(Protocol):
    """Signed links to a customer's own page (engine.portal.PortalLinks): what the emails
    print as `portal.url`, valid until `portal.expires_at`."""

    def customer_page(self, customer_id: str, now: datetime, days: int | None = None) -> dict[str, str]: ...


def plain(value: Any) -> Any:
    """Dicts, lists and scalars only (templates get no objects)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _date(value: Any) -> date | None:
    when = parse_time(value) if not isinstance(value, date) or isinstance(value, datetime) else value
    if isinstance(when, datetime):
        return when.date()
    return when


def _amount(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _number(value: Any) -> Any:
    """A usage count as people read it: 80000, not 80000.000."""
    amount = _amount(value)
    if amount is None:
        return value
    return int(amount) if amount == amount.to_integral_value() else amount.normalize()


def _props(ctx: Mapping[str, Any]) -> dict[str, Any]:
    return dict(ctx.get("event", {}).get("properties", {}))


def template_data(template: str, ctx: Mapping[str, Any], data: Mapping[str, Any], *,
                  now: datetime, public_url: str, seller: Seller, facts: Facts,
                  links: CustomerLinks | None = None) -> dict[str, Any]:
    """Plain data for the template: the context's invoice, subscription, account, payment
    and quota facts, the offer of an access denial, the seller, the customer page's link
    (`portal`: {url, expires_at}, None without `links`), then the rule's own `data`."""
    public_url = public_url.rstrip("/")
    etype = str(ctx.get("event", {}).get("type") or "")
    props = _props(ctx)
    cid = context_customer_id(ctx)
    portal = _portal(links, cid, now)
    out: dict[str, Any] = {"event": plain(ctx.get("event", {})),
                           "seller": {"name": seller.name, "iban": seller.iban},
                           "portal": portal, "account": plain(_account(ctx))}
    invoice = _invoice(ctx, portal, public_url, now, facts)
    if invoice:
        out["invoice"] = plain(invoice)
        out["bank_transfer"] = _bank_transfer(invoice, cid, seller, facts)
        out["payment"] = plain(_payment(etype, props, invoice, ctx, data, now))
    if ctx.get("subscription"):
        out["subscription"] = _subscription(template, ctx)
    section = _SECTIONS.get(etype) or _SECTIONS.get(etype[:etype.find(".") + 1])
    if section is not None:
        out[section[0]] = plain(section[1](props))
    if etype == "usage.threshold_reached" and props.get("feature"):
        out["quota"] = _quota(props, cid, facts)
    offer = ctx.get("offer") or props.get("offer")
    if isinstance(offer, Mapping) and offer.get("plan"):
        out["offer"] = plain(_offer(ctx, dict(offer), cid, public_url, facts))
    out.update(plain(data))
    return out


def _portal(links: CustomerLinks | None, customer_id: str, now: datetime) -> dict[str, str] | None:
    """The customer page's link, {url, expires_at} (None: no links, or no customer)."""
    if links is None or not customer_id:
        return None
    page = links.customer_page(customer_id, now)
    return {"url": page["url"], "expires_at": page["expires_at"]}


def _account(ctx: Mapping[str, Any]) -> dict[str, Any]:
    account = dict(ctx.get("account", {}))
    account.setdefault("state", account.get("dunning_state"))
    return account


def _subscription(template: str, ctx: Mapping[str, Any]) -> dict[str, Any]:
    sub = dict(ctx["subscription"])
    sub.setdefault("plan_name", sub.get("plan"))
    out: dict[str, Any] = plain(sub)
    if template == "subscription_cancelled":
        out.setdefault("reason", "unpaid")
    return out


def _credits(props: Mapping[str, Any]) -> dict[str, Any]:
    return {"amount": _amount(props.get("amount")), "unit": props.get("unit"),
            "grant_id": props.get("grant_id"), "threshold": _amount(props.get("threshold"))}


def _budget(props: Mapping[str, Any]) -> dict[str, Any]:
    return {"threshold": props.get("threshold"), "amount": _amount(props.get("budget")),
            "spent": _amount(props.get("spent")), "currency": props.get("currency"),
            "hard_stop": bool(props.get("hard_stop")), "period_start": props.get("period_start"),
            "period_end": props.get("period_end")}


def _progressive(props: Mapping[str, Any]) -> dict[str, Any]:
    """The level of accrued usage charges that billed early."""
    return {"threshold": _amount(props.get("threshold")), "accrued": _amount(props.get("accrued")),
            "level": props.get("level")}


# What an event of a type (or of a family: `credits.`) adds, and under which name.
_SECTIONS: dict[str, tuple[str, Callable[[Mapping[str, Any]], dict[str, Any]]]] = {
    "credits.": ("credits", _credits),
    "spend.threshold_reached": ("budget", _budget),
    "invoice.progressive": ("progressive", _progressive),
}


def _invoice(ctx: Mapping[str, Any], portal: Mapping[str, Any] | None, public_url: str, now: datetime,
             facts: Facts) -> dict[str, Any]:
    """The context's invoice (empty: none) with its link, due date and payment reference."""
    invoice = dict(ctx.get("invoice", {}))
    if not invoice:
        return invoice
    # The invoice's PDF on the customer's page when there is one.
    invoice.setdefault("url", f"{portal['url']}/invoices/{invoice.get('id')}.pdf" if portal
                       else f"{public_url}/invoices/{invoice.get('id')}")
    # Collected automatically: due on issue.
    invoice.setdefault("due_date", _date(invoice.get("issued_at")) or now.date())
    if invoice.get("id"):
        invoice["payment_reference"] = facts.payment_reference(str(invoice["id"]))
    return invoice


def _payment(etype: str, props: Mapping[str, Any], invoice: Mapping[str, Any],
             ctx: Mapping[str, Any], data: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """`payment.amount` is the amount of the payment the event reports (a partial payment's
    own amount, not the invoice's remainder); `payment.remaining` what is still due."""
    next_attempt = ctx.get("_next_attempt")
    if next_attempt is None and data.get("retry_in_days") is not None:
        next_attempt = parse_duration(f"{int(data['retry_in_days'])}d").after(now)
    remaining = _amount(props.get("invoice_remaining"))
    if remaining is None:
        remaining = _amount(invoice.get("amount_due"))
    # A success: the payment's own amount; a failed or retried collection: what it tried to collect.
    tried = props.get("amount_due") if props.get("amount_due") is not None else invoice.get("amount_due")
    return {"attempt": invoice.get("attempt") or 1, "reason": invoice.get("decline_code"),
            "next_attempt": _date(next_attempt),  # None when there is none
            "amount": _amount(props.get("amount") if etype == "payment.succeeded" else tried),
            "currency": props.get("currency") or invoice.get("currency"), "remaining": remaining,
            "paid_in_full": bool(props.get("invoice_paid")) if "invoice_paid" in props
            else remaining is not None and remaining <= 0,
            "method": props.get("method")}


def _bank_transfer(invoice: Mapping[str, Any], customer_id: str, seller: Seller,
                   facts: Facts) -> dict[str, Any] | None:
    """How to pay by transfer, for a customer who pays that way (else None)."""
    if not customer_id or not invoice.get("id") or not facts.pays_by_transfer(customer_id):
        return None
    return {"beneficiary": seller.name, "iban": seller.iban,
            "reference": invoice.get("payment_reference") or facts.payment_reference(str(invoice["id"]))}


def _quota(props: Mapping[str, Any], customer_id: str, facts: Facts) -> dict[str, Any]:
    """usage.threshold_reached (engine/access/thresholds.py) as the quota templates read it."""
    feature = str(props["feature"])
    return {"feature": feature,
            "feature_name": (facts.feature_name(customer_id, feature) if customer_id else None) or feature,
            "used": _number(props.get("used")), "limit": _number(props.get("limit")),
            "percent": _number(props.get("threshold")), "plan": props.get("plan"),
            "window_start": props.get("window_start")}


def _offer(ctx: Mapping[str, Any], offer: dict[str, Any], customer_id: str, public_url: str,
           facts: Facts) -> dict[str, Any]:
    plan = str(offer["plan"])
    offer.setdefault("plan_name", offer.get("name") or plan)
    feature = ctx.get("feature") or _props(ctx).get("feature")
    if feature:
        offer.setdefault("feature", feature)
        name = None  # without a customer: the feature's id
        if customer_id:
            name = facts.feature_name(customer_id, str(feature))
            if not offer.get("name"):
                offer["plan_name"] = facts.plan_name(customer_id, plan) or offer["plan_name"]
        offer.setdefault("feature_name", name or str(feature))
    offer.setdefault("url", f"{public_url}/upgrade?plan={plan}")
    return offer
