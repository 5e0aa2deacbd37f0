"""The one error of an operator action: which field, what is wrong, and what kind of wrong
(each door says it its own way: a 404/409/422 problem, or the CLI's exit 1)."""

from __future__ import annotations

from typing import Literal

Kind = Literal["invalid", "not_found", "conflict"]


class OperationError(ValueError):
    def __init__(self, field: str, message: str, kind: Kind = "invalid", problems: list[str] | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.kind: Kind = kind
        self.problems = problems or []
