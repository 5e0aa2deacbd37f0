from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from engine.api.context import ApiContext
from engine.api.keys import Principal
from engine.api.problems import Problem

# Dependencies are async: FastAPI runs a sync dependency in the threadpool, and a thread hop
# per dependency costs more than what these do. Only a key not seen recently goes to the
# store, in the threadpool.


async def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


async def principal(request: Request) -> Principal:
    return await authenticate(request)


def bearer_token(header: str) -> str | None:
    """The key from an `Authorization: Bearer <key>` header, or None."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


async def authenticate(request: Request) -> Principal:
    """The key's principal, or a 401 problem."""
    token = bearer_token(request.headers.get("authorization", ""))
    if token is None:
        raise Problem(401, "an API key is required: Authorization: Bearer <key>", "Authorization")
    keys = request.app.state.ctx.keys
    found: Principal | None = keys.cached(token)
    if found is None:
        found = await run_in_threadpool(keys.verify, token)
    if found is None:
        raise Problem(401, "unknown or revoked API key", "Authorization")
    return found


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """`product` keys reach events, access checks and quotes; `admin` keys reach everything."""

    async def check(who: Principal = Depends(principal)) -> Principal:
        return permit(who, scope)

    return check


def allows(who: Principal, scope: str) -> bool:
    return who.scope == "admin" or who.scope == scope


def permit(who: Principal, scope: str) -> Principal:
    if not allows(who, scope):
        raise Problem(403, f"this call needs an {scope} key; yours is {who.scope}", "Authorization")
    return who


async def authorize(request: Request, scope: str) -> Principal:
    """`require(scope)` called inline, for the hot routes that skip dependency injection."""
    return permit(await authenticate(request), scope)


PRODUCT = Depends(require("product"))
ADMIN = Depends(require("admin"))
FINANCE = Depends(require("finance"))
