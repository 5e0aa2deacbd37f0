"""What opening and collecting an invoice reads: one query each (`Reads`, retries and
collect_due_invoices), or read ahead in bulk for a bus batch of invoice.finalized
(`BatchReads`, handlers.handle_invoices_finalized), as automation/reads.py does for rules;
and so when what it adds is written: one by one at once, a batch's all at the batch's end.

A batch's reads are the single reads' answers, read before the batch: the receivables the
batch names (and so whether each exists), the payment references already taken, the bank
references and revenue schedules already written, each invoice's attempts (by idempotency
key, and those still pending), the customers' credit balances (locked, as `_apply_credit`
locks them) and default payment methods. Only the batch's own events change these rows
while it runs (the bus applies one subsystem's batch at a time, in one transaction), and
an event changes only its own invoice and customer, so after each event `forget` drops
that invoice's and customer's rows and a later event of the batch about them reads afresh.
What an event adds that another invoice could meet (a payment reference, a bank reference,
a revenue schedule) is remembered as taken.

Writes: one by one, a receivable is opened in its own savepoint (another process's opening
of the same invoice is adopted, receivables.open_receivable) and an attempt is written before
its provider is asked. A batch writes what its events add in one flush at its end: no
savepoint an invoice (the bus already holds the batch in one, events/apply.py, and re-applies
it event by event, each in its own, when anything fails, a clash on a unique key included),
and an attempt's provider call is made safe by its idempotency key (looked up first, then
charged under the same key), as for a process killed before its commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from engine.payments.method_store import default_payment_method
from engine.payments.models import (
    CreditBalance,
    InvoiceReference,
    Payment,
    PaymentMethod,
    Receivable,
    RevenueScheduleRow,
)
from engine.payments.service import _receivable, attempt_key


class Reads:
    """The single reads: one query each."""

    def receivable(self, session: Session, invoice_id: str) -> Receivable | None:
        return session.get(Receivable, invoice_id)

    def locked_receivable(self, session: Session, invoice_id: str) -> Receivable | None:
        """The receivable, locked for this transaction (FOR UPDATE on PostgreSQL)."""
        return _receivable(session, invoice_id)

    def opened(self, rec: Receivable) -> None:
        """`rec` was inserted by this transaction (no one else can see or lock it)."""

    def reference_taken(self, session: Session, reference: str) -> bool:
        return session.scalar(
            select(Receivable.invoice_id).where(Receivable.payment_reference == reference)
        ) is not None

    def bank_references(self, session: Session, wanted: Iterable[str]) -> set[str]:
        """Of `wanted` (pay_invoice_references keys), those written already."""
        return set(session.scalars(select(InvoiceReference.reference).where(InvoiceReference.reference.in_(wanted))))

    def added_bank_references(self, references: Iterable[str]) -> None:
        """`references` were written by this transaction."""

    def scheduled(self, session: Session, source: str) -> bool:
        """Whether revenue schedule rows of `source` ("inv:<id>") are written already."""
        return session.scalar(
            select(RevenueScheduleRow.id).where(RevenueScheduleRow.source_id == source).limit(1)
        ) is not None

    def payment(self, session: Session, key: str) -> Payment | None:
        """The attempt with idempotency key `key`."""
        return session.scalar(select(Payment).where(Payment.idempotency_key == key))

    def pending(self, session: Session, invoice_id: str) -> list[Payment]:
        """The invoice's attempts whose outcome is not known yet."""
        return list(session.scalars(
            select(Payment).where(Payment.invoice_id == invoice_id, Payment.status == "pending")
        ))

    def credit_balance(self, session: Session, customer_id: str, currency: str) -> CreditBalance | None:
        return session.get(CreditBalance, (customer_id, currency), with_for_update=True)

    def default_method(self, session: Session, customer_id: str) -> PaymentMethod | None:
        return default_payment_method(session, customer_id)

    def opening(self, session: Session) -> AbstractContextManager[object]:
        """What a receivable is opened in: its own savepoint."""
        return session.begin_nested()

    def write_now(self, session: Session) -> None:
        """What was just added (an attempt before its provider is asked, bank references):
        written at once, so a clash on a unique key stops here."""
        session.flush()

    def scheduled_now(self, source: str) -> None:
        """Revenue schedule rows of `source` were written (or are pending for the batch's end)."""


ONE_BY_ONE = Reads()


