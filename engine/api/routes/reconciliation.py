"""Bank reconciliation over HTTP: import a bank file (camt.053 / camt.054, or a provider's
settlement CSV), list what could not be matched with suggestions, and let an operator confirm,
split or dismiss a line. Every decision is recorded with the API key that made it and why."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from engine import payments
from engine.api.context import ApiContext
from engine.api.deps import ADMIN, context, require
from engine.api.errors import domain_errors
from engine.api.keys import Principal
from engine.api.problems import Problem, documented
from engine.api.routes.payments import MoneyString, service_of
from engine.payments.bank import DecisionConflict

router = APIRouter(prefix="/v1/reconciliation", tags=["reconciliation"],
                   responses=documented(400, 401, 403, 404, 409, 413, 422))
# A bank file is bytes whose validity JSON Schema cannot state: the contract names it by this
# format (tests/api/test_schemathesis.py generates valid files for it).
BANK_FILE_FORMAT = "bank-file"
_FILE_BODY = {"requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {
    "type": "string", "format": BANK_FILE_FORMAT, "minLength": 1,
    "description": "the file itself: camt.053 / camt.054 XML (UTF-8, versions .001.02 to .13) or a "
                   "settlement CSV; anything else is a 422 naming the file, line and element"}}}}}
Reason = Annotated[str, Field(min_length=1, max_length=500, description="why: kept with the decision")]


def actor(who: Principal) -> str:
    return f"api_key:{who.key_id}"


@contextmanager
def decision_errors() -> Iterator[None]:
    with domain_errors():
        try:
            yield
        except DecisionConflict as exc:
            raise Problem(409, exc.message, exc.field or "line_id") from None


@router.post("/imports", status_code=201, dependencies=[ADMIN], openapi_extra=_FILE_BODY,
             responses={200: {"description": "the same file again: its first report, nothing changed"}},
             summary="Import a bank file (camt.053 / camt.054 XML) or a settlement CSV, the raw file as the body")
async def import_file(request: Request, response: Response, filename: str = Query("upload", max_length=200),
                      provider: str = Query("sandbox", max_length=32),
                      ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    data = await request.body()
    if not data.strip():
        raise Problem(422, "the body is empty: send the file itself", "file")
    from starlette.concurrency import run_in_threadpool

    def work() -> dict[str, Any]:
        try:
            with domain_errors(), ctx.db.session() as session:
                report = payments.reconcile_file(session, data, provider=provider, filename=filename,
                                                 service=service_of(ctx),
                                                 payout_accounts=ctx.payments.chart_or_default().payouts)
        except payments.StatementFormatError as exc:
            raise Problem(422, exc.errors[0], "file", problems=exc.errors) from None
        except payments.ReconciliationError as exc:
            raise Problem(409, str(exc), "file") from None
        return report.as_dict()

    out = await run_in_threadpool(work)
    ctx.after_commit()
    if out["already_imported"]:
        response.status_code = 200
    return out


@router.get("/lines", dependencies=[ADMIN], summary="Bank lines (default: the open ones) with suggested invoices")
def list_lines(status: str | None = Query("open", pattern="^(open|matched|resolved|pending|skipped|all)$"),
               limit: int = Query(100, ge=1, le=1000), ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.read_session() as session:
        items = payments.bank.list_lines(session, status=None if status == "all" else status, limit=limit)
    return {"items": items}


@router.get("/lines/{line_id}", dependencies=[ADMIN], summary="A bank line, its suggestions and its decisions")
def get_line(line_id: str, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.read_session() as session:
        return payments.bank.get_line(session, line_id)


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"invoice_id": "in_01", "reason": "customer wrote the invoice number with a typo"}]})
    invoice_id: str = Field(max_length=64)
    amount: MoneyString | None = Field(default=None, description="default: the whole transfer")
    reason: Reason


class Part(BaseModel):
    model_config = ConfigDict(extra="forbid")
    invoice_id: str = Field(max_length=64)
    amount: MoneyString


class SplitIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "allocations": [{"invoice_id": "in_01", "amount": "2187.00"}, {"invoice_id": "in_02", "amount": "1296.00"}],
        "reason": "one transfer for two invoices, see the customer's email"}]})
    allocations: list[Part] = Field(min_length=2, max_length=100)
    reason: Reason


class DismissIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


def _decide(ctx: ApiContext, line_id: str, action: str, parts: list[tuple[str, Any]], reason: str,
            who: Principal) -> dict[str, Any]:
    from decimal import Decimal

    allocations = [(inv, None if amount is None else Decimal(amount)) for inv, amount in parts]
    with decision_errors(), ctx.db.session() as session:
        out = payments.bank.decide(session, line_id, action=action, allocations=allocations, reason=reason,
                                   actor=actor(who), service=service_of(ctx))
    ctx.after_commit()
    return out


@router.post("/lines/{line_id}/confirm", summary="Apply an open credit to one invoice")
def confirm(line_id: str, body: ConfirmIn, ctx: ApiContext = Depends(context),
            who: Principal = Depends(require("admin"))) -> dict[str, Any]:
    return _decide(ctx, line_id, "confirm", [(body.invoice_id, body.amount)], body.reason, who)


@router.post("/lines/{line_id}/split", summary="Apply an open credit to several invoices; the parts add up to it")
def split(line_id: str, body: SplitIn, ctx: ApiContext = Depends(context),
          who: Principal = Depends(require("admin"))) -> dict[str, Any]:
    return _decide(ctx, line_id, "split", [(p.invoice_id, p.amount) for p in body.allocations], body.reason, who)


@router.post("/lines/{line_id}/dismiss", summary="Close an open line with nothing applied (e.g. a reversal handled)")
def dismiss(line_id: str, body: DismissIn, ctx: ApiContext = Depends(context),
            who: Principal = Depends(require("admin"))) -> dict[str, Any]:
    return _decide(ctx, line_id, "dismiss", [], body.reason, who)
