"""The provider adapter interface, modelled on how payment orchestrators structure connectors:
one stateless adapter per provider, each mapping the provider's vocabulary onto ours.

Our payment states: pending, succeeded, failed (with a decline code and whether retrying can
help), refunded. A status an adapter does not know maps to pending, never to success: money
is only counted as ours when the provider said so in words we understand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class PaymentState(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUNDED = "refunded"


# Our decline codes and whether another attempt on the same method can succeed.
DECLINE_RETRYABLE: dict[str, bool] = {
    "insufficient_funds": True,  # funds may arrive: dunning retries
    "processing_error": True,  # the provider's or the issuer's fault
    "try_again_later": True,
    "generic_decline": False,  # issuer refused without a reason: ask for another method
    "expired_card": False,
    "incorrect_number": False,
    "stolen_card": False,
    "do_not_honor": False,
    "payer_rejected": False,  # PayPal / TWINT: the payer declined in their app
    "authentication_required": False,  # the customer must confirm it (SCA): ask, don't retry
}


def is_retryable(decline_code: str) -> bool:
    """Unknown decline codes are not retried automatically: retrying a hard decline hurts the
    merchant's standing with the card networks more than a missed soft retry costs."""
    return DECLINE_RETRYABLE.get(decline_code, False)


class ProviderError(Exception):
    """The provider could not be reached or answered something we cannot use. The outcome of
    the operation is unknown: look it up before trying anything else."""


class ProviderTimeout(ProviderError):
    pass


class ProviderRejected(Exception):
    """The provider refused the request itself (bad input, idempotency conflict): nothing
    happened there. `code` is the provider's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class WebhookRejected(ValueError):
    """A webhook that must not be applied: bad signature, stale timestamp, malformed body."""


@dataclass(frozen=True)
class ChargeRequest:
    idempotency_key: str
    amount: Decimal
    currency: str
    customer_id: str
    method_type: str  # card | paypal | twint | bank_transfer
    token: str | None
    payment_reference: str | None = None
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChargeOutcome:
    state: PaymentState
    provider_ref: str | None
    amount: Decimal
    currency: str
    raw_status: str
    decline_code: str | None = None
    retryable: bool | None = None
    captured_at: datetime | None = None
    idempotency_key: str | None = None
    refunded_amount: Decimal = Decimal(0)
    instructions: dict[str, Any] | None = None  # e.g. bank details for a transfer


@dataclass(frozen=True)
class MethodCheck:
    """What the provider says of a method a customer attaches: it will take it."""

    method_type: str
    last4: str | None = None
    provider_ref: str | None = None


@dataclass(frozen=True)
class HostedSetup:
    """A method the customer entered on the provider's hosted form (the sandbox's setup
    session, Stripe's SetupIntent): who for, whether it is complete, and the token to store."""

    id: str
    customer_id: str
    status: str  # open | complete
    method_type: str = "card"
    token: str | None = None
    last4: str | None = None


@dataclass(frozen=True)
class RefundRequest:
    idempotency_key: str
    provider_ref: str  # the payment's reference at the provider
    amount: Decimal
    currency: str
    reason: str = ""


@dataclass(frozen=True)
class RefundOutcome:
    state: PaymentState  # pending | succeeded | failed (succeeded = the refund went through)
    provider_ref: str | None
    payment_provider_ref: str | None
    amount: Decimal
    currency: str
    raw_status: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class WebhookEvent:
    event_id: str
    type: str
    created: datetime
    payment: ChargeOutcome | None = None
    refund: RefundOutcome | None = None


class ProviderAdapter(Protocol):
    """One per provider; stateless (everything it needs is in the request or its config)."""

    name: str

    def charge(self, request: ChargeRequest) -> ChargeOutcome:
        """Authorize and capture. Raises ProviderTimeout/ProviderError when the outcome is
        unknown, ProviderRejected when nothing happened."""
        ...

    def refund(self, request: RefundRequest) -> RefundOutcome: ...

    # Optional capabilities are the protocols below (MethodChecking, HostedSetups): an adapter
    # that has one implements its methods, and callers ask with isinstance, typed.

    def lookup(self, idempotency_key: str) -> ChargeOutcome | None:
        """The payment the provider holds for our key, or None when it never saw it."""
        ...

    def lookup_refund(self, idempotency_key: str) -> RefundOutcome | None: ...

    def parse_webhook(self, headers: dict[str, str], body: bytes) -> WebhookEvent:
        """Verify the signature and freshness, then parse. Raises WebhookRejected."""
        ...


@runtime_checkable
class MethodChecking(Protocol):
    """An adapter that asks the provider whether it takes a method before it is stored. An
    adapter without it stores methods unchecked; the first charge tells."""

    def check_method(self, method_type: str, token: str | None) -> MethodCheck:
        """The provider takes it (ProviderRejected: it refuses it)."""
        ...


@runtime_checkable
class HostedSetups(Protocol):
    """An adapter with a hosted form for a new method, for the customer page: the browser is
    sent to `start_setup`'s `url` and back to `return_url?setup_session=ID`; `finish_setup`
    reads what the customer entered, server to server."""

    def start_setup(self, customer_id: str, return_url: str) -> dict[str, str]: ...

    def finish_setup(self, session_id: str) -> HostedSetup: ...
