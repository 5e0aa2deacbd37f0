"""Collection: charge what invoices owe, never twice, and record what came in.

Every function takes the caller's SQLAlchemy session and writes its events with
`engine.store.add_event` in that same transaction, so a state change and the events it
causes commit together or not at all.

Never twice:
- An attempt's idempotency key is `"{invoice_id}:{attempt}"`. Before charging a new key we
  ask the provider whether it already holds a payment for it: a process killed between the
  provider's answer and our commit left no row here, but the provider remembers, and the
  redelivered invoice.finalized (or the retry) adopts that payment instead of charging again.
- A timeout leaves the attempt `pending` with `needs_lookup`; `repair_pending` (run at
  start-up and periodically) looks it up, and re-sends the charge with the same key only when
  the provider has never seen it.
- A new attempt for an invoice is refused while an earlier one is still unresolved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.clock import Clock, SystemClock
from engine.money import KNOWN_CURRENCIES, quantum
from engine.payments import journal
from engine.payments.journal import Posting
from engine.payments.models import (
    CreditBalance,
    CreditEntry,
    Payment,
    PaymentMethod,
    Receivable,
    Refund,
)
from engine.payments.provider import (
    ChargeOutcome,
    ChargeRequest,
    PaymentState,
    ProviderAdapter,
    ProviderError,
    ProviderRejected,
    RefundOutcome,
    RefundRequest,
)
from engine.payments.references import invoice_reference, normalise_reference
from engine.store import add_event, new_event_id

ZERO = Decimal(0)

# Providers that move no money through an API: the admin or the bank statement records them.
OFFLINE_PROVIDERS = frozenset({"manual", "bank"})


class PaymentError(ValueError):
    """Bad input to a payments operation; nothing was recorded. `field` names the input at
    fault (the HTTP layer answers a problem naming it)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class PaymentNotFound(PaymentError):
    """An id that names nothing of this customer's (HTTP 404)."""


class RefundRejected(PaymentError):
    pass


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
        adapters: Mapping[str, ProviderAdapter] | Iterable[ProviderAdapter] = (),
        clock: Clock | None = None,
        *,
        default_provider: str = "sandbox",
    ) -> None:
        if isinstance(adapters, Mapping):
            self.adapters: dict[str, ProviderAdapter] = dict(adapters)
        else:
            self.adapters = {a.name: a for a in adapters}
        self.clock: Clock = clock or SystemClock()
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
    if isinstance(amount, float) or not isinstance(amount, Decimal | int | str):
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


# --- payment methods -------------------------------------------------------------------------


def add_payment_method(
    session: Session,
    customer_id: str,
    method_type: str,
    token: str | None = None,
    *,
    provider: str = "sandbox",
    default: bool = True,
    service: PaymentService,
) -> PaymentMethod:
    """Store a customer's method. `provider="bank"` with `method_type="bank_transfer"` means
    the customer pays by transfer to our own account (matched from camt.053 statements)."""
    if method_type not in ("card", "paypal", "twint", "bank_transfer", "manual"):
        raise PaymentError(f"unknown payment method type {method_type!r}")
    svc = service
    if default:
        for other in session.scalars(
            select(PaymentMethod).where(PaymentMethod.customer_id == customer_id, PaymentMethod.is_default)
        ):
            other.is_default = False
    method = PaymentMethod(
        id=new_event_id("pm"),
        customer_id=customer_id,
        provider=provider,
        method_type=method_type,
        token=token,
        is_default=default,
        created_at=svc.now(),
    )
    session.add(method)
    session.flush()
    return method


def default_payment_method(session: Session, customer_id: str) -> PaymentMethod | None:
    return session.scalars(
        select(PaymentMethod)
        .where(PaymentMethod.customer_id == customer_id, PaymentMethod.is_default)
        .order_by(PaymentMethod.created_at.desc())
        .limit(1)
    ).first()


# --- receivables -----------------------------------------------------------------------------


