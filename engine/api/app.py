"""The FastAPI application."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from engine import __version__
from engine.api import problems
from engine.api.context import ApiContext
from engine.api.fast_check import PATH as CHECK_PATH
from engine.api.fast_check import FastCheck
from engine.api.limits import BodyLimit
from engine.api.routes import (
    billing,
    books,
    budgets,
    decisions,
    feed,
    invoice_closing,
    operators,
    ops,
    payments,
    product,
    reconciliation,
    wallet_orders,
    wallets,
)


class EngineAPI(FastAPI):
    """The FastAPI app, with the access check's fast path in front of it."""

    fast_check: FastCheck | None = None

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            declare_bearer_keys(super().openapi())
        return self.openapi_schema or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.fast_check is not None
            and scope["type"] == "http"
            and scope["path"] == CHECK_PATH
            and scope["method"] == "POST"
        ):
            await self.fast_check(scope, receive, send, super().__call__)
        else:
            await super().__call__(scope, receive, send)


PUBLIC_PATHS = ("/health",)


def declare_bearer_keys(schema: dict[str, Any]) -> None:
    """Say in the schema what `engine.api.deps` enforces: every operation but the public
    ones takes `Authorization: Bearer <api key>` (so clients and fuzzers can tell, and a
    call without a key is documented as a 401)."""
    schema.setdefault("components", {})["securitySchemes"] = {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "an API key: product keys reach events, access checks and quotes; admin keys everything",
        }
    }
    schema["security"] = [{"apiKey": []}]
    for path in PUBLIC_PATHS:
        for operation in schema.get("paths", {}).get(path, {}).values():
            operation["security"] = []


def create_app(ctx: ApiContext) -> EngineAPI:
    app = EngineAPI(
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
    # The system's own routers first: `GET /v1/invoices/{id}.pdf` (engine.portal) must come
    # before `GET /v1/invoices/{id}`, which would take "in_1.pdf" for an id.
    for router in ctx.routers:
        app.include_router(router)
    app.include_router(ops.router)
    app.include_router(product.router)
    app.include_router(billing.router)
    app.include_router(feed.router)
    app.include_router(decisions.router)
    app.include_router(payments.router)
    app.include_router(invoice_closing.router)
    app.include_router(reconciliation.router)
    app.include_router(operators.router)
    app.include_router(books.router)
    app.include_router(wallets.router)
    app.include_router(wallet_orders.router)
    app.include_router(budgets.router)
    # The access check is the product's hottest call: the same endpoint is also mounted as a
    # plain Starlette route ahead of the others, so requests skip FastAPI's per-request
    # dependency solving (the APIRoute above still documents it in the OpenAPI schema).
    app.router.routes.insert(0, Route(CHECK_PATH, product.access_check, methods=["POST"]))
    # And the common check (a known key, a customer in the view, nothing to write) is
    # answered before any of the framework's layers; see engine/api/fast_check.py.
    app.fast_check = FastCheck(ctx.access, ctx.keys, product.CHECKS.validate_json, ctx.max_body_bytes)
    return app
