from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request

from engine.api.context import ApiContext
from engine.api.keys import Principal
from engine.api.problems import Problem


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "an API key is required: Authorization: Bearer <key>", "Authorization")
    found = context(request).keys.verify(token.strip())
    if found is None:
        raise Problem(401, "unknown or revoked API key", "Authorization")
    return found


def require(scope: str) -> Callable[[Principal], Principal]:
    """`product` keys reach events, access checks and quotes; `admin` keys reach everything."""

    def check(who: Principal = Depends(principal)) -> Principal:
        if who.scope != "admin" and who.scope != scope:
            raise Problem(403, f"this call needs an {scope} key; yours is {who.scope}", "Authorization")
        return who

    return check


PRODUCT = Depends(require("product"))
ADMIN = Depends(require("admin"))