def open_receivable(
    session: Session,
    invoice: CollectableInvoice,
    *,
    revenue_by_plan: Mapping[str, Decimal] | None = None,
    tax: Decimal = ZERO,
    collection_method: str = "automatic",
    due_at: datetime | None = None,
    service: PaymentService,
) -> Receivable:
    """Record what an invoice owes (idempotent per invoice id) and journal it:
    Dr receivables / Cr revenue per plan / Cr tax payable."""
    svc = service
    existing = session.get(Receivable, invoice.invoice_id)
    if existing is not None:
        return existing
    amount = Decimal(invoice.amount_due)
    if isinstance(invoice.amount_due, float) or amount < 0:
        raise PaymentError(f"invoice {invoice.invoice_id}: amount_due must be a non-negative Decimal")
    if amount:
        check_amount(amount, invoice.currency, "amount_due")
    elif invoice.currency not in KNOWN_CURRENCIES:
        raise PaymentError(f"currency {invoice.currency!r} is not a known ISO 4217 code")
    if collection_method not in ("automatic", "bank_transfer"):
        raise PaymentError(f"collection_method must be automatic or bank_transfer, not {collection_method!r}")
    reference = invoice.payment_reference or invoice_reference(invoice.invoice_id)
    clash = session.scalar(
        select(Receivable.invoice_id).where(Receivable.payment_reference == normalise_reference(reference))
    )
    if clash is not None:
        reference = invoice_reference(invoice.invoice_id, digest=True)
    now = svc.now()
    rec = Receivable(
        invoice_id=invoice.invoice_id,
        customer_id=invoice.customer_id,
        currency=invoice.currency,
        amount_due=amount,
        amount_paid=ZERO,
        credit_applied=ZERO,
        payment_reference=normalise_reference(reference),
        collection_method=collection_method,
        status="open" if amount > 0 else "paid",
        due_at=due_at,
        last_attempt=0,
        created_at=now,
    )
    postings = [Posting(journal.RECEIVABLES, debit=amount)]
    revenue = {plan: Decimal(v) for plan, v in (revenue_by_plan or {}).items()}
    tax = Decimal(tax)
    postings += [Posting(journal.revenue_account(plan), credit=v) for plan, v in revenue.items() if v > 0]
    postings += [Posting("discounts", debit=-v) for plan, v in revenue.items() if v < 0]
    postings.append(Posting(journal.TAX_PAYABLE, credit=tax))
    # Whatever the breakdown does not explain (no breakdown given, or rounding) is visible.
    rest = amount - sum(revenue.values(), ZERO) - tax
    if rest > 0:
        postings.append(Posting(journal.revenue_account(None), credit=rest))
    elif rest < 0:
        postings.append(Posting("discounts", debit=-rest))
    try:
        with session.begin_nested():
            session.add(rec)
            journal.post_entry(
                session, f"inv:{invoice.invoice_id}", now, invoice.currency, postings,
                f"invoice {invoice.invoice_id} issued", invoice.invoice_id,
            )
    except IntegrityError:
        # Another collection of this invoice (another process) opened it meanwhile and has
        # committed: its receivable is the one, and its attempt is what this one returns.
        theirs = session.get(Receivable, invoice.invoice_id, with_for_update=True, populate_existing=True)
        if theirs is None:
            raise
        return theirs
    return rec


def _apply_credit(session: Session, svc: PaymentService, rec: Receivable) -> Decimal:
    balance = session.get(CreditBalance, (rec.customer_id, rec.currency), with_for_update=True)
    if balance is None or balance.balance <= 0 or rec.remaining <= 0:
        return ZERO
    use = min(balance.balance, rec.remaining)
    balance.balance -= use
    rec.credit_applied += use
    now = svc.now()
    session.add(
        CreditEntry(
            customer_id=rec.customer_id, currency=rec.currency, amount=-use, reason="applied",
            invoice_id=rec.invoice_id, created_at=now,
        )
    )
    journal.post_entry(
        session, f"credit:{rec.invoice_id}:{new_event_id('c')}", now, rec.currency,
        [Posting(journal.CUSTOMER_CREDIT, debit=use), Posting(journal.RECEIVABLES, credit=use)],
        f"customer credit applied to {rec.invoice_id}", rec.invoice_id,
    )
    if rec.remaining == 0:
        rec.status = "paid"
    return use


