"""Errors as application/problem+json (RFC 9457), always naming the offending field."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

log = logging.getLogger("engine.api")

PROBLEM = "application/problem+json"
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
}


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "field": {"type": "string", "description": "the offending field: a JSON path into the body, or a header"},
        "errors": {"type": "array", "items": {"type": "object"}},
        "problems": {"type": "array", "items": {"type": "string"}},
    },
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the problem statuses a route can answer."""
    return {
        status: {"description": TITLES.get(status, "Error"), "content": {PROBLEM: {"schema": PROBLEM_SCHEMA}}}
        for status in statuses
    }


class Problem(Exception):
    def __init__(self, status: int, detail: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.extra = extra


def problem_response(status: int, detail: str, field: str | None = None, *,
                     headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    body.update(extra)
    out = dict(headers or {})
    if status == 401:
        out["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=out or None)


_SHAPE_ERRORS = {"list_type", "model_type", "model_attributes_type", "dict_type"}


def _is_type_name(part: Any) -> bool:
    # A body typed as a union (one item or a list) puts the branch's type in the location.
    return isinstance(part, str) and (part[:1].isupper() or "[" in part)


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header") and not _is_type_name(p)]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else ("." if out else "") + p
    return out or "body"


def _message(error: Mapping[str, Any]) -> str:
    # pydantic prefixes our validators' messages with "Value error, ": the field says enough.
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _allowed_methods(request: Request) -> list[str]:
    """The documented methods of the request's path (its OpenAPI path item), sorted."""
    methods: set[str] = set()
    for template, item in request.app.openapi().get("paths", {}).items():
        parts = re.split(r"(\{[^{}/]+\})", template)
        pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
        if re.fullmatch(pattern, request.url.path):
            methods.update(method.upper() for method in item if method in _METHODS)
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, exc.field, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        raw = list(exc.errors())
        # For a union body, report the branch that matches the shape sent (object or list).
        shaped = [e for e in raw if not (e.get("type") in _SHAPE_ERRORS and len(e.get("loc", ())) <= 2)] or raw
        errors = [{"field": _loc(tuple(e.get("loc", ()))), "message": _message(e)} for e in shaped]
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        # FastAPI's own parsing says "JSON decode error"; pydantic parsing the bytes (the
        # access check) says json_invalid. Either way the body is not JSON.
        if first["message"].startswith("JSON decode error") or any(e.get("type") == "json_invalid" for e in raw):
            return problem_response(400, "malformed JSON", "body")
        return problem_response(422, f"{first['field']}: {first['message']}", first["field"], errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = exc.headers
        if exc.status_code == 405:
            # RFC 9110: Allow lists every method of the resource. Starlette names only those of
            # the first route on the path, and a path has a route per method here.
            documented = _allowed_methods(request)
            if documented:
                headers = {**(headers or {}), "Allow": ", ".join(documented)}
        return problem_response(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _: ClientDisconnect) -> JSONResponse:
        # The client left mid-body (a load generator stopping, a timeout): nothing was
        # written, and there is no one to answer; not an error of ours to log with a trace.
        log.info("client left during %s %s", request.method, request.url.path)
        return problem_response(400, "the request body did not arrive")

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        # Logged with its trace for us; the client sees no internals.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "the engine could not complete the request; it was logged")
