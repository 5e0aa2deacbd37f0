"""What the HTTP routes hold of payments, bound by `engine.system`: the system's payment
service (its provider adapters, on its clock; None: no provider) and the chart of accounts the
books are read through. Kept apart from `ApiContext` so the context names one subsystem
(access) and the payment routes name this one."""

from __future__ import annotations

from dataclasses import dataclass

from engine.clock import Clock
from engine.payments import PaymentService
from engine.payments.books import ChartOfAccounts, default_chart


@dataclass(frozen=True)
class PaymentParts:
    service: PaymentService | None = None
    # BILLING_CHART_OF_ACCOUNTS, or None: the shipped chart.
    chart: ChartOfAccounts | None = None

    def service_or_offline(self, clock: Clock) -> PaymentService:
        """Without a provider, a service that only knows offline methods (bank transfer,
        manual) on the system's clock."""
        return self.service or PaymentService((), clock)

    def chart_or_default(self) -> ChartOfAccounts:
        return self.chart or default_chart()
