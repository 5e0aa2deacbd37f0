"""Versions of rulesets: publish (validate, compile, smoke-test in a subprocess, store an
immutable version with author, comment, checksum and diff), history, rollback, and bringing a
live runtime up to the published versions without a restart."""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.catalog import DocumentError, load_catalog
from engine.clock import Clock
from engine.documents import Document, Problem, load_yaml_file
from engine.rules.conditions import Node, tests
from engine.rules.loader import References, load_ruleset_text, ruleset_from_document
from engine.rules.model import Ruleset
from engine.rules.models import DecisionRecord, RuleVersion
from engine.rules.runtime import RulesRuntime
from engine.store import Database, add_event

if TYPE_CHECKING:
    from engine.rules.compiler import CompiledRuleset
    from engine.rules.durable_engine import DurableEngine

SMOKE_TIMEOUT = 60


class RulesError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class PublishedRuleset:
    id: int
    ruleset: str
    version: int
    checksum: str
    created: bool  # False when the text equals the latest version's (nothing new stored)

    def __str__(self) -> str:
        if not self.created:
            return f"ruleset {self.ruleset} unchanged (version {self.version})"
        return f"published ruleset {self.ruleset} version {self.version}"


def default_references(root: Path | str = ".") -> References:
    """References from the example layout: every catalog in catalogs/ and templates/."""
    base = Path(root)
    refs = References.from_catalogs([], base / "templates" if (base / "templates").is_dir() else None)
    for path in sorted((base / "catalogs").glob("*.y*ml")):
        try:
            refs.add_catalog(load_catalog(path))
        except DocumentError:
            continue  # an invalid catalog is reported by its own validation
    return refs


