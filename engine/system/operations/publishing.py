"""Publish catalogs and rulesets as new versions, all or nothing (`billing publish`,
`POST /v1/publish`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.orm import Session

from engine import rules, sales
from engine.catalog import load_catalog
from engine.clock import Clock
from engine.config import get_settings, shipped_dir
from engine.documents import Document, DocumentError, load_yaml_text
from engine.errors import OperationError


@dataclass(frozen=True)
class PublishedItem:
    file: str
    kind: str  # catalog | ruleset
    name: str
    version: int
    created: bool  # False: the latest version already had exactly this content

    def line(self) -> str:
        if not self.created:
            return f"{self.file}: {self.kind} {self.name} unchanged (version {self.version})"
        return f"{self.file}: published {self.kind} {self.name} version {self.version}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def _refused() -> Iterator[None]:
    """The subsystems' refusals as one OperationError, every problem kept (file:line: field)."""
    try:
        yield
    except DocumentError as exc:
        raise OperationError("documents", str(exc), problems=[str(p) for p in exc.problems]) from None
    except sales.Conflict as exc:
        raise OperationError(exc.field, exc.message, "conflict") from None
    except sales.SalesError as exc:
        raise OperationError(exc.field, exc.message) from None
    except rules.RulesError as exc:
        raise OperationError(exc.field, exc.message) from None


def publish_texts(session: Session, texts: Sequence[tuple[str, str]], actor: str, comment: str = "", *,
                  clock: Clock) -> list[PublishedItem]:
    """(file name, YAML text) pairs, as an HTTP body carries them: every one parsed before any
    is stored; rulesets checked against the published catalogs (those of this call included)."""
    problems: list[str] = []
    docs = []
    for file, text in texts:
        try:
            docs.append(load_yaml_text(text, file))
        except DocumentError as exc:
            problems.extend(str(p) for p in exc.problems)
    if problems:
        raise OperationError("documents", "\n".join(problems), problems=problems)
    return publish_documents(session, docs, actor, comment, clock=clock)


def publish_documents(
    session: Session, docs: Sequence[Document], actor: str, comment: str = "", *, clock: Clock
) -> list[PublishedItem]:
    """Catalogs first, then rulesets (so a ruleset may name a plan published in the same
    call). A ruleset may name what the database's published catalogs hold
    (`published_references`), whichever door publishes it: the CLI and the HTTP door share
    this, so neither refuses what the other accepts."""
    is_ruleset = [isinstance(d.data, dict) and "ruleset" in d.data for d in docs]
    ordered = [d for d, r in zip(docs, is_ruleset, strict=True) if not r] + \
        [d for d, r in zip(docs, is_ruleset, strict=True) if r]
    out = []
    with _refused():
        for doc in ordered:
            out.append(_publish_one(session, doc, actor, comment, clock))
    return out


def _publish_one(session: Session, doc: Document, actor: str, comment: str, clock: Clock) -> PublishedItem:
    if isinstance(doc.data, dict) and "ruleset" in doc.data:
        session.flush()  # the catalogs of this call are read back as published
        found = rules.publish_ruleset(session, doc, actor, comment, refs=published_references(session), clock=clock)
        return PublishedItem(doc.file, "ruleset", found.ruleset, found.version, found.created)
    version = sales.publish_catalog(session, doc, actor, comment, clock=clock)
    return PublishedItem(doc.file, "catalog", version.catalog, version.version, version.created)


def published_references(session: Session) -> rules.References:
    """What a ruleset may name: the plans, prices, features, metrics and coupons of every
    published catalog (the example catalogs when nothing is published yet) and the templates."""
    settings = get_settings()
    templates = shipped_dir(settings.templates_dir)
    refs = rules.References.from_catalogs([], templates if templates.is_dir() else None)
    for name in dict.fromkeys(v["catalog"] for v in sales.list_versions(session)):
        row = sales.get_version(session, name)
        refs.add_catalog(sales.catalog_for_version(session, row.id))
    if not refs.catalogs:
        for path in sorted(shipped_dir(settings.catalogs_dir).glob("*.y*ml")):
            try:
                refs.add_catalog(load_catalog(path))
            except DocumentError:
                continue  # an invalid example is reported when it is opened
    return refs
