"""Wallets over HTTP: the product reads a customer's balance and grants; operators void a grant
and page through the ledger. Credits' alone (the customer checked through `ctx.read.customer`);
packs, top-up and grants, which sales does, are routes/wallet_orders.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from engine import credits
from engine.api.context import ApiContext
from engine.api.deps import ADMIN, PRODUCT, context
from engine.api.errors import domain_errors
from engine.api.problems import documented
from engine.api.types import ObjectId

router = APIRouter(prefix="/v1", tags=["credits"], responses=documented(400, 401, 403, 404, 409, 422))


class VoidIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


@router.get("/customers/{customer_id}/wallet", dependencies=[PRODUCT],
            summary="A customer's wallet: balance per unit and every grant with what is left")
def get_wallet(customer_id: str, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.read_session() as session:
        ctx.read.customer(session, customer_id)
        return credits.wallet(session, customer_id, ctx.clock.now())


@router.post("/wallet/grants/{grant_id}/void", dependencies=[ADMIN],
             summary="Void a grant: what is left of it leaves the wallet (operators)")
def void(grant_id: ObjectId, body: VoidIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.session() as session:
        g = credits.void_grant(session, grant_id, ctx.clock.now(), reason=body.reason)
        credits.announce_balance(session, g.customer_id, g.unit, ctx.clock.now())
        out = credits.grant_to_dict(g, credits.remaining(session, [g.id])[g.id])
    ctx.access.invalidate(out["customer_id"])
    ctx.after_commit()
    return out


@router.get("/customers/{customer_id}/wallet/ledger", dependencies=[ADMIN],
            summary="The wallet's entries, oldest first, paged by `after` (operators)")
def ledger(customer_id: str, after: int = Query(0, ge=0, le=2**62), limit: int = Query(50, ge=1, le=credits.MAX_PAGE),
           ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with domain_errors(), ctx.db.read_session() as session:
        ctx.read.customer(session, customer_id)
        return credits.ledger_page(session, customer_id, after=after, limit=limit)
