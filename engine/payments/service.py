"""The payment service (a system's provider adapters and clock), the errors and results every
payments operation shares, and the small helpers they all use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from engine import errors
from engine.clock import Clock
from engine.money import KNOWN_CURRENCIES, quantum
from engine.payments.models import Receivable
from engine.payments.provider import ProviderAdapter
from engine.store import add_event

ZERO = Decimal(0)

# Providers that move no money through an API: the admin or the bank statement records them.
OFFLINE_PROVIDERS = frozenset({"manual", "bank"})


class PaymentError(ValueError, errors.Invalid):
    """Bad input to a payments operation; nothing was recorded. `field` names the input at
    fault (the HTTP layer answers a problem naming it)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    default_field = "payment_method"


class PaymentNotFound(PaymentError, errors.NotFound):
    """An id that names nothing of this customer's (HTTP 404)."""

    default_field = ""


class RefundRejected(PaymentError):
    default_field = "amount"


@dataclass(frozen=True)
class CollectableInvoice:
    """What sales hands to payments: enough to collect, nothing of sales' internals."""

    invoice_id: str
    customer_id: str
    amount_due: Decimal
    currency: str
    attempt: int = 1
    payment_reference: str | None = None


@dataclass(frozen=True)
class CollectionResult:
    """status: paid | partially_paid | pending | failed | awaiting_transfer |
    no_payment_method | already_paid | blocked (an earlier attempt is unresolved)."""

    status: str
    invoice_id: str
    payment_id: str | None = None
    decline_code: str | None = None
    retryable: bool | None = None
    remaining: Decimal = ZERO
    payment_reference: str | None = None


class PaymentService:
    """The provider adapters by name, and the clock of the system it belongs to. A `System`
    owns one and hands it to whatever collects (handlers, due work, the API, the CLI): there is
    no process-wide service, so two systems in one process (the demo seed's replay and the
    live engine) never borrow each other's clock or provider."""

    def __init__(
        self,
        adapters: Mapping[str, ProviderAdapter] | Iterable[ProviderAdapter],
        clock: Clock,
        *,
        default_provider: str = "sandbox",
    ) -> None:
        if isinstance(adapters, Mapping):
            self.adapters: dict[str, ProviderAdapter] = dict(adapters)
        else:
            self.adapters = {a.name: a for a in adapters}
        self.clock: Clock = clock
        self.default_provider = default_provider

    def adapter(self, name: str) -> ProviderAdapter:
        try:
            return self.adapters[name]
        except KeyError:
            raise PaymentError(f"no adapter configured for provider {name!r}") from None

    def now(self) -> datetime:
        return self.clock.now()


# --- helpers ---------------------------------------------------------------------------------


def attempt_key(invoice_id: str, attempt: int) -> str:
    return f"{invoice_id}:{attempt}"


def check_amount(amount: Decimal, currency: str, what: str = "amount") -> Decimal:
    if not isinstance(amount, Decimal | int | str):  # a float is none of these
        raise PaymentError(f"{what}: money is a Decimal, never {type(amount).__name__}")
    amount = Decimal(amount)
    if currency not in KNOWN_CURRENCIES:
        raise PaymentError(f"currency {currency!r} is not a known ISO 4217 code")
    if not amount.is_finite() or amount <= 0:
        raise PaymentError(f"{what}: must be positive, got {amount}")
    # Amounts arrive already rounded by whoever computed them; we refuse to round silently.
    if amount != amount.quantize(quantum(currency)):
        raise PaymentError(f"{what}: {amount} has more decimals than {currency} allows")
    return amount


def _money(value: Decimal, currency: str | None) -> str:
    """Money in events and summaries: the currency's minor unit, always ("49.00", never
    "49" nor PostgreSQL's "49.00000000"). Amounts are already exact in that unit."""
    return str(value.quantize(quantum(currency))) if currency else str(value)


def _emit(session: Session, svc: PaymentService, type_: str, customer_id: str, props: dict[str, Any]) -> None:
    add_event(session, type_, customer_id, props, time=svc.now())


def _receivable(session: Session, invoice_id: str | None, lock: bool = True) -> Receivable | None:
    if invoice_id is None:
        return None
    return session.get(Receivable, invoice_id, with_for_update=lock)
