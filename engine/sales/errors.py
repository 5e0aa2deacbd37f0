"""Errors of the sales subsystem: each names the offending field, so the API can answer
`application/problem+json` with it and the CLI can print it."""

from __future__ import annotations

from engine import errors


class SalesError(ValueError, errors.Invalid):
    """Bad input or a state that forbids the operation. Nothing was written."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class NotFound(SalesError, errors.NotFound):
    """The named customer, plan, subscription, invoice or catalog version does not exist."""


class Conflict(SalesError, errors.Conflict):
    """The operation clashes with the current state (an id taken, a subscription ended)."""


def required_id(value: object, field: str, what: str) -> str:
    """`value` as an id: a non-empty string, else the error every loader gives
    (`field: required: what`)."""
    if not isinstance(value, str) or not value:
        raise SalesError(field, f"required: {what}")
    return value
