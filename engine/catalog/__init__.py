"""The catalog language: JSON Schema, a line-keeping loader, cross-reference checks, the model.

catalog = load_catalog("catalogs/saas.yaml")   # raises DocumentError listing every problem
"""

from __future__ import annotations

from pathlib import Path

from engine.catalog.build import build_catalog, cross_reference_problems
from engine.catalog.model import Catalog, Coupon, Entitlement, Feature, Metric, Plan, Price, Tier
from engine.documents import (
    Document,
    DocumentError,
    Problem,
    load_yaml_file,
    load_yaml_text,
    schema_problems,
)

SCHEMA_PACKAGE = "engine.catalog.schemas"
SCHEMA_NAME = "catalog.schema.json"


def catalog_problems(doc: Document) -> list[Problem]:
    """Every problem of a catalog document: schema first, then cross-references."""
    if not isinstance(doc.data, dict):
        return [doc.problem([], "a catalog is a mapping with catalog, currency and plans")]
    problems = schema_problems(doc, SCHEMA_PACKAGE, SCHEMA_NAME)
    if problems:
        return problems
    return sorted(cross_reference_problems(doc), key=lambda p: (p.line, p.path))


def catalog_from_document(doc: Document) -> Catalog:
    problems = catalog_problems(doc)
    if problems:
        raise DocumentError(problems)
    return build_catalog(doc)


def load_catalog(path: str | Path) -> Catalog:
    return catalog_from_document(load_yaml_file(path))


def load_catalog_text(text: str, file: str = "<catalog>") -> Catalog:
    return catalog_from_document(load_yaml_text(text, file))


def is_catalog_document(doc: Document) -> bool:
    return isinstance(doc.data, dict) and "catalog" in doc.data


__all__ = [
    "Catalog",
    "Coupon",
    "DocumentError",
    "Entitlement",
    "Feature",
    "Metric",
    "Plan",
    "Price",
    "Problem",
    "Tier",
    "catalog_from_document",
    "catalog_problems",
    "is_catalog_document",
    "load_catalog",
    "load_catalog_text",
]
