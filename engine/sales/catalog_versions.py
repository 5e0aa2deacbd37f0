"""Published catalogs: immutable versions with a checksum, an author, a time and a comment.

A subscription keeps the version it was sold on (grandfathering) until it is migrated
explicitly; a new subscription takes the latest version of the catalog that owns its plan.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.catalog import Catalog, DocumentError, catalog_from_document, load_yaml_file
from engine.catalog.model import Plan
from engine.clock import Clock
from engine.documents import Document
from engine.sales.common import now_of
from engine.sales.errors import Conflict, NotFound, SalesError, required_id
from engine.sales.models import CatalogVersion, PlanOwner
from engine.store import add_event

_cache: dict[str, Catalog] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class PublishedVersion:
    id: int
    catalog: str
    version: int
    checksum: str
    created: bool  # False when the same content was already the latest version

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "catalog": self.catalog,
            "version": self.version,
            "checksum": self.checksum,
            "created": self.created,
        }


def checksum_of(raw: dict[str, Any]) -> str:
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _to_catalog(path_or_doc: str | Path | dict[str, Any] | Catalog | Document) -> Catalog:
    if isinstance(path_or_doc, Catalog):
        return path_or_doc
    if isinstance(path_or_doc, Document):
        return catalog_from_document(path_or_doc)
    if isinstance(path_or_doc, dict):
        return catalog_from_document(Document("<catalog>", path_or_doc))
    return catalog_from_document(load_yaml_file(path_or_doc))


def publish_catalog(
    session: Session,
    path_or_doc: str | Path | dict[str, Any] | Catalog | Document,
    author: str,
    comment: str = "",
    *,
    clock: Clock,
) -> PublishedVersion:
    """Validate and store a catalog as a new immutable version.

    Raises DocumentError (every problem, file:line) for an invalid catalog, SalesError when
    one of its plan ids belongs to another catalog. Publishing the content of the latest
    version again returns that version instead of a copy."""
    catalog = _to_catalog(path_or_doc)
    if not author or not author.strip():
        raise SalesError("author", "required: who publishes this version")
    raw = json.loads(json.dumps(catalog.raw, default=str))
    digest = checksum_of(raw)
    name = catalog.name
    now = now_of(clock)

    owners = {
        o.plan_id: o.catalog
        for o in session.scalars(select(PlanOwner).where(PlanOwner.plan_id.in_(list(catalog.plans))))
    }
    for plan_id in catalog.plans:
        if (owner := owners.get(plan_id, name)) != name:
            raise Conflict(
                f"plans.{plan_id}",
                f"plan id {plan_id!r} already names a plan of catalog {owner!r}; a plan id names one plan across all catalogs",
            )
    latest = session.scalars(
        select(CatalogVersion).where(CatalogVersion.catalog == name).order_by(CatalogVersion.version.desc()).limit(1)
    ).first()
    if latest is not None and latest.checksum == digest:
        return PublishedVersion(latest.id, name, latest.version, digest, False)
    for plan_id in catalog.plans:
        if plan_id not in owners:
            session.add(PlanOwner(plan_id=plan_id, catalog=name))
    row = CatalogVersion(
        catalog=name,
        version=(latest.version + 1) if latest else 1,
        checksum=digest,
        currency=catalog.currency,
        author=author.strip(),
        comment=comment or "",
        published_at=now,
        plans=sorted(catalog.plans),
        document=raw,
        source=str(catalog.source or "")[:500],
    )
    session.add(row)
    session.flush()
    with _cache_lock:
        _cache.setdefault(digest, catalog)
    add_event(
        session,
        "catalog.published",
        None,
        {"catalog": name, "version": row.version, "checksum": digest, "author": row.author, "comment": row.comment},
        time=now,
    )
    return PublishedVersion(row.id, name, row.version, digest, True)


def catalog_for_version(session: Session, version_id: int, checksum: str | None = None) -> Catalog:
    """The catalog of a stored version (built once per process: versions are immutable).
    `checksum`: the version's, when the caller read it with the version id (no query then
    for a catalog this process has built)."""
    memo: dict[int, Catalog] = session.info.setdefault("sales_catalogs", {})
    if version_id in memo:
        return memo[version_id]
    built = _cache.get(checksum) if checksum is not None else None
    catalog = built if built is not None else _catalog_for_version(session, version_id)
    memo[version_id] = catalog
    return catalog


def _catalog_for_version(session: Session, version_id: int) -> Catalog:
    checksum = session.scalar(select(CatalogVersion.checksum).where(CatalogVersion.id == version_id))
    if checksum is None:
        raise NotFound("catalog_version", f"no catalog version {version_id}")
    cached = _cache.get(checksum)
    if cached is not None:
        return cached
    document = session.scalar(select(CatalogVersion.document).where(CatalogVersion.id == version_id))
    catalog = catalog_from_document(Document(f"catalog version {version_id}", document))
    with _cache_lock:
        _cache.setdefault(checksum, catalog)
    return catalog


def latest_version_for_plan(session: Session, plan_id: str) -> tuple[CatalogVersion, Catalog, Plan]:
    """The latest published version holding `plan_id` (what a new subscription takes)."""
    required_id(plan_id, "plan", "a plan id")
    owner = session.get(PlanOwner, plan_id)
    if owner is None:
        raise NotFound("plan", f"unknown plan {plan_id!r}: no published catalog has it")
    latest = session.scalars(
        select(CatalogVersion)
        .where(CatalogVersion.catalog == owner.catalog)
        .order_by(CatalogVersion.version.desc())
        .limit(1)
    ).one()
    if plan_id not in latest.plans:
        raise NotFound("plan", f"plan {plan_id!r} was retired in version {latest.version} of catalog {owner.catalog!r}")
    catalog = catalog_for_version(session, latest.id)
    return latest, catalog, catalog.plan(plan_id)


def get_version(session: Session, catalog: str, version: int | None = None) -> CatalogVersion:
    """A stored version by catalog name and number (the latest when `version` is None)."""
    stmt = select(CatalogVersion).where(CatalogVersion.catalog == catalog)
    if version is not None:
        stmt = stmt.where(CatalogVersion.version == version)
    row = session.scalars(stmt.order_by(CatalogVersion.version.desc()).limit(1)).first()
    if row is None:
        what = f"version {version} of catalog {catalog!r}" if version is not None else f"catalog {catalog!r}"
        raise NotFound("catalog_version", f"no published {what}")
    return row


def list_versions(session: Session, catalog: str | None = None) -> list[dict[str, Any]]:
    stmt = select(CatalogVersion).order_by(CatalogVersion.catalog, CatalogVersion.version)
    if catalog:
        stmt = stmt.where(CatalogVersion.catalog == catalog)
    return [
        {
            "id": v.id,
            "catalog": v.catalog,
            "version": v.version,
            "checksum": v.checksum,
            "author": v.author,
            "comment": v.comment,
            "published_at": v.published_at.isoformat(),
            "plans": list(v.plans),
        }
        for v in session.scalars(stmt)
    ]


__all__ = [
    "DocumentError",
    "PublishedVersion",
    "catalog_for_version",
    "checksum_of",
    "get_version",
    "latest_version_for_plan",
    "list_versions",
    "publish_catalog",
]
