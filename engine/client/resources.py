"""The product's HTTP surface, one small class per resource (FORMATS §4). Wallets get their
class here when the engine has them (issue 20), beside the others."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from engine.client.models import (
    AccessDecision,
    Customer,
    Event,
    IngestReport,
    Invoice,
    PaymentMethod,
    Quote,
    Subscription,
)
from engine.client.transport import Transport

MAX_BATCH = 10_000  # what POST /v1/events takes at once


def _given(**fields: Any) -> dict[str, Any]:
    """The body without the fields not given (the engine reads null as "not given" too, but
    a smaller body is a clearer one in its logs)."""
    return {k: _json(v) for k, v in fields.items() if v is not None}


def _json(value: Any) -> Any:
    # Decimal as a string: exact, as the engine reads amounts and quantities.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value


class Events:
    def __init__(self, transport: Transport, batch_size: int = 500) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size: from 1 to {MAX_BATCH}")
        self.transport = transport
        self.batch_size = batch_size

    def send(self, events: Iterable[Event]) -> IngestReport:
        """Sent in batches of `batch_size`; a batch that fails on the way is sent again with the
        same ids, so the engine stores each event once (a replay is counted in `duplicates`)."""
        report = IngestReport()
        batch: list[dict[str, Any]] = []
        for event in events:
            batch.append(event.as_json())
            if len(batch) == self.batch_size:
                report += self._post(batch)
                batch = []
        if batch:
            report += self._post(batch)
        return report

    def track(self, type: str, customer_id: str, **properties: Any) -> IngestReport:
        return self.send([Event(type, customer_id, properties)])

    def _post(self, batch: list[dict[str, Any]]) -> IngestReport:
        return IngestReport.model_validate(self.transport.call("POST", "/v1/events", json=batch, idempotent=True))


class Access:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def check(self, customer_id: str, feature: str, quantity: int | Decimal = 1,
              in_use: int | Decimal | None = None) -> AccessDecision:
        body = _given(customer_id=customer_id, feature=feature, quantity=quantity, in_use=in_use)
        return AccessDecision.model_validate(self.transport.call("POST", "/v1/access/check", json=body,
                                                                 idempotent=True))

    def check_many(self, questions: Sequence[tuple[str, str, int | Decimal]]) -> list[AccessDecision]:
        """(customer, feature, quantity) questions in one call, answered in order."""
        body = [_given(customer_id=c, feature=f, quantity=q) for c, f, q in questions]
        found = self.transport.call("POST", "/v1/access/check", json=body, idempotent=True)
        return [AccessDecision.model_validate(d) for d in found]


class Quotes:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def plan(self, plan: str, *, quantity: int | Decimal | None = None, usage: dict[str, int | Decimal] | None = None,
             coupon: str | None = None, customer_id: str | None = None, period: tuple[date, date] | None = None,
             rules: bool | None = None) -> Quote:
        body = _given(plan=plan, quantity=quantity, usage=usage, coupon=coupon, customer_id=customer_id,
                      period=_period(period), rules=rules)
        return Quote.model_validate(self.transport.call("POST", "/v1/quotes", json=body, idempotent=True))

    def subscription(self, subscription_id: str, *, period: tuple[date, date] | None = None) -> Quote:
        body = _given(subscription_id=subscription_id, period=_period(period))
        return Quote.model_validate(self.transport.call("POST", "/v1/quotes", json=body, idempotent=True))


def _period(period: tuple[date, date] | None) -> str | None:
    return f"{period[0].isoformat()}/{period[1].isoformat()}" if period else None


class Customers:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def create(self, email: str, name: str, *, id: str | None = None, country: str | None = None,
               **more: Any) -> Customer:
        """`more`: segment, tags, attributes, phone, currency, tax_id, timezone, preferred_channels."""
        body = _given(id=id, email=email, name=name, country=country, **more)
        return Customer.model_validate(self.transport.call("POST", "/v1/customers", json=body))

    def get(self, customer_id: str) -> Customer:
        return Customer.model_validate(self.transport.call("GET", f"/v1/customers/{customer_id}", idempotent=True))

    def invoices(self, customer_id: str, *, per_page: int = 100) -> list[Invoice]:
        page = self.transport.call("GET", f"/v1/customers/{customer_id}/invoices", params={"per_page": per_page},
                                   idempotent=True)
        return [Invoice.model_validate(i) for i in page["items"]]


class Invoices:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def get(self, invoice_id: str) -> Invoice:
        return Invoice.model_validate(self.transport.call("GET", f"/v1/invoices/{invoice_id}", idempotent=True))


class Subscriptions:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def create(self, customer_id: str, plan: str, *, quantity: int | Decimal | None = None,
               coupon: str | None = None, trial_days: int | None = None,
               payment_method: dict[str, str] | str | None = None) -> Subscription:
        """`payment_method`: a stored method's id, or `{"type": "card", "token": ...}`, stored
        before the first invoice is collected."""
        body = _given(customer_id=customer_id, plan=plan, quantity=quantity, coupon=coupon, trial_days=trial_days,
                      payment_method=payment_method)
        return Subscription.model_validate(self.transport.call("POST", "/v1/subscriptions", json=body))

    def change(self, subscription_id: str, *, plan: str | None = None,
               quantity: int | Decimal | None = None) -> Subscription:
        body = _given(plan=plan, quantity=quantity)
        return self._post(f"/v1/subscriptions/{subscription_id}/change", body)

    def cancel(self, subscription_id: str, at: Literal["now", "period_end"] = "period_end") -> Subscription:
        return self._post(f"/v1/subscriptions/{subscription_id}/cancel", {"at": at})

    def reactivate(self, subscription_id: str) -> Subscription:
        return self._post(f"/v1/subscriptions/{subscription_id}/reactivate", {})

    def pause(self, subscription_id: str) -> Subscription:
        """At the end of the period paid for (`pause_at_period_end`); nothing invoiced while paused."""
        return self._post(f"/v1/subscriptions/{subscription_id}/pause", {})

    def resume(self, subscription_id: str) -> Subscription:
        """A new period from today, or a pause not yet in effect withdrawn."""
        return self._post(f"/v1/subscriptions/{subscription_id}/resume", {})

    def _post(self, path: str, body: dict[str, Any]) -> Subscription:
        return Subscription.model_validate(self.transport.call("POST", path, json=body))


class PaymentMethods:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def attach(self, customer_id: str, token: str, type: str = "card") -> PaymentMethod:
        """Checked with the provider first; open invoices whose collection failed are collected
        again at once."""
        found = self.transport.call("POST", f"/v1/customers/{customer_id}/payment_methods",
                                    json={"type": type, "token": token})
        return PaymentMethod.model_validate(found)

    def list(self, customer_id: str) -> Sequence[PaymentMethod]:
        found = self.transport.call("GET", f"/v1/customers/{customer_id}/payment_methods", idempotent=True)
        items = found["items"] if isinstance(found, dict) else found
        return [PaymentMethod.model_validate(m) for m in items]

    def delete(self, customer_id: str, payment_method_id: str) -> None:
        self.transport.call("DELETE", f"/v1/customers/{customer_id}/payment_methods/{payment_method_id}",
                            idempotent=True)
