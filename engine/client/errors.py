"""What a call can end in besides its answer."""

from __future__ import annotations

from typing import Any


class BillingError(Exception):
    """The engine answered with a problem (RFC 9457): `status`, `detail` and the `field` it names."""

    def __init__(self, status: int, detail: str, field: str | None = None, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {field + ': ' if field else ''}{detail}")
        self.status = status
        self.detail = detail
        self.field = field
        self.body = body or {}


class EngineUnavailable(Exception):
    """The engine could not be reached (or kept answering 5xx) after every retry."""