def _add_credit(session: Session, customer_id: str, currency: str, amount: Decimal, now: datetime,
                payment_id: str | None, invoice_id: str | None) -> None:
    balance = session.get(CreditBalance, (customer_id, currency), with_for_update=True)
    if balance is None:
        session.add(CreditBalance(customer_id=customer_id, currency=currency, balance=amount))
    else:
        balance.balance += amount
    session.add(
        CreditEntry(
            customer_id=customer_id, currency=currency, amount=amount, reason="overpayment",
            payment_id=payment_id, invoice_id=invoice_id, created_at=now,
        )
    )


def customer_credit_balance(session: Session, customer_id: str, currency: str) -> Decimal:
    row = session.get(CreditBalance, (customer_id, currency))
    return row.balance if row is not None else ZERO


# --- receiving money -------------------------------------------------------------------------


def _receive(session: Session, svc: PaymentService, payment: Payment) -> None:
    """A payment succeeded: apply it to its invoice, the rest to customer credit; journal it;
    publish payment.succeeded."""
    now = svc.now()
    amount = payment.amount
    rec = _receivable(session, payment.invoice_id)
    to_invoice = ZERO
    if rec is not None and rec.currency == payment.currency:
        to_invoice = min(amount, max(rec.remaining, ZERO))
        rec.amount_paid += to_invoice
        if rec.remaining <= 0:
            rec.status = "paid"
    over = amount - to_invoice
    if over > 0:
        _add_credit(session, payment.customer_id, payment.currency, over, now, payment.id, payment.invoice_id)
    journal.post_entry(
        session, f"pay:{payment.id}", payment.captured_at or now, payment.currency,
        [
            Posting(journal.cash_account(payment.provider), debit=amount),
            Posting(journal.RECEIVABLES, credit=to_invoice),
            Posting(journal.CUSTOMER_CREDIT, credit=over),
        ],
        f"payment {payment.method_type} via {payment.provider}", payment.invoice_id or payment.id,
    )
    _emit(session, svc, "payment.succeeded", payment.customer_id, _succeeded_props(payment, rec, to_invoice, over))


def _succeeded_props(payment: Payment | None, rec: Receivable | None, applied: Decimal, credited: Decimal,
                     method: str | None = None) -> dict[str, Any]:
    currency = payment.currency if payment else (rec.currency if rec else None)
    props: dict[str, Any] = {
        "payment_id": payment.id if payment else None,
        "invoice_id": rec.invoice_id if rec else (payment.invoice_id if payment else None),
        "amount": _money(payment.amount if payment else applied, currency),
        "currency": currency,
        "method": method or (payment.method_type if payment else None),
        "provider": payment.provider if payment else None,
        "provider_reference": payment.provider_ref if payment else None,
        "attempt": payment.attempt if payment else None,
        "applied_to_invoice": _money(applied, currency),
        "credited": _money(credited, currency),
    }
    if rec is not None:
        props.update(
            invoice_amount_paid=_money(rec.amount_paid + rec.credit_applied, currency),
            invoice_remaining=_money(max(rec.remaining, ZERO), currency),
            invoice_paid=rec.status == "paid",
        )
    return props


def _fail(session: Session, svc: PaymentService, payment: Payment, decline_code: str, retryable: bool) -> None:
    payment.status = "failed"
    payment.decline_code = decline_code
    payment.retryable = retryable
    payment.needs_lookup = False
    payment.updated_at = svc.now()
    props = {
        "payment_id": payment.id,
        "invoice_id": payment.invoice_id,
        "amount": _money(payment.amount, payment.currency),
        "currency": payment.currency,
        "method": payment.method_type,
        "provider": payment.provider,
        "attempt": payment.attempt,
        "decline_code": decline_code,
        "retryable": retryable,
    }
    _emit(session, svc, "payment.failed", payment.customer_id, props)
    if payment.invoice_id is not None:
        _emit_invoice_failed(session, svc, payment.invoice_id, payment.customer_id, payment.attempt,
                             decline_code, retryable, payment.id)


