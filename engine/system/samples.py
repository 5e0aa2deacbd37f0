"""The sample context of each event that triggers a message, for `billing lint` and
`billing template preview`: what a template really sees when its rule fires.

Each sample envelope carries the properties its emitter writes (sales' invoice events,
payments' payment events, access' threshold and denial events; tests/messaging compares
them with the events the engine really emits), and the context is assembled from it by
the engine's own functions (`assemble_context`, `template_data`), so a template that
names a variable the real event does not give fails here as it would in production.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from engine import payments
from engine.automation import Seller, template_data
from engine.automation.context import assemble_context, invoice_context
from engine.automation.ports import Record, Row
from engine.messaging import CHANNELS, Renderer, TemplateError
from engine.messaging.samples import sample_data
from engine.rules import Ruleset

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PUBLIC_URL = "https://billing.example.com"
SAMPLE_SELLER = Seller(name="Example Billing GmbH", iban="DE89370400440532013000")

CUSTOMER: Record = {
    "id": "cus_sample", "name": "Ada Lovelace", "email": "ada@example.com",
    "phone": "+4915112345678", "country": "DE", "currency": "EUR", "segment": None,
    "tags": [], "attributes": {}, "preferred_channels": [], "locale": "en",
    "timezone": "Europe/Berlin",
}
SUBSCRIPTION: Record = {
    "id": "sub_sample", "customer_id": "cus_sample", "plan": "pro", "catalog": "saas",
    "catalog_version_id": 1, "interval": "month", "quantity": 1, "status": "active",
    "start_date": "2026-11-01T00:00:00+00:00", "trial_end": "2026-12-04T00:00:00+00:00",
    "current_period": {"start": "2026-12-01T00:00:00+00:00", "end": "2027-01-01T00:00:00+00:00"},
    "cancel_at_period_end": False, "canceled_at": None, "ended_at": None,
    "pending": {"plan": None, "quantity": None, "catalog_version_id": None},
    "coupon": None, "payment_method": None, "next_run_at": "2027-01-01T00:00:00+00:00",
    "plan_name": "Pro",
}
INVOICE: Record = {
    "id": "in_01SAMPLE0000000000000000000", "number": "INV-2026-0042",
    "customer_id": "cus_sample", "subscription_id": "sub_sample", "status": "finalized",
    "reason": "subscription_cycle", "currency": "EUR", "plan": "pro",
    "period": {"start": "2026-12-01", "end": "2027-01-01"}, "subtotal": "95.61",
    "discount": "0.00", "discounts": [], "tax": "18.17", "tax_rate": "0.19",
    "tax_country": "DE", "reverse_charge": False, "total": "113.78",
    "credit_applied": "0.00", "amount_due": "113.78", "amount_paid": "0.00",
    "issued_at": "2026-12-01T09:00:00+00:00", "paid_at": None,
}


def _invoice_event() -> Record:
    inv = INVOICE
    return {"invoice_id": inv["id"], "number": inv["number"], "customer_id": inv["customer_id"],
            "subscription_id": inv["subscription_id"], "status": inv["status"],
            "reason": inv["reason"], "currency": inv["currency"], "subtotal": inv["subtotal"],
            "discount": inv["discount"], "tax": inv["tax"], "total": inv["total"],
            "credit_applied": inv["credit_applied"], "amount_due": inv["amount_due"],
            "period_start": "2026-12-01T00:00:00+00:00", "period_end": "2027-01-01T00:00:00+00:00",
            "plan": inv["plan"], "issued_at": inv["issued_at"], "payment_method": None}


def _subscription_event() -> Record:
    sub = SUBSCRIPTION
    return {"subscription_id": sub["id"], "customer_id": sub["customer_id"], "plan": sub["plan"],
            "catalog": sub["catalog"], "catalog_version_id": sub["catalog_version_id"],
            "quantity": "1", "status": "trialing", "period_start": sub["current_period"]["start"],
            "period_end": sub["current_period"]["end"], "trial_end": sub["trial_end"],
            "cancel_at_period_end": False}


# The properties each triggering event carries, as its emitter writes them.
EVENT_PROPERTIES: dict[str, Record] = {
    # Sales adds the books' view of the lines (engine/sales/book_lines.py) and the tax country.
    "invoice.finalized": _invoice_event() | {
        "tax_country": INVOICE["tax_country"],
        "lines": [{"position": 1, "plan": "pro", "price_id": "base", "price_type": "subscription", "kind": "flat",
                   "amount": "95.61", "discount": "0.00", "tax": "18.17",
                   "period_start": "2026-12-01", "period_end": "2027-01-01"}]},
    "invoice.paid": _invoice_event() | {"status": "paid"},
    "invoice.progressive": _invoice_event() | {"reason": "progressive", "threshold": "100.00", "level": 1,
                                               "accrued": "104.20"},
    "invoice.payment_failed": {
        "invoice_id": INVOICE["id"], "attempt": 1, "decline_code": "card_declined",
        "retryable": True, "payment_id": "pay_sample", "amount_due": "113.78", "currency": "EUR",
        "invoice": {"id": INVOICE["id"], "attempt": 1, "amount_due": "113.78", "currency": "EUR"}},
    "payment.succeeded": {
        "payment_id": "pay_sample", "invoice_id": INVOICE["id"], "amount": "50.00",
        "currency": "EUR", "method": "bank_transfer", "provider": "bank",
        "provider_reference": None, "attempt": 1, "applied_to_invoice": "50.00",
        "credited": "0.00", "invoice_amount_paid": "50.00", "invoice_remaining": "63.78",
        "invoice_paid": False},
    "subscription.trial_will_end": _subscription_event(),
    "usage.threshold_reached": {
        "feature": "api_calls", "threshold": 80, "used": "80000", "limit": "100000",
        "plan": "pro", "window_start": "2026-12-01"},
    "access.denied": {
        "allowed": False, "feature": "sso", "reason": "not_in_plan", "limit": None, "used": None,
        "remaining": None, "plan": "basic", "rules": ["access/sso-upsell"],
        "offer": {"plan": "pro", "coupon": "WELCOME20"}, "count": 1, "decision_id": "dec_01SAMPLE"},
    # wallets and budgets (docs/credits.md, Events)
    "spend.threshold_reached": {
        "threshold": 80, "budget": "200.00", "spent": "161.40", "currency": "EUR", "hard_stop": True,
        "plan": "pro", "period_start": "2026-12-01", "period_end": "2027-01-01"},
    "credits.balance_low": {"unit": "EUR", "amount": "4.20", "threshold": "10.00"},
    "credits.exhausted": {"unit": "EUR", "amount": "0.00", "threshold": None},
}


class SampleFacts:
    """The facts the database would give, for the sample customer (who pays by transfer,
    so the bank-transfer part of an invoice email is rendered too)."""

    def feature_name(self, customer_id: str, feature: str) -> str | None:
        return {"api_calls": "API calls", "sso": "Single sign-on"}.get(feature)

    def plan_name(self, customer_id: str, plan: str) -> str | None:
        return {"pro": "Pro", "basic": "Basic", "enterprise": "Enterprise"}.get(plan)

    def pays_by_transfer(self, customer_id: str) -> bool:
        return True

    def payment_reference(self, invoice_id: str) -> str:
        return payments.invoice_reference(invoice_id)

    def forget(self, customer_id: str | None) -> None:
        """Fixed facts: nothing to read again."""


def sample_context(trigger: str, properties: Row | None = None) -> Record:
    """The context of a trigger: an event type, or `schedule:invoice` / `schedule:subscription`
    / `schedule:customer` for a scheduled rule's subject."""
    if trigger.startswith("schedule:"):
        subject = trigger.split(":", 1)[1]
        envelope = {"id": None, "type": None, "customer_id": CUSTOMER["id"],
                    "time": NOW.isoformat(), "properties": {}}
        ctx = assemble_context(envelope, NOW, customer=CUSTOMER, state="active", invoice=None,
                               subscription=SUBSCRIPTION)
        ctx["event"] = {"type": "schedule", "time": NOW.isoformat()}
        if subject == "invoice":  # seven days overdue, as the dunning sweeps see it
            ctx["invoice"] = invoice_context(INVOICE | {"issued_at": "2026-11-24T09:00:00+00:00"}, NOW)
        return ctx
    props = dict(properties if properties is not None else EVENT_PROPERTIES.get(trigger, {}))
    envelope = {"id": "evt_sample", "type": trigger, "customer_id": CUSTOMER["id"],
                "time": NOW.isoformat(), "properties": props}
    about_invoice = bool(props.get("invoice_id") or isinstance(props.get("invoice"), Mapping))
    return assemble_context(envelope, NOW, customer=CUSTOMER, state="active",
                            invoice=INVOICE if about_invoice else None, subscription=SUBSCRIPTION)


