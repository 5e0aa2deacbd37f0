"""The pricing rules `billing simulate` prices with: --rules (published, a file or directory,
none) and --draft-rules. Moved from engine/cli/commands/ops.py."""

from __future__ import annotations

import argparse
from typing import Any

from engine.cli.errors import BadInput
from engine.cli.paths import no_sqlite_file
from engine.config import get_settings


def simulation_rules(args: argparse.Namespace, notes: list[str]) -> tuple[Any, Any]:
    """The promotion sources of both sides: the pricing rules in force (--rules) and the
    proposed ones (--draft-rules), each a memoising `RulePromotions` (None: no pricing rule)."""

    if args.rules == "none":
        texts: dict[str, str] = {}
        notes.append("--rules none: priced without the pricing rules (no promotion applies)")
    elif args.rules == "published":
        texts = _published_rules(notes)
    else:
        texts = _rules_from(args.rules, "--rules")
    runtime = _runtime(texts, "--rules")
    draft_runtime = (
        _runtime(_rules_from(args.draft_rules, "--draft-rules"), "--draft-rules") if args.draft_rules else runtime
    )
    promotions = _promotions(runtime)
    if draft_runtime is runtime:
        return promotions, promotions
    return promotions, _promotions(draft_runtime)


def _promotions(runtime: Any) -> Any:
    """A memoising promotion source on `runtime` (None: no pricing rule, no promotion)."""
    from engine import rules

    return rules.RulePromotions(runtime, memo=True) if runtime is not None else None


def _rules_from(path: str, flag: str) -> dict[str, str]:
    from engine import rules
    from engine.documents import DocumentError

    try:
        return rules.ruleset_texts(path)
    except (DocumentError, OSError) as exc:
        raise BadInput(f"{flag}: {exc}") from None


def _runtime(texts: dict[str, str], flag: str) -> Any:
    from engine import rules
    from engine.documents import DocumentError

    try:
        return rules.pricing_runtime(texts) if texts else None
    except DocumentError as exc:
        raise BadInput(f"{flag}: {exc}") from None


def _published_rules(notes: list[str]) -> dict[str, str]:
    """The text of every ruleset published in the configured database (none, with a note,
    when there is no such database)."""
    from sqlalchemy.exc import SQLAlchemyError

    from engine import rules
    from engine.store import Database

    url = get_settings().database_url
    if no_sqlite_file(url):
        notes.append(f"no database at {url}: priced without published pricing rules (give --rules DIR)")
        return {}
    db = Database(url)
    try:
        with db.read_session() as session:
            live = rules.live_versions(session)
            texts = {name: str(rules.ruleset_version(session, name, v).source) for name, v in live.items()}
    except SQLAlchemyError:
        notes.append(f"{url} has no published rulesets: priced without pricing rules (give --rules DIR)")
        return {}
    finally:
        db.dispose()
    if not texts:
        notes.append("no ruleset is published: priced without pricing rules (give --rules DIR)")
    return texts
