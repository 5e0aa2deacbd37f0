"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import Route

from engine import __version__
from engine.api import problems
from engine.api.context import ApiContext
from engine.api.limits import BodyLimit
from engine.api.routes import billing, ops, product


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="billing-engine",
        version=__version__,
        description="What the product calls: usage events, access decisions, quotes, and the billing "
        "resources. Every call but GET /health needs `Authorization: Bearer <api key>`; errors are "
        "application/problem+json naming the offending field.",
        # FastAPI's built-in OpenTelemetry asks on every request whether a provider is
        # configured (environment lookups: 14 us of a ~55 us access check). The engine
        # reports through /metrics; a deployment with OpenTelemetry turns this back on.
        telemetry={"tracing": ctx.otel, "metrics": ctx.otel, "logs": ctx.otel},
    )
    app.state.ctx = ctx
    problems.install(app)

    app.add_middleware(BodyLimit, max_bytes=ctx.max_body_bytes)
    app.include_router(ops.router)
    app.include_router(product.router)
    app.include_router(billing.router)
    for router in ctx.routers:
        app.include_router(router)
    # The access check is the product's hottest call: the same endpoint is also mounted as a
    # plain Starlette route ahead of the others, so requests skip FastAPI's per-request
    # dependency solving (the APIRoute above still documents it in the OpenAPI schema).
    app.router.routes.insert(0, Route("/v1/access/check", product.access_check, methods=["POST"]))
    return app
