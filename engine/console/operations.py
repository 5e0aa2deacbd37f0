"""The operator operations the console calls, as typed components bound in
engine/system/console_operations.py: publishing a checked draft and rolling back join sales or
the rules runtime to users' audit, so they live in engine/system/operations; the role check is
users', and a ruleset's references are read from sales' published catalogs. The console's
modules import one subsystem at most; the ui/ pages pass these in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sqlalchemy.orm import Session

from engine.catalog import Catalog
from engine.clock import Clock
from engine.rules import References


class PublishCatalog(Protocol):
    def __call__(
        self,
        session: Session,
        user: dict[str, Any],
        name: str,
        catalog: Catalog,
        comment: str,
        *,
        warnings_accepted: int,
        clock: Clock,
    ) -> dict[str, Any]: ...


class PublishRuleset(Protocol):
    def __call__(
        self,
        session: Session,
        user: dict[str, Any],
        name: str,
        text: str,
        comment: str,
        *,
        warnings_accepted: int,
        refs: References,
        clock: Clock,
    ) -> dict[str, Any]: ...


class Rollback(Protocol):
    def __call__(
        self,
        session: Session,
        kind: Literal["catalog", "ruleset"],
        name: str,
        to_version: int,
        why: str,
        *,
        actor: dict[str, Any],
        clock: Clock,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ConsoleOperations:
    # The signed-in user when their role allows the action (PermissionDenied otherwise).
    permitted: Callable[[dict[str, Any] | None, str], dict[str, Any]]
    # What a ruleset may name: the published catalogs, as the HTTP publish reads them.
    references: Callable[[Session], References]
    publish_catalog: PublishCatalog
    publish_ruleset: PublishRuleset
    rollback: Rollback