def smoke_test(ruleset: Ruleset, timeout: float = SMOKE_TIMEOUT) -> list[str]:
    """Compile and exercise the ruleset in durable_rules in a child process, so a crash of
    the C engine can never take the caller down. Returns the problems found (empty: fine)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "engine.rules.smoke"], input=ruleset.source, text=True,
            capture_output=True, timeout=timeout, env=env, check=False,
        )
    except subprocess.TimeoutExpired:
        return [f"the rules engine did not finish compiling this ruleset within {timeout:.0f}s"]
    if result.returncode != 0:
        detail = (result.stdout.strip().splitlines() or result.stderr.strip().splitlines() or [""])[-1]
        how = f"crashed (signal {-result.returncode})" if result.returncode < 0 else "failed"
        return [f"the rules engine {how} on this ruleset: {detail}".rstrip(": ")]
    return []


def _latest(session: Session, name: str) -> RuleVersion | None:
    return session.scalars(
        select(RuleVersion).where(RuleVersion.ruleset == name).order_by(RuleVersion.version.desc()).limit(1)
    ).first()


def _to_ruleset(item: Ruleset | Document | str | Path, refs: References | None) -> Ruleset:
    if isinstance(item, Ruleset):
        return item
    doc = item if isinstance(item, Document) else load_yaml_file(item)
    return ruleset_from_document(doc, refs if refs is not None else default_references())


def publish_ruleset(session: Session, item: Ruleset | Document | str | Path, author: str,
                    comment: str = "", *, refs: References | None = None, clock: Clock,
                    smoke: bool = True, rollback_of: int | None = None) -> PublishedRuleset:
    """Validate (raises DocumentError listing every problem), smoke-test in a subprocess and
    store a new version. The same text as the latest version stores nothing."""
    if not author.strip():
        raise RulesError("author", "required: who publishes this version")
    ruleset = _to_ruleset(item, refs)
    latest = _latest(session, ruleset.name)
    if latest is not None and latest.checksum == ruleset.checksum and rollback_of is None:
        return PublishedRuleset(latest.id, ruleset.name, latest.version, latest.checksum, False)
    if smoke:
        problems = smoke_test(ruleset)
        if problems:
            raise DocumentError([Problem(ruleset.file or "<ruleset>", 1, "(document)", p) for p in problems])
    version, previous, fromfile = 1, "", "/dev/null"  # the first version
    if latest is not None:
        version, previous, fromfile = latest.version + 1, latest.source, f"{ruleset.name} v{latest.version}"
    diff = "".join(difflib.unified_diff(
        previous.splitlines(keepends=True), ruleset.source.splitlines(keepends=True),
        fromfile=fromfile, tofile=f"{ruleset.name} v{version}",
    ))
    now = clock.now()
    row = RuleVersion(
        ruleset=ruleset.name, version=version, checksum=ruleset.checksum, author=author.strip(),
        comment=comment, published_at=now, source=ruleset.source, file=ruleset.file, diff=diff,
        rules=[r.id for r in ruleset.rules], rollback_of=rollback_of,
    )
    session.add(row)
    session.flush()
    add_event(session, "rules.published", None,
              {"ruleset": ruleset.name, "version": version, "checksum": ruleset.checksum}, time=now)
    return PublishedRuleset(row.id, ruleset.name, version, ruleset.checksum, True)


def ruleset_history(session: Session, name: str) -> list[RuleVersion]:
    """Every version of a ruleset, oldest first."""
    return list(session.scalars(
        select(RuleVersion).where(RuleVersion.ruleset == name).order_by(RuleVersion.version)))


def ruleset_version(session: Session, name: str, version: int | None = None) -> RuleVersion:
    q = select(RuleVersion).where(RuleVersion.ruleset == name)
    q = q.where(RuleVersion.version == version) if version is not None else \
        q.order_by(RuleVersion.version.desc()).limit(1)
    row = session.scalars(q).first()
    if row is None:
        raise RulesError("ruleset", f"no version {version} of ruleset {name!r}" if version
                         else f"no published ruleset {name!r}")
    return row


def rollback_ruleset(session: Session, name: str, to_version: int, author: str, comment: str = "",
                     *, clock: Clock) -> PublishedRuleset:
    """Make an earlier version live again, as a new version with its text (history only grows).
    The old text is re-validated for structure only: it was fully checked when published."""
    old = ruleset_version(session, name, to_version)
    ruleset = load_ruleset_text(old.source, old.file or f"{name} v{to_version}")
    return publish_ruleset(session, ruleset, author, comment or f"rollback to version {to_version}",
                           clock=clock, smoke=False, rollback_of=to_version)


def live_versions(session: Session) -> dict[str, int]:
    """The latest version of each ruleset: what runtimes should run."""
    rows = session.execute(select(RuleVersion.ruleset, func.max(RuleVersion.version)).group_by(RuleVersion.ruleset))
    return {name: int(v) for name, v in rows}


def sync_runtime(runtime: RulesRuntime, db: Database) -> list[str]:
    """Bring a runtime to the published versions (hot swap, no restart). Cheap when nothing
    changed: one grouped query. Returns the rulesets swapped in. Reads only, in a read
    session: it runs inside other transactions' handlers, where waiting for SQLite's write
    lock would deadlock."""
    with db.read_session() as session:
        wanted = live_versions(session)
        have = runtime.versions()
        changed = [n for n, v in wanted.items() if have.get(n) != v]
        items = []
        for name in changed:
            row = ruleset_version(session, name, wanted[name])
            items.append((load_ruleset_text(row.source, row.file or name), row.version))
    if items:
        runtime.install_many(items)
    return changed


def decisions_for(session: Session, customer_id: str, limit: int = 50) -> list[DecisionRecord]:
    """The latest logged decisions about a customer, newest first."""
    return list(session.scalars(
        select(DecisionRecord).where(DecisionRecord.customer_id == customer_id)
        .order_by(DecisionRecord.time.desc(), DecisionRecord.pk.desc()).limit(limit)))


def decision_by_id(session: Session, decision_id: str) -> DecisionRecord | None:
    return session.scalars(select(DecisionRecord).where(DecisionRecord.decision_id == decision_id)).first()


def history_as_dicts(rows: Sequence[RuleVersion]) -> list[dict[str, Any]]:
    return [{"ruleset": r.ruleset, "version": r.version, "author": r.author, "comment": r.comment,
             "checksum": r.checksum, "published_at": _iso(r.published_at), "rules": r.rules,
             "rollback_of": r.rollback_of} for r in rows]


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def smoke_main() -> int:
    """The child side of `smoke_test` (engine/rules/smoke.py runs this)."""
    from engine.rules.compiler import compile_ruleset
    from engine.rules.durable_engine import DurableEngine

    text = sys.stdin.read()
    try:
        ruleset = load_ruleset_text(text, "<smoke>")
    except DocumentError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 1
    compiled = compile_ruleset(ruleset, 0)
    engine = DurableEngine()
    try:
        handle = engine.register(compiled)
    except Exception as exc:
        print(f"durable_rules refused the compiled ruleset: {exc}")
        return 1
    disagreement = _disagreement(compiled, engine, handle)
    if disagreement is not None:
        print(f"durable_rules and the reference disagree on rule {disagreement}")
        return 1
    engine.retire(handle)  # what the live runtime does when the next version replaces this one
    engine.close()
    print(json.dumps({"ok": True, "rules": len(compiled.rules)}))
    return 0


def _disagreement(compiled: CompiledRuleset, engine: DurableEngine, handle: Any) -> str | None:
    """The first rule durable_rules and the reference evaluator fire differently, exercising
    every rule with nothing and with each rule's tests' own literals in place."""
    from engine.rules.runtime import reference_fired

    now = datetime.now(UTC)
    contexts = [{}, *(_literal_context(rule.when) for rule in compiled.rules if rule.when is not None)]
    for ctx in contexts:
        for rule in compiled.rules:
            event, scheduled = (rule.on[0], None) if rule.on else (None, rule.id)  # an event's rule or a scheduled one
            body, _ = compiled.fact(ctx, event=event, scheduled=scheduled, now=now)
            got = engine.evaluate(handle, body)
            want = reference_fired(compiled, ctx, event=event, scheduled=scheduled, now=now)
            if sorted(got) != sorted(want):
                return rule.id
    return None


def _literal_context(when: Node) -> dict[str, Any]:
    """A context holding each test's own literal (the first of a list) at its path."""
    ctx: dict[str, Any] = {}
    for t in tests(when):
        if t.op in ("matches", "exists"):
            continue
        value = t.value[0] if isinstance(t.value, tuple) else t.value
        _put(ctx, t.path, [value] if t.op == "contains" else value)
    return ctx


def _put(ctx: dict[str, Any], path: str, value: Any) -> None:
    node = ctx
    *parents, last = path.split(".")
    for p in parents:
        node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
    node[last] = value


__all__ = [
    "PublishedRuleset",
    "RulesError",
    "decision_by_id",
    "decisions_for",
    "default_references",
    "history_as_dicts",
    "live_versions",
    "publish_ruleset",
    "rollback_ruleset",
    "ruleset_history",
    "ruleset_version",
    "smoke_test",
    "sync_runtime",
]