@dataclass(frozen=True)
class Trigger:
    """A rule's `notify`: which template, on what (event type or schedule), with what data."""

    template: str
    trigger: str
    rule: str
    channels: tuple[str, ...]
    data: Row


def triggers(rulesets: Iterable[Ruleset]) -> list[Trigger]:
    out = []
    for ruleset in rulesets:
        for rule in ruleset.rules:
            whens = [f"schedule:{rule.for_each}"] if rule.schedule else list(rule.on)
            for action in rule.then:
                if action.name != "notify":
                    continue
                for when in whens:
                    out.append(Trigger(str(action.params["template"]), when,
                                       f"{ruleset.name}/{rule.id}",
                                       tuple(action.params.get("channels", ("email",))),
                                       dict(action.params.get("data", {}))))
    return out


def sample_template_data(trig: Trigger, properties: Row | None = None) -> Record:
    """What `trig`'s template sees when its rule fires on the sample event."""
    ctx = sample_context(trig.trigger, properties)
    return template_data(trig.template, ctx, trig.data, now=NOW, public_url=PUBLIC_URL,
                         seller=SAMPLE_SELLER, facts=SampleFacts())


def preview_data(template: str, rulesets: Iterable[Ruleset]) -> Record:
    """The data `billing template preview` renders: the first rule that sends `template`,
    on the sample of its triggering event; messaging's own sample for templates no rule
    names (the digest, which messaging builds itself)."""
    for trig in triggers(rulesets):
        if trig.template == template:
            return sample_template_data(trig)
    return sample_data(template)


