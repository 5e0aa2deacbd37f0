"""`BillingClient`: the product's calls to the engine, typed.

    from engine.client import BillingClient, Event

    with BillingClient("http://127.0.0.1:8080", api_key) as billing:
        billing.events.send([Event("api.request", "cus_42")])
        if billing.access.check("cus_42", "api").allowed:
            ...
"""

from __future__ import annotations

from types import TracebackType

import httpx

from engine.client.resources import Access, Customers, Events, Invoices, PaymentMethods, Quotes, Subscriptions
from engine.client.transport import RetryPolicy, Transport


class BillingClient:
    """A product key reaches events, access checks and quotes; customers, subscriptions,
    invoices and payment methods need an admin key (the engine refuses with a 403 otherwise)."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10.0, retry: RetryPolicy | None = None,
                 batch_size: int = 500, http: httpx.Client | None = None) -> None:
        self.transport = Transport(base_url, api_key, timeout=timeout, retry=retry, http=http)
        self.events = Events(self.transport, batch_size)
        self.access = Access(self.transport)
        self.quotes = Quotes(self.transport)
        self.customers = Customers(self.transport)
        self.subscriptions = Subscriptions(self.transport)
        self.payment_methods = PaymentMethods(self.transport)
        self.invoices = Invoices(self.transport)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> BillingClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
