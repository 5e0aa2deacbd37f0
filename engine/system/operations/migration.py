"""Move grandfathered subscriptions to another version of their catalog from their next
period on, or preview it (`billing migrate-subscriptions`, `POST /v1/catalogs/{name}/migrations`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engine import sales
from engine.clock import Clock
from engine.errors import OperationError


def migrate_catalog(session: Session, catalog: str, version: int | None = None, *, clock: Clock,
                    plan: str | None = None, subscription_ids: list[str] | None = None,
                    dry_run: bool = False) -> dict[str, Any]:
    """`{"migrated"|"would_migrate": rows, "blocked": rows}`: each row a subscription with its
    next period's amount before and after (before tax). A named subscription that is not
    among those to move is refused, and then nothing moves."""
    try:
        rows = sales.preview_migration(session, catalog, version, plan=plan)
        _named_are_movable(rows, subscription_ids)
        chosen = [r for r in rows if subscription_ids is None or r["subscription_id"] in subscription_ids]
        blocked = [r for r in chosen if r["blocked"]]
        if dry_run:
            return {"would_migrate": [r for r in chosen if not r["blocked"]], "blocked": blocked}
        done = sales.migrate_subscriptions(session, catalog, version, clock=clock, plan=plan,
                                           subscription_ids=subscription_ids)
    except sales.NotFound as exc:
        field = "version" if version is not None and exc.field != "catalog" else "catalog"
        raise OperationError(field, exc.message, "not_found") from None
    return {"migrated": done, "blocked": blocked}


def _named_are_movable(rows: list[dict[str, Any]], named: list[str] | None) -> None:
    known = {r["subscription_id"] for r in rows}
    for i, sid in enumerate(named or []):
        if sid not in known:
            raise OperationError(f"subscription_ids[{i}]", f"{sid!r} is not an active subscription of this catalog "
                                 "on another version (or of this plan)", "not_found")
