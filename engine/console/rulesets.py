"""Published rulesets as the console sees them, through the rules runtime's public functions:
the published versions and their history, what the live access rules allow, and the text diff
of a draft against what is live. What a draft may refer to (the published catalogs) and
publishing and rollback are operator operations the console receives
(engine.console.operations), the path `billing publish` takes."""

from __future__ import annotations

import difflib
from typing import Any

from sqlalchemy.orm import Session

from engine import rules
from engine.catalog import DocumentError
from engine.config import get_settings, shipped_dir


def features_allowed(texts: dict[str, str]) -> set[str]:
    """The features an access rule allows by name ({feature: beta_ai} with an allow)."""
    from engine.rules.conditions import tests

    out: set[str] = set()
    for name, text in texts.items():
        try:
            ruleset = rules.load_ruleset_text(text, f"{name}.yaml")
        except DocumentError:
            continue  # a broken ruleset grants nothing; the editor reports it when opened
        for rule in ruleset.rules:
            if rule.when is None or not any(a.name == "allow" for a in rule.then):
                continue
            for t in tests(rule.when):
                if t.path == "feature" and t.op in ("eq", "in"):
                    out.update(v for v in (t.value if isinstance(t.value, tuple) else (t.value,)) if isinstance(v, str))
    return out


def published_rulesets(session: Session) -> dict[str, int]:
    """The live version of every ruleset: name -> version."""
    return dict(sorted(rules.live_versions(session).items()))


def published_source(session: Session, name: str, version: int | None = None) -> str | None:
    try:
        return str(rules.ruleset_version(session, name, version).source)
    except rules.RulesError:
        return None


def text_diff(before: str | None, after: str | None, *, old: str = "published", new: str = "draft") -> str:
    """Rulesets are stored as written (comments and all), so their diff is of the text."""
    a = (before or "").splitlines(keepends=True)
    b = (after or "").splitlines(keepends=True)
    if a and not a[-1].endswith("\n"):
        a[-1] += "\n"
    if b and not b[-1].endswith("\n"):
        b[-1] += "\n"
    return "".join(difflib.unified_diff(a, b, fromfile=old, tofile=new))


def ruleset_history(session: Session, name: str) -> list[dict[str, Any]]:
    """Every version, newest first, with who published it, why, and its diff."""
    rows = rules.ruleset_history(session, name)
    out = []
    for meta, row in zip(rules.history_as_dicts(rows), rows, strict=True):
        out.append(
            {
                "version": meta["version"],
                "published_at": meta["published_at"],
                "author": meta["author"],
                "comment": meta["comment"],
                "rollback_of": meta["rollback_of"],
                "diff": row.diff if meta["version"] > 1 else "",
            }
        )
    return list(reversed(out))


def live_texts(session: Session) -> tuple[dict[str, str], str]:
    """The text of every live ruleset (name -> YAML), and where they came from: what is
    published, or the example files when nothing is."""
    published = {
        name: source
        for name, version in published_rulesets(session).items()
        if (source := published_source(session, name, version)) is not None
    }
    if published:
        return published, "published"
    folder = shipped_dir(get_settings().rules_dir)
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.y*ml"))}, f"files in {folder}"
