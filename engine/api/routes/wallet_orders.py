"""What sales does for a wallet over HTTP: the product buys credit packs and sets the
automatic top-up (both invoice), operators grant credit with a reason. Sales' alone: the
wallet itself, voids and the ledger are routes/wallets.py (credits)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from engine import sales
from engine.api.context import ApiContext
from engine.api.deps import PRODUCT, context, require
from engine.api.errors import domain_errors
from engine.api.keys import Principal
from engine.api.problems import Problem, documented
from engine.api.types import NonNegativeQuantity, PlanId, PositiveQuantity, ZonedTime

router = APIRouter(prefix="/v1", tags=["credits"], responses=documented(400, 401, 403, 404, 409, 422))


def _not_a_bool(value: object) -> object:
    # JSON Schema's integer admits 58.0 but not false: pydantic's lax int takes both ways round.
    if isinstance(value, bool):
        raise ValueError("an integer, not true or false")
    return value


Priority = Annotated[int, Field(ge=0, le=1000), BeforeValidator(_not_a_bool)]


class GrantIn(BaseModel):
    # "amount or grant": declared in the contract too, so the schema refuses what the route refuses.
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "anyOf": [{"required": ["amount"], "properties": {"amount": {"not": {"type": "null"}}}},
                  {"required": ["grant"], "properties": {"grant": {"type": "string"}}}],
        "examples": [{"amount": "25.00", "reason": "apology for the outage", "expires_at": "2027-01-01T00:00:00Z"}]})

    reason: str = Field(min_length=1, max_length=500, description="why: kept on the grant and its ledger entry")
    amount: PositiveQuantity | None = Field(default=None, description="above zero; default: the catalog grant's")
    grant: PlanId | None = Field(default=None, description="a catalog grant's id: its amount and terms")
    unit: str | None = Field(default=None, pattern=r"^([A-Z]{3}|[a-z][a-z0-9_]{0,31})$",
                             description="default: the customer's currency")
    priority: Priority | None = Field(default=None, description="lower is drawn first; default 100")
    expires_at: ZonedTime | None = None
    rollover: str | None = Field(default=None, pattern="^(none|all)$")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class PackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"pack": "starter", "key": "order-17"}]})

    pack: PlanId = Field(description="a credit pack of the customer's catalog")
    key: str = Field(min_length=1, max_length=100, description="the purchase's idempotency key: a retry buys nothing more")


class TopUpIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"enabled": True, "threshold": "10.00", "pack": "starter"}]})

    enabled: StrictBool
    threshold: NonNegativeQuantity | None = Field(default=None, description="default: the catalog's top_up")
    pack: PlanId | None = Field(default=None, description="default: the catalog's top_up")


UNIT = r"^[a-z][a-z0-9_]{0,31}$"  # a custom unit, as a grant's
Unit = Annotated[str, Field(pattern=UNIT)]
UnitQuery = Annotated[str | None, Query(pattern=UNIT, description="the catalog's custom unit (the default)")]


class LowBalanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"low_balance": "500", "unit": "tokens"}]})

    low_balance: PositiveQuantity = Field(description="below it, credits.balance_low (once per episode), in the unit")
    unit: Unit | None = Field(default=None, description="the catalog's custom unit (the default)")


@router.put("/customers/{customer_id}/wallet/low_balance", dependencies=[PRODUCT],
            summary="The customer's own low-balance level for their token wallet (a custom unit)")
def set_low_balance(customer_id: str, body: LowBalanceIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.session() as session:
        out = sales.set_low_balance(session, customer_id, body.low_balance, body.unit, clock=ctx.clock)
    ctx.after_commit()
    return out


@router.get("/customers/{customer_id}/wallet/low_balance", dependencies=[PRODUCT],
            summary="The token wallet's low-balance level: the customer's own, the one in force and its source")
def get_low_balance(customer_id: str, unit: UnitQuery = None, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.read_session() as session:
        return sales.low_balance(session, customer_id, unit)


@router.delete("/customers/{customer_id}/wallet/low_balance", status_code=204, dependencies=[PRODUCT],
               summary="Remove the customer's own token low-balance level (back to the catalog's)")
def delete_low_balance(customer_id: str, unit: UnitQuery = None, ctx: ApiContext = Depends(context)) -> Response:
    with domain_errors(), ctx.db.session() as session:
        sales.delete_low_balance(session, customer_id, unit)
    return Response(status_code=204)


@router.post("/customers/{customer_id}/wallet/packs", status_code=201, dependencies=[PRODUCT],
             summary="Buy a credit pack: an invoice now, the credit once it is paid")
def buy_pack(customer_id: str, body: PackIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.session() as session:
        out = sales.buy_pack(session, customer_id, body.pack, key=f"buy:{body.key}", clock=ctx.clock)
    ctx.after_commit()
    return out


@router.put("/customers/{customer_id}/wallet/top_up", dependencies=[PRODUCT],
            summary="Automatic top-up: below the threshold, the pack is bought (once per low balance)")
def set_top_up(customer_id: str, body: TopUpIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.session() as session:
        return sales.set_top_up(session, customer_id, enabled=body.enabled, threshold=body.threshold,
                                pack=body.pack, clock=ctx.clock)


@router.post("/customers/{customer_id}/wallet/grants", status_code=201, summary="Grant credit (operators)")
def grant(customer_id: str, body: GrantIn, ctx: ApiContext = Depends(context),
          who: Principal = Depends(require("admin"))) -> dict[str, Any]:
    if body.amount is None and body.grant is None:
        # The contract's "amount or grant", refused before the customer is looked up: a body
        # the schema refuses is a 422 whoever it names.
        raise Problem(422, "amount: required: the amount to grant (or grant: a catalog grant's id)", "amount")
    spec = body.model_dump(exclude_none=True)
    with domain_errors(), ctx.db.session() as session:
        out = sales.grant_credit(session, customer_id, spec, clock=ctx.clock, created_by=f"key:{who.key_id}")
    ctx.access.invalidate(customer_id)  # this process's checks see the credit at once, not after the bus
    ctx.after_commit()
    return out
