"""The books over HTTP, for finance (a `finance` or `admin` key): the journal through the chart
of accounts as CSV or beancount, the trial balance, revenue recognised vs billed per month and
plan, and the month close. Every range is [from, to): dates, `to` exclusive; an empty or reversed
range answers nothing (as the webhook replay does): what the contract calls valid is accepted.
Months are YYYY-MM from 1970-01 to 2199-12 (the engine's range of times), in the pattern: a
year-0 month is refused as invalid (422 naming the field), never parsed into a 500."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy.orm import Session

from engine.api.context import ApiContext
from engine.api.deps import FINANCE, context
from engine.api.errors import domain_errors
from engine.api.problems import Problem, documented
from engine.api.routes.payments import service_of
from engine.payments import UnbalancedEntry, books

router = APIRouter(prefix="/v1/books", tags=["books"], responses=documented(400, 401, 403, 409, 422))
MONTH = r"^(19[7-9][0-9]|2[01][0-9]{2})-(0[1-9]|1[0-2])$"


def _iso_day(value: object) -> object:
    # pydantic would take "0" as seconds since 1970: the contract's format `date` is YYYY-MM-DD text.
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise ValueError("a date, YYYY-MM-DD")
    return value


Day = Annotated[date, BeforeValidator(_iso_day)]


def _month(text: str) -> date:
    """The first day of a YYYY-MM the pattern MONTH has let through (1970-01 to 2199-12)."""
    return date(int(text[:4]), int(text[5:7]), 1)


def chart_of(ctx: ApiContext) -> books.ChartOfAccounts:
    return ctx.payments.chart_or_default()


def _at(value: date) -> datetime:
    return datetime.combine(value, datetime.min.time(), UTC)


def _instant(value: date | None) -> datetime | None:
    return _at(value) if value is not None else None


@contextmanager
def _reading(ctx: ApiContext) -> Iterator[Session]:
    """A read session whose journal problems are answers: 409 when an entry does not balance or
    an account has no place in the chart (nothing is written)."""
    with domain_errors(), ctx.db.read_session() as session:
        try:
            yield session
        except books.UnmappedAccount as exc:
            raise Problem(409, str(exc), "chart") from None
        except UnbalancedEntry as exc:
            raise Problem(409, str(exc), "journal") from None


@router.get("/trial_balance", dependencies=[FINANCE], summary="Debits, credits and balance per ledger account and currency")
def get_trial_balance(end: Annotated[Day, Query(alias="to", description="the day after the last")],
                      start: Annotated[Day | None, Query(alias="from", description="first day (default: the beginning)")] = None,
                      ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with _reading(ctx) as session:
        return books.trial_balance(session, chart_of(ctx), _instant(start), _at(end)).as_dict()


@router.get("/journal", dependencies=[FINANCE], summary="The journal through the chart of accounts, as CSV or beancount",
            response_class=Response, responses={200: {"content": {"text/csv": {}, "text/plain": {}}}})
def get_journal(start: Annotated[Day, Query(alias="from", description="first day")],
                end: Annotated[Day, Query(alias="to", description="the day after the last; not after from: nothing")],
                format: str = Query("csv", pattern="^(csv|beancount)$"),
                ctx: ApiContext = Depends(context)) -> Response:
    with _reading(ctx) as session:
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
def get_revenue(start: str = Query(..., alias="from", pattern=MONTH, description="YYYY-MM, 1970-01 to 2199-12"),
                end: str = Query(..., alias="to", pattern=MONTH, description="YYYY-MM, inclusive; before from: nothing"),
                customer_id: str | None = Query(None, max_length=64, description="one customer's invoices only"),
                ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    first, last = _month(start), _month(end)
    with ctx.db.read_session() as session:
        # A reversed range has no month in it (at most 2,760 months otherwise: 1970-2199).
        rows = books.revenue_report(session, first, last, customer_id=customer_id) if first <= last else []
    return {"from": start, "to": end, "items": [r.as_dict() for r in rows]}


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"month": "2026-01"}]})
    month: str = Field(pattern=MONTH, description="YYYY-MM, 1970-01 to 2199-12: a month that has ended (409 if not yet)")
    currency: str | None = Field(default=None, pattern="^[A-Z]{3}$", description="default: every currency billed")


@router.post("/close", dependencies=[FINANCE], summary="Close a month: move what is billed and not yet earned to deferred revenue")
def close(body: CloseIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    month = _month(body.month)
    if service_of(ctx).now() < books.month_end(month):
        # The clock's state, not the request's shape: a valid month closes once it has ended.
        raise Problem(409, f"{body.month} has not ended yet (today is {service_of(ctx).now().date()})", "month")
    with domain_errors(), ctx.db.session() as session:
        entries = ctx.operations.close_month(session, month, [body.currency] if body.currency else None,
                                          service=service_of(ctx))
    return {"month": body.month, "entries": entries}
