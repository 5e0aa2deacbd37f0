"""The FastAPI application."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from engine import __version__
from engine.api import problems
from engine.api.context import ApiContext
from engine.api.routes import billing, ops, product


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="billing-engine",
        version=__version__,
        description="What the product calls: usage events, access decisions, quotes, and the billing "
        "resources. Every call but GET /health needs `Authorization: Bearer <api key>`; errors are "
        "application/problem+json naming the offending field.",
    )
    app.state.ctx = ctx
    problems.install(app)

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # Refuse oversized bodies before reading them (and bodies that lie about their size).
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return problems.problem_response(400, "Content-Length is not a number", "Content-Length")
            if int(length) > ctx.max_body_bytes:
                return problems.problem_response(413, f"the body is over {ctx.max_body_bytes} bytes", "body")
        elif request.method in ("POST", "PUT", "PATCH"):
            body = await request.body()
            if len(body) > ctx.max_body_bytes:
                return problems.problem_response(413, f"the body is over {ctx.max_body_bytes} bytes", "body")
        return await call_next(request)

    app.include_router(ops.router)
    app.include_router(product.router)
    app.include_router(billing.router)
    for router in ctx.routers:
        app.include_router(router)
    return app
