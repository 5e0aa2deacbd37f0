"""The books over HTTP, for finance (a `finance` or `admin` key): the journal through the chart
of accounts as CSV or beancount, the trial balance, revenue recognised vs billed per month and
plan, and the month close. Every range is [from, to): dates, `to` exclusive."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from engine.api.context import ApiContext
from engine.api.deps import FINANCE, context
from engine.api.errors import domain_errors
from engine.api.problems import Problem, documented
from engine.api.routes.payments import service_of
from engine.payments import UnbalancedEntry, books

router = APIRouter(prefix="/v1/books", tags=["books"], responses=documented(400, 401, 403, 409, 422))
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


def chart_of(ctx: ApiContext) -> books.ChartOfAccounts:
    return ctx.chart or books.default_chart()


def _at(value: date) -> datetime:
    return datetime.combine(value, datetime.min.time(), UTC)


def _instant(value: date | None) -> datetime | None:
    return _at(value) if value is not None else None


@contextmanager
def _reading(ctx: ApiContext, start: date | None, end: date) -> Iterator[Session]:
    """A read session whose journal problems are answers: 409 when an entry does not balance or
    an account has no place in the chart (nothing is written), 422 for a reversed range."""
    if start is not None and start >= end:
        raise Problem(422, f"from ({start}) must be before to ({end})", "from")
    with domain_errors(), ctx.db.read_session() as session:
        try:
            yield session
        except books.UnmappedAccount as exc:
            raise Problem(409, str(exc), "chart") from None
        except UnbalancedEntry as exc:
            raise Problem(409, str(exc), "journal") from None


@router.get("/trial_balance", dependencies=[FINANCE], summary="Debits, credits and balance per ledger account and currency")
def get_trial_balance(start: date | None = Query(None, alias="from", description="first day (default: the beginning)"),
                      end: date = Query(..., alias="to", description="the day after the last"),
                      ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with _reading(ctx, start, end) as session:
        return books.trial_balance(session, chart_of(ctx), _instant(start), _at(end)).as_dict()


@router.get("/journal", dependencies=[FINANCE], summary="The journal through the chart of accounts, as CSV or beancount",
            response_class=Response, responses={200: {"content": {"text/csv": {}, "text/plain": {}}}})
def get_journal(start: date = Query(..., alias="from"), end: date = Query(..., alias="to"),
                format: str = Query("csv", pattern="^(csv|beancount)$"),
                ctx: ApiContext = Depends(context)) -> Response:
    with _reading(ctx, start, end) as session:
        lines = books.book_lines(session, chart_of(ctx), _at(start), _at(end))
    out = io.StringIO()
    if format == "csv":
        books.write_csv(lines, out)
        return Response(out.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="journal-{start}-{end}.csv"'})
    books.write_beancount(lines, out, title=f"journal {start} to {end}")
    return Response(out.getvalue(), media_type="text/plain; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="journal-{start}-{end}.beancount"'})


@router.get("/revenue", dependencies=[FINANCE], summary="Billed, recognised and deferred revenue per month and plan")
def get_revenue(start: str = Query(..., alias="from", pattern=MONTH), end: str = Query(..., alias="to", pattern=MONTH),
                customer_id: str | None = Query(None, max_length=64, description="one customer's invoices only"),
                ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    first, last = date.fromisoformat(start + "-01"), date.fromisoformat(end + "-01")
    if first > last:
        raise Problem(422, f"from ({start}) is after to ({end})", "from")
    if (last.year - first.year) * 12 + last.month - first.month >= 120:
        raise Problem(422, "at most 120 months at once", "to")
    with ctx.db.read_session() as session:
        rows = books.revenue_report(session, first, last, customer_id=customer_id)
    return {"from": start, "to": end, "items": [r.as_dict() for r in rows]}


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"month": "2026-01"}]})
    month: str = Field(pattern=MONTH, description="YYYY-MM: a month that has ended")
    currency: str | None = Field(default=None, pattern="^[A-Z]{3}$", description="default: every currency billed")


@router.post("/close", dependencies=[FINANCE], summary="Close a month: move what is billed and not yet earned to deferred revenue")
def close(body: CloseIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    month = date.fromisoformat(body.month + "-01")
    with domain_errors(), ctx.db.session() as session:
        wanted = [body.currency] if body.currency else books.currencies(session)
        entries = [books.close_month(session, month, c, service=service_of(ctx)) for c in wanted]
    return {"month": body.month, "entries": entries}