def locales_of(renderer: Renderer) -> list[str]:
    roots = [renderer.directory / channel for channel in CHANNELS if channel != "webhook"]
    return sorted({p.name for root in roots if root.is_dir() for p in root.iterdir() if p.is_dir()}) or ["en"]


def render_problems(rulesets: Iterable[Ruleset], renderer: Renderer) -> list[str]:
    """Render every template a rule sends, on every channel it has files for and in every
    locale, with the sample context of the rule's trigger (StrictUndefined). One line per
    failure, naming the rule, the trigger, the template file and line and the reason."""
    problems = []
    for trig in triggers(rulesets):
        data = sample_template_data(trig)
        for channel in CHANNELS:
            if not _has_channel(renderer, trig.template, channel):
                if channel in trig.channels:
                    problems.append(f"rule {trig.rule}: template {trig.template!r} has no "
                                    f"{channel} files")
                continue
            for locale in locales_of(renderer):
                try:
                    renderer.render(trig.template, channel, data, locale, dict(CUSTOMER, locale=locale))
                except TemplateError as exc:
                    problems.append(f"rule {trig.rule} (on {trig.trigger}): {exc}")
    return sorted(set(problems))


def _has_channel(renderer: Renderer, template: str, channel: str) -> bool:
    try:
        renderer.resolve_locale(template, channel, "en")
    except TemplateError:
        return False
    return True
