"""A customer's spend budget over HTTP (the product's door; docs/credits.md, *Budgets*):
an amount per billing period in the customer's currency, alert percentages, a hard stop."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine import sales
from engine.api.context import ApiContext
from engine.api.deps import PRODUCT, context
from engine.api.errors import domain_errors
from engine.api.problems import Problem, documented
from engine.api.types import JSON_INTEGER, JsonBool, NonNegativeQuantity, PositiveQuantity

router = APIRouter(prefix="/v1", tags=["credits"], responses=documented(400, 401, 403, 404, 409, 422))

Percent = Annotated[int, Field(ge=1, le=100), JSON_INTEGER]


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"amount": "200.00", "alerts": [50, 80, 100], "hard_stop": True}]})

    amount: PositiveQuantity = Field(description="the budget per billing period, in the customer's currency")
    alerts: list[Percent] | None = Field(
        default=None, max_length=100, json_schema_extra={"uniqueItems": True},
        description="percentages of the budget at which spend.threshold_reached is published, each once, "
                    "in any order (kept ascending); default: the plan's `budget.alerts`")
    hard_stop: JsonBool | None = Field(default=None, description="deny metered use with budget_exhausted once "
                                                                 "spent; default: the plan's `budget.hard_stop`")
    low_balance: NonNegativeQuantity | None = Field(
        default=None, description="the wallet level below which credits.balance_low is published (an "
                                  "automatic top-up's threshold takes precedence)")

    @field_validator("alerts")
    @classmethod
    def _each_once(cls, value: list[int] | None) -> list[int] | None:
        # A set (the schema's uniqueItems): in any order, kept ascending. JSON Schema cannot
        # say "ascending", so refusing [80, 50] would refuse what the contract calls valid.
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"each percentage once, not {value}")
        return None if value is None else sorted(value)


@router.put("/customers/{customer_id}/budget", dependencies=[PRODUCT],
            summary="Set the customer's spend budget per billing period (alerts, optional hard stop)")
def put_budget(customer_id: str, body: BudgetIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.session() as session:
        out = sales.set_budget(session, customer_id, body.model_dump(exclude_none=True), clock=ctx.clock)
    ctx.access.invalidate(customer_id)  # this process's checks see the budget at once
    ctx.after_commit()
    return out


@router.get("/customers/{customer_id}/budget", dependencies=[PRODUCT],
            summary="The customer's spend budget and what they spent this period")
def get_budget(customer_id: str, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.read_session() as session:
        out = sales.budget_status(session, customer_id)
    if out is None:
        raise Problem(404, f"customer {customer_id} has no budget", "budget")
    return out


@router.delete("/customers/{customer_id}/budget", status_code=204, dependencies=[PRODUCT],
               summary="Remove the customer's spend budget (no more alerts, no hard stop)")
def delete_budget(customer_id: str, ctx: ApiContext = Depends(context)) -> Response:
    with domain_errors(), ctx.db.session() as session:
        if not sales.delete_budget(session, customer_id, clock=ctx.clock):
            raise Problem(404, f"customer {customer_id} has no budget", "budget")
    ctx.access.invalidate(customer_id)
    ctx.after_commit()
    return Response(status_code=204)