def _emit_invoice_failed(session: Session, svc: PaymentService, invoice_id: str, customer_id: str,
                         attempt: int, decline_code: str, retryable: bool, payment_id: str | None) -> None:
    rec = _receivable(session, invoice_id, lock=False)
    remaining = _money(rec.remaining, rec.currency) if rec else None
    currency = rec.currency if rec else None
    _emit(session, svc, "invoice.payment_failed", customer_id, {
        "invoice_id": invoice_id,
        "attempt": attempt,
        "decline_code": decline_code,
        "retryable": retryable,
        "payment_id": payment_id,
        "amount_due": remaining,
        "currency": currency,
        # The same facts nested, so rule paths such as `invoice.attempt` read naturally.
        "invoice": {"id": invoice_id, "attempt": attempt, "amount_due": remaining, "currency": currency},
    })


def apply_charge_outcome(session: Session, svc: PaymentService, payment: Payment, outcome: ChargeOutcome) -> str:
    """Move a payment to what the provider says. Terminal states never change here (a late
    or duplicated webhook saying the same thing, or something older, is ignored). Returns the
    payment's status afterwards."""
    if payment.status != "pending":
        return payment.status
    now = svc.now()
    if outcome.provider_ref:
        payment.provider_ref = outcome.provider_ref
    payment.updated_at = now
    if outcome.state is PaymentState.PENDING:
        payment.needs_lookup = False
        return payment.status
    if outcome.state in (PaymentState.SUCCEEDED, PaymentState.REFUNDED):
        if outcome.currency != payment.currency:
            # The provider took another currency than we asked: never apply it blindly.
            payment.needs_lookup = True
            return payment.status
        payment.status = "succeeded"
        payment.needs_lookup = False
        # The money that moved is what the provider captured.
        payment.amount = outcome.amount
        payment.captured_at = outcome.captured_at or now
        _receive(session, svc, payment)
        return payment.status
    _fail(session, svc, payment, outcome.decline_code or "generic_decline", bool(outcome.retryable))
    return payment.status


def _charge_request(session: Session, payment: Payment) -> ChargeRequest:
    method = session.get(PaymentMethod, payment.method_id) if payment.method_id else None
    return ChargeRequest(
        idempotency_key=payment.idempotency_key,
        amount=payment.amount,
        currency=payment.currency,
        customer_id=payment.customer_id,
        method_type=payment.method_type,
        token=method.token if method else None,
        payment_reference=payment.payment_reference,
        description=f"invoice {payment.invoice_id}" if payment.invoice_id else "",
        metadata={"invoice_id": payment.invoice_id or "", "attempt": str(payment.attempt)},
    )


def _resolve_pending(session: Session, svc: PaymentService, payment: Payment) -> str:
    """Ask the provider what became of a pending attempt; re-send the charge (same key) only
    when the provider never saw it."""
    adapter = svc.adapter(payment.provider)
    try:
        outcome = adapter.lookup(payment.idempotency_key)
        if outcome is None:
            outcome = adapter.charge(_charge_request(session, payment))
    except ProviderError:
        payment.needs_lookup = True
        payment.updated_at = svc.now()
        return payment.status
    except ProviderRejected as exc:
        _fail(session, svc, payment, f"rejected:{exc.code}", False)
        return payment.status
    return apply_charge_outcome(session, svc, payment, outcome)


def _result(payment: Payment, rec: Receivable | None) -> CollectionResult:
    remaining = max(rec.remaining, ZERO) if rec else ZERO
    if payment.status == "succeeded":
        status = "paid" if rec is None or rec.status == "paid" else "partially_paid"
    else:
        status = payment.status
    return CollectionResult(
        status=status,
        invoice_id=payment.invoice_id or "",
        payment_id=payment.id,
        decline_code=payment.decline_code,
        retryable=payment.retryable,
        remaining=remaining,
        payment_reference=rec.payment_reference if rec else None,
    )