class BatchReads(Reads):
    """The reads of a batch of invoices (id, customer, currency, payment reference, bank
    references wanted, schedule source), made ahead in a few queries."""

    def __init__(self, session: Session, invoices: Sequence[Any], *, references: Iterable[str],
                 bank: Iterable[str], sources: Iterable[str]) -> None:
        ids = sorted({i.invoice_id for i in invoices})
        self._fresh: set[str] = set()  # inserted by this transaction: locked by nature
        self._read_receivables(session, ids, sorted(set(references)))
        self._bank_asked = set(bank)
        self._bank = Reads.bank_references(self, session, sorted(self._bank_asked)) if self._bank_asked else set()
        self._sources = set(sources)
        self._scheduled = _scheduled(session, self._sources)
        self._read_payments(session, invoices, ids)
        self._read_balances(session, sorted({(i.customer_id, i.currency) for i in invoices}))
        self._read_methods(session, sorted({i.customer_id for i in invoices}))

    def _read_receivables(self, session: Session, ids: list[str], refs: list[str]) -> None:
        self._receivables: dict[str, Receivable | None] = dict.fromkeys(ids)
        self._receivables.update(
            {r.invoice_id: r for r in session.scalars(select(Receivable).where(Receivable.invoice_id.in_(ids)))}
        )
        self._references_asked = set(refs)
        self._references = set(session.scalars(
            select(Receivable.payment_reference).where(Receivable.payment_reference.in_(refs))
        )) if refs else set()

    def _read_payments(self, session: Session, invoices: Sequence[Any], ids: list[str]) -> None:
        self._keys: dict[str, set[str]] = {}  # invoice id -> the attempt keys read
        for i in invoices:
            self._keys.setdefault(i.invoice_id, set()).add(attempt_key(i.invoice_id, i.attempt))
        keys = sorted(k for ks in self._keys.values() for k in ks)
        self._payments: dict[str, Payment] = {p.idempotency_key: p for p in session.scalars(
            select(Payment).where(Payment.idempotency_key.in_(keys)))}
        self._pending: dict[str, list[Payment]] = {i: [] for i in ids}
        for p in session.scalars(select(Payment).where(Payment.invoice_id.in_(ids), Payment.status == "pending")
                                 .order_by(Payment.created_at, Payment.id)):
            self._pending[str(p.invoice_id)].append(p)

    def _read_balances(self, session: Session, pairs: list[tuple[str, str]]) -> None:
        # Locked as the single read locks them (FOR UPDATE on PostgreSQL), in key order.
        balances: Iterable[CreditBalance] = session.scalars(
            select(CreditBalance)
            .where(tuple_(CreditBalance.customer_id, CreditBalance.currency).in_(pairs))
            .order_by(CreditBalance.customer_id, CreditBalance.currency)
            .with_for_update()
        ) if pairs else []
        self._balances: dict[str, dict[str, CreditBalance | None]] = {}  # customer -> currency -> row
        for customer_id, currency in pairs:
            self._balances.setdefault(customer_id, {})[currency] = None
        for b in balances:
            self._balances[b.customer_id][b.currency] = b

    def _read_methods(self, session: Session, customers: list[str]) -> None:
        self._methods: dict[str, PaymentMethod | None] = dict.fromkeys(customers)
        for m in session.scalars(
            select(PaymentMethod)
            .where(PaymentMethod.customer_id.in_(customers), PaymentMethod.is_default)
            .order_by(PaymentMethod.customer_id, PaymentMethod.created_at.desc())
        ):
            if self._methods.get(m.customer_id) is None:
                self._methods[m.customer_id] = m

    def forget(self, invoice_id: str, customer_id: str) -> None:
        """The event of `invoice_id` ran: its invoice's and customer's rows are read again."""
        self._receivables.pop(invoice_id, None)
        self._fresh.discard(invoice_id)
        self._pending.pop(invoice_id, None)
        self._keys.pop(invoice_id, None)
        self._methods.pop(customer_id, None)
        self._balances.pop(customer_id, None)

    def receivable(self, session: Session, invoice_id: str) -> Receivable | None:
        if invoice_id in self._receivables:
            return self._receivables[invoice_id]
        return super().receivable(session, invoice_id)

    def locked_receivable(self, session: Session, invoice_id: str) -> Receivable | None:
        if invoice_id in self._fresh:
            return self._receivables[invoice_id]
        return super().locked_receivable(session, invoice_id)

    def opened(self, rec: Receivable) -> None:
        self._receivables[rec.invoice_id] = rec
        self._fresh.add(rec.invoice_id)
        if rec.payment_reference:
            self._references.add(rec.payment_reference)

    def reference_taken(self, session: Session, reference: str) -> bool:
        # The batch's references were read; the batch's own are added as opened.
        if reference in self._references_asked or reference in self._references:
            return reference in self._references
        return super().reference_taken(session, reference)

    def bank_references(self, session: Session, wanted: Iterable[str]) -> set[str]:
        wanted = set(wanted)
        if wanted <= self._bank_asked:
            return wanted & self._bank
        return super().bank_references(session, wanted)

    def added_bank_references(self, references: Iterable[str]) -> None:
        self._bank.update(references)

    def scheduled(self, session: Session, source: str) -> bool:
        if source in self._sources:
            return source in self._scheduled
        return super().scheduled(session, source)

    def payment(self, session: Session, key: str) -> Payment | None:
        if key in self._keys.get(key.rsplit(":", 1)[0], ()):
            return self._payments.get(key)
        return super().payment(session, key)

    def pending(self, session: Session, invoice_id: str) -> list[Payment]:
        if invoice_id in self._pending:
            return self._pending[invoice_id]
        return super().pending(session, invoice_id)

    def credit_balance(self, session: Session, customer_id: str, currency: str) -> CreditBalance | None:
        held = self._balances.get(customer_id, {})
        if currency in held:
            return held[currency]
        return super().credit_balance(session, customer_id, currency)

    def default_method(self, session: Session, customer_id: str) -> PaymentMethod | None:
        if customer_id in self._methods:
            return self._methods[customer_id]
        return super().default_method(session, customer_id)

    def opening(self, session: Session) -> AbstractContextManager[object]:
        return nullcontext()

    def write_now(self, session: Session) -> None:
        """Nothing: the batch's rows are written together at its end."""

    def scheduled_now(self, source: str) -> None:
        self._scheduled.add(source)

    def method_added(self, customer_id: str) -> None:
        """The customer's methods changed: read its default again."""
        self._methods.pop(customer_id, None)


def _scheduled(session: Session, sources: set[str]) -> set[str]:
    if not sources:
        return set()
    return set(session.scalars(
        select(RevenueScheduleRow.source_id).where(RevenueScheduleRow.source_id.in_(sorted(sources))).distinct()
    ))
