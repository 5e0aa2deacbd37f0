"""The kinds of refusal every subsystem's domain errors belong to, so a door (the HTTP API, the
portal) answers by kind and imports no subsystem to do so. The bottom of the layers: imports
nothing of the engine.

Each subsystem keeps its own error family (its constructor, its `ValueError` or
`LookupError` base) and adds the kind as a second base: `class NotFound(SalesError,
errors.NotFound)`. A class that is both (a subsystem's not-found below its invalid-input
family) is matched by its narrowest kind first: NotFound and Conflict before Invalid.

`OperationError` is the operator operations' one error (engine/system/operations), here so the
doors below engine.system catch it."""

from __future__ import annotations

from typing import ClassVar, Literal


class Refused(Exception):
    """A request the domain refused; nothing was written. `field` names the input at fault and
    `message` says why; `default_field` is named when `field` is empty."""

    field: str
    message: str
    default_field: ClassVar[str] = ""

    @property
    def field_named(self) -> str:
        return self.field or self.default_field


class NotFound(Refused):
    """An id that names nothing (HTTP 404)."""


class Conflict(Refused):
    """Well formed, but the current state refuses it (HTTP 409)."""


class Invalid(Refused):
    """Bad input (HTTP 422)."""


OperationKind = Literal["invalid", "not_found", "conflict"]


class OperationError(ValueError):
    """The one error of an operator action (engine/system/operations): which field, what is
    wrong, and what kind of wrong (each door says it its own way: a 404/409/422 problem, the
    console's message, or the CLI's exit 1). Here, at the bottom, because the doors below
    engine.system (the HTTP routes, the console) catch it without importing engine.system."""

    def __init__(self, field: str, message: str, kind: OperationKind = "invalid",
                 problems: list[str] | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.kind: OperationKind = kind
        self.problems = problems or []
