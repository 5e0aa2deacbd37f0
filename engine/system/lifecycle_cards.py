"""The lifecycle what-if's card provider: an in-process adapter (engine.payments'
ProviderAdapter) whose charges settle at once or decline as the what-if's `CardModel` says."""

from __future__ import annotations

from collections import Counter, defaultdict

from engine.clock import TestClock
from engine.payments import (
    ChargeOutcome,
    ChargeRequest,
    PaymentState,
    ProviderRejected,
    RefundOutcome,
    RefundRequest,
    WebhookEvent,
    WebhookRejected,
)
from engine.simulation.lifecycle_inputs import CardModel

PROVIDER = "whatif"


class DecliningProvider:
    """An in-process provider adapter (engine.payments.ProviderAdapter): charges settle at
    once, or decline with `insufficient_funds` (retryable, so dunning retries)."""

    name = PROVIDER

    def __init__(self, model: CardModel, clock: TestClock) -> None:
        self.model = model
        self.clock = clock
        self._outcomes: dict[str, ChargeOutcome] = {}
        self._invoices: dict[str, list[str]] = defaultdict(list)  # customer -> invoice ids in order
        self.attempts: Counter[str] = Counter()

    def charge(self, request: ChargeRequest) -> ChargeOutcome:
        if request.idempotency_key in self._outcomes:
            return self._outcomes[request.idempotency_key]
        invoice, _, attempt = request.idempotency_key.rpartition(":")
        seen = self._invoices[request.customer_id]
        if invoice not in seen:
            seen.append(invoice)
        u = self.model.draw(request.customer_id, seen.index(invoice), attempt)
        first = attempt in ("", "1")
        ok = u >= self.model.failure_rate if first else u < self.model.recovery_rate
        self.attempts["succeeded" if ok else "failed"] += 1
        outcome = ChargeOutcome(
            PaymentState.SUCCEEDED if ok else PaymentState.FAILED,
            f"whatif_{len(self._outcomes) + 1}",
            request.amount,
            request.currency,
            "succeeded" if ok else "declined",
            decline_code=None if ok else "insufficient_funds",
            retryable=None if ok else True,
            captured_at=self.clock.now() if ok else None,
            idempotency_key=request.idempotency_key,
        )
        self._outcomes[request.idempotency_key] = outcome
        return outcome

    def lookup(self, idempotency_key: str) -> ChargeOutcome | None:
        return self._outcomes.get(idempotency_key)

    def refund(self, request: RefundRequest) -> RefundOutcome:
        raise ProviderRejected("unsupported", "the what-if provider does not refund")

    def lookup_refund(self, idempotency_key: str) -> RefundOutcome | None:
        return None

    def parse_webhook(self, headers: dict[str, str], body: bytes) -> WebhookEvent:
        raise WebhookRejected("the what-if provider sends no webhooks")
