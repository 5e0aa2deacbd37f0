"""The operator operations the console calls, bound here
(engine.console.operations.ConsoleOperations): the ui/ pages pass them to engine.console."""

from __future__ import annotations

from engine.console.operations import ConsoleOperations
from engine.system import operations


def console_operations() -> ConsoleOperations:
    return ConsoleOperations(
        permitted=operations.permitted,
        references=operations.published_references,
        publish_catalog=operations.publish_catalog_draft,
        publish_ruleset=operations.publish_ruleset_draft,
        rollback=operations.rollback,
    )
