"""No silent plumbing: every event type the engine or a shipped rule publishes is consumed by
a subscription of engine/system/subscriptions.py (or a shipped rule's `on:`), or declared
informational in engine.events.INFORMATIONAL with its reason. Automation's catch-all (`#`)
and the product's webhooks do not count: it runs whatever rules react, and when none does, the event reaches nobody."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.config import Settings
from engine.events import INFORMATIONAL, topic_matches
from engine.system import Subscription, build_system, subscriptions

ROOT = Path(__file__).resolve().parents[2]
EVENT_TYPE = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$")
# add_event and the subsystems' own wrappers of it (sales' emit, payments' _emit, ...).
PUBLISHER = re.compile(r"^(add_event|_?emit\w*)$")


def outbox_rows(tree: ast.AST) -> list[ast.Dict]:
    """Dict literals in functions that insert into the outbox table themselves (in bulk)."""
    return [node for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
            and any(isinstance(n, ast.Name) and n.id == "OutboxEvent" for n in ast.walk(fn))
            for node in ast.walk(fn) if isinstance(node, ast.Dict)]


def envelope_type(node: ast.Dict) -> str | None:
    """The type of an outbox row written as a dict literal."""
    keys = {k.value: v for k, v in zip(node.keys, node.values, strict=True) if isinstance(k, ast.Constant)}
    value = keys.get("type")
    if {"id", "type", "customer_id"} <= set(keys) and isinstance(value, ast.Constant):
        return str(value.value)
    return None


def queued_type(call: ast.Call) -> str | None:
    """`events.append(("notification.sent", customer_id, props, now))`: an event queued to be
    written with others in one INSERT."""
    f = call.func
    if not (isinstance(f, ast.Attribute) and f.attr == "append" and "event" in ast.unparse(f.value)):
        return None
    row = call.args[0] if call.args else None
    if isinstance(row, ast.Tuple) and row.elts and isinstance(first := row.elts[0], ast.Constant):
        value = str(first.value)
        return value if EVENT_TYPE.match(value) else None
    return None


def published_by_code() -> dict[str, set[str]]:
    """Event type -> the modules that publish it: a string literal among the first three
    arguments of a call to a publisher, or the type of an envelope dict literal."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "engine").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for row in outbox_rows(tree):
            if (literal := envelope_type(row)) is not None and EVENT_TYPE.match(literal):
                found.setdefault(literal, set()).add(str(path.relative_to(ROOT)))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            if (literal := queued_type(node)) is not None:
                found.setdefault(literal, set()).add(str(path.relative_to(ROOT)))
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if not PUBLISHER.match(name):
                continue
            for arg in node.args[:3]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and EVENT_TYPE.match(arg.value):
                    found.setdefault(arg.value, set()).add(str(path.relative_to(ROOT)))
    return found


def shipped_rules() -> list[dict[str, Any]]:
    return [rule for path in sorted((ROOT / "rules").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc for rule in doc.get("rules") or []]


def published_by_rules() -> set[str]:
    return {str(action["emit"]["type"]) for rule in shipped_rules() for action in rule.get("then") or []
            if isinstance(action, dict) and isinstance(action.get("emit"), dict)}


def rule_triggers() -> set[str]:
    out: set[str] = set()
    for rule in shipped_rules():
        on = rule.get("on", rule.get(True)) or []  # YAML 1.1 reads a bare `on` key as true
        out.update([on] if isinstance(on, str) else on)
    return out


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Subscription]]:
    """The table of a full deployment (payments on, automation and scheduler)."""
    folder = tmp_path_factory.mktemp("subscriptions")
    settings = Settings(database_url=f"sqlite:///{folder}/coverage.db", psp_url="http://127.0.0.1:9",
                        psp_api_key="sk_test", psp_webhook_secret="whsec_test")
    system = build_system(settings, automation=True)
    try:
        yield subscriptions(access=system.access, payments_service=system.payments, automation=system.automation)
    finally:
        system.close()


@pytest.fixture
def handler_patterns(table: list[Subscription]) -> list[str]:
    # The webhooks consumer forwards events to the product: like automation's catch-all, it
    # does not make the engine act on them.
    return [s.pattern for s in table if s.pattern != "#" and s.consumer != "webhooks"]


def test_the_scan_sees_the_publishers() -> None:
    # A scan that found nothing would pass vacuously.
    found = published_by_code()
    for known in ("invoice.finalized", "payment.succeeded", "access.denied", "payment.retry_requested",
                  "reconciliation.mismatch", "notification.sent"):
        assert known in found, known


def test_every_published_event_is_consumed_or_informational(handler_patterns: list[str]) -> None:
    triggers = rule_triggers()
    published = set(published_by_code()) | published_by_rules()

    def consumed(event_type: str) -> bool:
        return event_type in triggers or any(topic_matches(p, event_type) for p in handler_patterns)

    silent = sorted(t for t in published if not consumed(t) and t not in INFORMATIONAL)
    assert silent == [], f"published, consumed by nobody, not declared informational: {silent}"
    # The list stays honest: nothing in it is unpublished or actually consumed.
    stale = sorted(t for t in INFORMATIONAL if t not in published or consumed(t))
    assert stale == [], f"declared informational but consumed or never published: {stale}"


def test_payment_retry_requested_has_a_consumer(handler_patterns: list[str]) -> None:
    assert any(topic_matches(p, "payment.retry_requested") for p in handler_patterns)


def test_the_system_registers_exactly_its_table(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/table.db", psp_url="http://127.0.0.1:9",
                        psp_api_key="sk_test", psp_webhook_secret="whsec_test")
    system = build_system(settings, automation=True)
    try:
        table = subscriptions(access=system.access, payments_service=system.payments, automation=system.automation)
        assert [(s.subsystem, s.pattern, s.name) for s in system.registry.subscriptions()] == [
            (s.consumer, s.pattern, f"{s.handler.__module__}.{s.handler.__qualname__}") for s in table]
        # Without a provider, nothing of payments is subscribed; without automation, no catch-all.
        bare = build_system(Settings(database_url=f"sqlite:///{tmp_path}/bare.db"))
        try:
            assert {s.subsystem for s in bare.registry.subscriptions()} == {"sales", "access", "webhooks"}
        finally:
            bare.close()
    finally:
        system.close()
