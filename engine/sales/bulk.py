"""Bulk reads for other subsystems' sweeps (the scheduler's scheduled rules): many subjects in
a few queries, as the same dicts the one-at-a-time functions return.

    rows = scan(session, "invoice", filters=[ScanFilter(issued=((lo, hi),))], after="", limit=2000)
    customers = customers_by_id(session, ids)

A filter narrows a scan in SQL: a row passes when it passes any of the filters. Callers
express conditions on their own tables as a `Select` of customer ids (`customers_in`,
`customers_not_in`), so sales never reads another subsystem's tables, nor they its.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, false, inspect, or_, select, true
from sqlalchemy.orm import Session

from engine.sales.customers import customer_to_dict
from engine.sales.invoice_views import invoice_summary
from engine.sales.models import Customer, Invoice, Subscription
from engine.sales.queries import LIVE
from engine.sales.subscriptions import subscription_to_dict

KINDS = ("invoice", "subscription", "customer")
_CHUNK = 1000  # ids per IN list


@dataclass(frozen=True)
class ScanFilter:
    """One alternative of a scan. `issued`: [from, until) ranges of the invoice's issue time
    (None: no bound; an invoice without an issue time always passes, its age is unknown);
    `customers_in` / `customers_not_in`: a Select of customer ids."""

    issued: tuple[tuple[datetime | None, datetime | None], ...] | None = None
    customers_in: Any = None
    customers_not_in: Any = None


@dataclass(frozen=True)
class _Kind:
    """What a sweep visits of one kind: the table, the subjects (`where`), the customer
    column its filters read, and the dict each row is returned as."""

    model: Any
    where: tuple[Any, ...]
    customer: Any
    to_dict: Callable[[Any], dict[str, Any]]


_KINDS = {
    "invoice": _Kind(Invoice, (Invoice.status == "finalized",), Invoice.customer_id, invoice_summary),
    "subscription": _Kind(Subscription, (Subscription.status.in_(LIVE),), Subscription.customer_id,
                          subscription_to_dict),
    "customer": _Kind(Customer, (), Customer.id, customer_to_dict),
}


def _clause(kind: str, f: ScanFilter) -> Any:
    parts: list[Any] = []
    if f.issued is not None:
        if kind != "invoice":
            raise ValueError("ScanFilter.issued applies to invoices only")
        ranges = []
        for lo, hi in f.issued:
            bounds = [c for c in (Invoice.issued_at >= lo if lo is not None else None,
                                  Invoice.issued_at < hi if hi is not None else None) if c is not None]
            ranges.append(and_(true(), *bounds))
        parts.append(or_(Invoice.issued_at.is_(None), *ranges) if ranges else Invoice.issued_at.is_(None))
    column = _KINDS[kind].customer
    if f.customers_in is not None:
        parts.append(column.in_(f.customers_in))
    if f.customers_not_in is not None:
        parts.append(column.not_in(f.customers_not_in))
    return and_(true(), *parts)


def scan(session: Session, kind: str, *, after: str = "", limit: int = 2000,
         filters: Sequence[ScanFilter] | None = None) -> list[dict[str, Any]]:
    """One page, ordered by id after `after`, of the subjects a sweep visits: finalized
    (unpaid) invoices, live subscriptions, or every customer. `filters=None`: no filter;
    an empty list: nothing passes."""
    spec = _KINDS.get(kind)
    if spec is None:
        raise ValueError(f"kind: {kind!r} is one of {KINDS}")
    model = spec.model
    stmt: Any = select(model).where(*spec.where)
    if filters is not None:
        stmt = stmt.where(or_(false(), *(_clause(kind, f) for f in filters)))
    rows = session.execute(_plain(stmt).where(model.id > after).order_by(model.id).limit(limit))
    return [spec.to_dict(r) for r in rows]


def _plain(stmt: Any) -> Any:
    """The same query returning plain rows of every column instead of ORM objects: the dicts
    read the same attributes, and a sweep's thousands of rows load several times faster."""
    model = stmt.column_descriptions[0]["entity"]
    return stmt.with_only_columns(*(getattr(model, a.key) for a in inspect(model).column_attrs))


def _by_id(session: Session, kind: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    spec = _KINDS[kind]
    model = spec.model
    wanted = sorted(set(ids))
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), _CHUNK):
        for row in session.execute(_plain(select(model).where(model.id.in_(wanted[start:start + _CHUNK])))):
            out[row.id] = spec.to_dict(row)
    return out


def invoices_by_id(session: Session, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Invoice summaries (as `get_invoice`, without lines, payments and credit notes)."""
    return _by_id(session, "invoice", ids)


def subscriptions_by_id(session: Session, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    return _by_id(session, "subscription", ids)


def customers_by_id(session: Session, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    return _by_id(session, "customer", ids)


def live_subscriptions(session: Session, customer_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each customer's live subscription (the most recent, as `active_subscription`)."""
    wanted = sorted(set(customer_ids))
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), _CHUNK):
        rows = session.execute(_plain(
            select(Subscription)
            .where(Subscription.customer_id.in_(wanted[start:start + _CHUNK]), Subscription.status.in_(LIVE))
            .order_by(Subscription.created_at.desc(), Subscription.id.desc())))
        for row in rows:
            out.setdefault(row.customer_id, _KINDS["subscription"].to_dict(row))
    return out
