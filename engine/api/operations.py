"""The operator operations the HTTP routes call, as typed components: each joins subsystems
(sales and payments for an issued invoice or the month close, sales and users' audit for a
rollback) or is the one its CLI command calls too, so they live in engine/system/operations
and `engine/system/api_operations.py` binds them here. A route module imports none of them:
it calls `ctx.operations.<name>` and maps `engine.errors.OperationError` to a problem."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Literal, Protocol

from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.payments import PaymentService

Versioned = Literal["catalog", "ruleset"]


class InvoiceAmountChange(Protocol):
    """Credit or refund `amount` of an issued invoice (None: all that is left)."""

    def __call__(
        self,
        session: Session,
        invoice_id: str,
        amount: Decimal | None,
        reason: str,
        *,
        clock: Clock,
        service: PaymentService,
    ) -> dict[str, Any]: ...


class InvoiceClose(Protocol):
    """Void an open invoice, or write off what it still owes."""

    def __call__(
        self, session: Session, invoice_id: str, *, clock: Clock, service: PaymentService
    ) -> dict[str, Any]: ...


class MonthClose(Protocol):
    def __call__(
        self, session: Session, month: date, currencies: list[str] | None, *, service: PaymentService
    ) -> list[dict[str, Any]]: ...


class Published(Protocol):
    """A document published as a version (`PublishedItem`), as the answer lists it."""

    def as_dict(self) -> dict[str, Any]: ...


class PublishTexts(Protocol):
    def __call__(
        self, session: Session, texts: Sequence[tuple[str, str]], actor: str, comment: str = "", *, clock: Clock
    ) -> Sequence[Published]: ...


class Rollback(Protocol):
    def __call__(
        self,
        session: Session,
        kind: Versioned,
        name: str,
        to_version: int,
        why: str,
        *,
        actor: dict[str, Any],
        clock: Clock,
    ) -> dict[str, Any]: ...


class MigrateCatalog(Protocol):
    def __call__(
        self,
        session: Session,
        catalog: str,
        version: int | None = None,
        *,
        clock: Clock,
        plan: str | None = None,
        subscription_ids: list[str] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]: ...


class AddUser(Protocol):
    def __call__(self, session: Session, name: str, role: str, password: str, *, clock: Clock) -> dict[str, Any]: ...


class ChangeUser(Protocol):
    def __call__(
        self, session: Session, name: str, *, role: str | None = None, disabled: bool | None = None
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ApiOperations:
    # engine/system/operations/invoice_closing.py: the invoice (sales) with the receivable
    # and journal (payments), in the caller's transaction.
    credit_invoice: InvoiceAmountChange
    refund_invoice: InvoiceAmountChange
    void_invoice: InvoiceClose
    mark_uncollectible: InvoiceClose
    # engine/system/operations/month_close.py: sales' unbilled usage posted by payments' books.
    close_month: MonthClose
    # engine/system/operations/{publishing,rollback,migration,users}.py: what the CLI calls.
    publish_texts: PublishTexts
    rollback: Rollback
    migrate_catalog: MigrateCatalog
    add_user: AddUser
    change_user: ChangeUser