def collect_invoice(
    session: Session,
    invoice: CollectableInvoice,
    *,
    service: PaymentService,
    collection_method: str = "automatic",
) -> CollectionResult:
    """Collect `invoice` (attempt `invoice.attempt`) from the customer's default method:
    customer credit first, then the provider. Idempotent per (invoice, attempt)."""
    svc = service
    if invoice.attempt < 1:
        raise PaymentError("attempt numbers start at 1")
    open_receivable(session, invoice, collection_method=collection_method, service=svc)
    rec = _receivable(session, invoice.invoice_id)
    assert rec is not None
    key = attempt_key(invoice.invoice_id, invoice.attempt)
    existing = session.scalar(select(Payment).where(Payment.idempotency_key == key))
    if existing is not None:
        if existing.status == "pending" and existing.provider not in OFFLINE_PROVIDERS:
            _resolve_pending(session, svc, existing)
        return _result(existing, rec)
    if rec.status == "paid":
        return CollectionResult("already_paid", rec.invoice_id, payment_reference=rec.payment_reference)
    if rec.status != "open":  # voided or written off: nothing more is collected
        return CollectionResult(rec.status, rec.invoice_id, payment_reference=rec.payment_reference)
    # An earlier attempt whose outcome is unknown could still have taken the money.
    for earlier in session.scalars(
        select(Payment).where(Payment.invoice_id == rec.invoice_id, Payment.status == "pending")
    ).all():
        if earlier.provider in OFFLINE_PROVIDERS:
            continue
        if _resolve_pending(session, svc, earlier) == "pending":
            return CollectionResult("blocked", rec.invoice_id, payment_id=earlier.id,
                                    remaining=rec.remaining, payment_reference=rec.payment_reference)
    if rec.status == "paid":
        return CollectionResult("already_paid", rec.invoice_id, payment_reference=rec.payment_reference)
    rec.last_attempt = max(rec.last_attempt, invoice.attempt)

    used = _apply_credit(session, svc, rec)
    if rec.status == "paid":
        _emit(session, svc, "payment.succeeded", rec.customer_id,
              _succeeded_props(None, rec, used, ZERO, method="credit"))
        return CollectionResult("paid", rec.invoice_id, payment_reference=rec.payment_reference)

    method = default_payment_method(session, rec.customer_id)
    if rec.collection_method == "bank_transfer" or (
        method is not None and method.provider == "bank"
    ):
        rec.collection_method = "bank_transfer"
        return CollectionResult("awaiting_transfer", rec.invoice_id, remaining=rec.remaining,
                                payment_reference=rec.payment_reference)
    if method is None or method.method_type == "manual":
        _emit_invoice_failed(session, svc, rec.invoice_id, rec.customer_id, invoice.attempt,
                             "no_payment_method", False, None)
        return CollectionResult("no_payment_method", rec.invoice_id, decline_code="no_payment_method",
                                retryable=False, remaining=rec.remaining,
                                payment_reference=rec.payment_reference)
    adapter = svc.adapter(method.provider)
    now = svc.now()
    payment = Payment(
        id=new_event_id("pay"),
        idempotency_key=key,
        invoice_id=rec.invoice_id,
        customer_id=rec.customer_id,
        attempt=invoice.attempt,
        provider=method.provider,
        method_type=method.method_type,
        method_id=method.id,
        amount=rec.remaining,
        currency=rec.currency,
        status="pending",
        payment_reference=rec.payment_reference,
        refunded_amount=ZERO,
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    session.flush()
    try:
        # Look first: a run of this very attempt may have been answered and then lost.
        outcome = adapter.lookup(key)
        if outcome is None:
            outcome = adapter.charge(_charge_request(session, payment))
    except ProviderError:
        payment.needs_lookup = True
        return _result(payment, rec)
    except ProviderRejected as exc:
        _fail(session, svc, payment, f"rejected:{exc.code}", False)
        return _result(payment, rec)
    apply_charge_outcome(session, svc, payment, outcome)
    return _result(payment, rec)


def retry_invoice_payment(session: Session, invoice_id: str, *,
                          service: PaymentService) -> CollectionResult:
    """The next attempt for an open invoice (what `retry_payment` in dunning rules asks)."""
    rec = _receivable(session, invoice_id)
    if rec is None:
        raise PaymentError(f"unknown invoice {invoice_id!r}")
    return collect_invoice(
        session,
        CollectableInvoice(rec.invoice_id, rec.customer_id, rec.amount_due, rec.currency,
                           attempt=rec.last_attempt + 1),
        service=service,
    )


def pay_invoice_now(session: Session, invoice_id: str, *, service: PaymentService) -> CollectionResult:
    """The customer asks to pay an open invoice now (the customer page): the next attempt on
    their default method, through the provider. An invoice that waits for a bank transfer is
    charged when the customer's default method is now one a provider charges (they added a
    card); a transfer that still arrives later is an overpayment, credited to their balance."""
    rec = _receivable(session, invoice_id)
    if rec is None:
        raise PaymentNotFound(f"unknown invoice {invoice_id!r}", "invoice_id")
    method = default_payment_method(session, rec.customer_id)
    if rec.status == "open" and rec.collection_method == "bank_transfer" and method is not None \
            and method.provider not in OFFLINE_PROVIDERS and method.method_type not in ("bank_transfer", "manual"):
        rec.collection_method = "automatic"
    return retry_invoice_payment(session, invoice_id, service=service)


def collect_due_invoices(session: Session, *, service: PaymentService,
                         limit: int = 500) -> list[CollectionResult]:
    """First attempts for automatic invoices that have fallen due (the scheduler calls this)."""
    svc = service
    due = session.scalars(
        select(Receivable)
        .where(Receivable.status == "open", Receivable.collection_method == "automatic",
               Receivable.last_attempt == 0, Receivable.due_at <= svc.now())
        .order_by(Receivable.due_at)
        .limit(limit)
    ).all()
    return [retry_invoice_payment(session, rec.invoice_id, service=svc) for rec in due]


def repair_pending(session: Session, *, service: PaymentService,
                   older_than: timedelta = timedelta(0)) -> dict[str, str]:
    """Resolve attempts and refunds whose outcome we do not know (timeouts, crashes, async
    methods without their webhook) by looking them up at the provider. Returns id -> status."""
    svc = service
    cutoff = svc.now() - older_than
    out: dict[str, str] = {}
    for payment in session.scalars(
        select(Payment).where(Payment.status == "pending", Payment.created_at <= cutoff,
                              Payment.provider.in_(list(svc.adapters)))
    ).all():
        out[payment.id] = _resolve_pending(session, svc, payment)
    for refund in session.scalars(
        select(Refund).where(Refund.status == "pending", Refund.created_at <= cutoff,
                             Refund.provider.in_(list(svc.adapters)))
    ).all():
        out[refund.id] = _resolve_refund(session, svc, refund)
    return out


# --- manual payments -------------------------------------------------------------------------


def record_manual_payment(
    session: Session,
    *,
    customer_id: str,
    amount: Decimal,
    currency: str,
    invoice_id: str | None = None,
    method_type: str = "cash",
    reference: str | None = None,
    received_at: datetime | None = None,
    recorded_by: str | None = None,
    idempotency_key: str | None = None,
    provider: str = "manual",
    provider_ref: str | None = None,
    service: PaymentService,
) -> Payment:
    """An admin records money received outside any provider (cash, cheque, a transfer seen on
    the bank's website). Applied to the invoice; anything above what it owes becomes credit."""
    svc = service
    amount = check_amount(amount, currency)
    if idempotency_key:
        existing = session.scalar(select(Payment).where(Payment.idempotency_key == idempotency_key))
        if existing is not None:
            return existing
    if invoice_id is not None:
        rec = session.get(Receivable, invoice_id)
        if rec is None:
            raise PaymentError(f"unknown invoice {invoice_id!r}")
        if rec.customer_id != customer_id:
            raise PaymentError(f"invoice {invoice_id} belongs to another customer")
        if rec.currency != currency:
            raise PaymentError(f"invoice {invoice_id} is in {rec.currency}, not {currency}")
    now = svc.now()
    payment = Payment(
        id=new_event_id("pay"),
        idempotency_key=idempotency_key or new_event_id("manual"),
        invoice_id=invoice_id,
        customer_id=customer_id,
        attempt=0,
        provider=provider,
        method_type=method_type,
        amount=amount,
        currency=currency,
        status="succeeded",
        provider_ref=provider_ref,
        payment_reference=normalise_reference(reference) if reference else None,
        refunded_amount=ZERO,
        captured_at=received_at or now,
        recorded_by=recorded_by,
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    try:
        session.flush()
    except IntegrityError as exc:
        raise PaymentError(f"payment already recorded: {exc.orig}") from exc
    _receive(session, svc, payment)
    return payment


# --- refunds ---------------------------------------------------------------------------------


def refund_payment(
    session: Session,
    payment_id: str,
    amount: Decimal | None = None,
    *,
    reason: str = "",
    idempotency_key: str | None = None,
    service: PaymentService,
) -> Refund:
    """Refund all or part of a succeeded payment. Above the refundable amount (paid minus
    refunded minus refunds in flight) it is rejected and nothing is recorded."""
    svc = service
    if idempotency_key:
        existing = session.scalar(select(Refund).where(Refund.idempotency_key == idempotency_key))
        if existing is not None:
            return existing
    payment = session.get(Payment, payment_id, with_for_update=True)
    if payment is None:
        raise RefundRejected(f"unknown payment {payment_id!r}")
    if payment.status not in ("succeeded", "refunded"):
        raise RefundRejected(f"payment {payment_id} is {payment.status}; only succeeded payments are refunded")
    in_flight = session.scalar(
        select(func.count()).select_from(Refund).where(Refund.payment_id == payment.id, Refund.status == "pending")
    ) or 0
    pending_sum = sum(
        (r.amount for r in session.scalars(
            select(Refund).where(Refund.payment_id == payment.id, Refund.status == "pending"))),
        ZERO,
    ) if in_flight else ZERO
    refundable = payment.amount - payment.refunded_amount - pending_sum
    if amount is None:
        amount = refundable
    try:
        amount = check_amount(amount, payment.currency, "refund amount")
    except PaymentError as exc:
        raise RefundRejected(str(exc)) from None
    if amount > refundable:
        raise RefundRejected(
            f"refund of {amount} {payment.currency} exceeds the refundable {refundable} "
            f"{payment.currency} of payment {payment.id} (paid {payment.amount}, "
            f"refunded {payment.refunded_amount}, in flight {pending_sum})"
        )
    count = session.scalar(select(func.count()).select_from(Refund).where(Refund.payment_id == payment.id)) or 0
    key = idempotency_key or f"{payment.idempotency_key}:refund:{count + 1}"
    now = svc.now()
    refund = Refund(
        id=new_event_id("re"),
        idempotency_key=key,
        payment_id=payment.id,
        customer_id=payment.customer_id,
        provider=payment.provider,
        amount=amount,
        currency=payment.currency,
        status="pending",
        reason=reason[:200] or None,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    session.flush()
    if payment.provider in OFFLINE_PROVIDERS:
        _apply_refund_outcome(session, svc, refund, PaymentState.SUCCEEDED, None)
        return refund
    adapter = svc.adapter(payment.provider)
    if payment.provider_ref is None:
        raise RefundRejected(f"payment {payment.id} has no provider reference")
    try:
        outcome = adapter.refund(
            RefundRequest(key, payment.provider_ref, amount, payment.currency, reason)
        )
    except ProviderError:
        refund.needs_lookup = True
        return refund
    except ProviderRejected as exc:
        session.delete(refund)
        session.flush()
        raise RefundRejected(f"the provider refused the refund: {exc.code}: {exc.message}") from None
    _apply_refund_outcome(session, svc, refund, outcome.state, outcome.provider_ref)
    return refund


def _resolve_refund(session: Session, svc: PaymentService, refund: Refund) -> str:
    adapter = svc.adapter(refund.provider)
    payment = session.get(Payment, refund.payment_id)
    assert payment is not None
    try:
        outcome = adapter.lookup_refund(refund.idempotency_key)
        if outcome is None and payment.provider_ref:
            outcome = adapter.refund(RefundRequest(refund.idempotency_key, payment.provider_ref,
                                                   refund.amount, refund.currency, refund.reason or ""))
    except ProviderError:
        refund.needs_lookup = True
        return refund.status
    except ProviderRejected:
        refund.status = "failed"
        refund.updated_at = svc.now()
        return refund.status
    if outcome is None:
        return refund.status
    _apply_refund_outcome(session, svc, refund, outcome.state, outcome.provider_ref)
    return refund.status


def apply_refund_outcome(session: Session, svc: PaymentService, refund: Refund, outcome: RefundOutcome) -> str:
    _apply_refund_outcome(session, svc, refund, outcome.state, outcome.provider_ref)
    return refund.status


def _apply_refund_outcome(session: Session, svc: PaymentService, refund: Refund,
                          state: PaymentState, provider_ref: str | None) -> None:
    if refund.status != "pending":
        return
    now = svc.now()
    refund.provider_ref = provider_ref or refund.provider_ref
    refund.updated_at = now
    if state is PaymentState.PENDING:
        refund.needs_lookup = False
        return
    if state is PaymentState.FAILED:
        refund.status = "failed"
        return
    refund.status = "succeeded"
    refund.needs_lookup = False
    payment = session.get(Payment, refund.payment_id, with_for_update=True)
    assert payment is not None
    payment.refunded_amount += refund.amount
    if payment.refunded_amount >= payment.amount:
        payment.status = "refunded"
    payment.updated_at = now
    journal.post_entry(
        session, f"refund:{refund.id}", now, refund.currency,
        [Posting(journal.REFUNDS, debit=refund.amount),
         Posting(journal.cash_account(payment.provider), credit=refund.amount)],
        f"refund of payment {payment.id}", payment.invoice_id or payment.id,
    )
    _emit(session, svc, "payment.refunded", payment.customer_id, {
        "refund_id": refund.id,
        "payment_id": payment.id,
        "invoice_id": payment.invoice_id,
        "amount": _money(refund.amount, refund.currency),
        "currency": refund.currency,
        "total_refunded": _money(payment.refunded_amount, payment.currency),
        "fully_refunded": payment.status == "refunded",
        "reason": refund.reason,
    })


# --- queries for other subsystems ------------------------------------------------------------


def invoice_payment_summary(session: Session, invoice_id: str) -> dict[str, Any] | None:
    """What payments knows of an invoice, for GET /v1/invoices/{id}."""
    rec = session.get(Receivable, invoice_id)
    if rec is None:
        return None
    payments = session.scalars(
        select(Payment).where(Payment.invoice_id == invoice_id).order_by(Payment.created_at)
    ).all()
    return {
        "invoice_id": rec.invoice_id,
        "status": rec.status,
        "currency": rec.currency,
        "amount_due": _money(rec.amount_due, rec.currency),
        "amount_paid": _money(rec.amount_paid, rec.currency),
        "credit_applied": _money(rec.credit_applied, rec.currency),
        "remaining": _money(max(rec.remaining, ZERO), rec.currency),
        "payment_reference": rec.payment_reference,
        "payments": [
            {
                "id": p.id, "attempt": p.attempt, "status": p.status, "amount": _money(p.amount, p.currency),
                "method": p.method_type, "provider": p.provider, "decline_code": p.decline_code,
                "retryable": p.retryable, "refunded": _money(p.refunded_amount, p.currency),
                "captured_at": p.captured_at.isoformat() if p.captured_at else None,
            }
            for p in payments
        ],
    }
