"""Checking a draft the way publishing will: parse, validate (every problem by line and field),
lint (warnings a publisher may accept), and diff it against what is published."""

from __future__ import annotations

import difflib
import hashlib
import itertools
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.catalog import Catalog, Plan, Price, catalog_from_document, catalog_problems
from engine.documents import Document, DocumentError, Problem, load_yaml_text

KINDS = ("catalog", "ruleset")


def checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class DraftCheck:
    kind: str
    name: str | None
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    catalog: Catalog | None = None
    document: Document | None = None
    summary: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors

    def rows(self) -> list[dict[str, Any]]:
        """Errors then warnings, as table rows (line, field, message)."""
        return [
            {"severity": p.severity, "line": p.line, "field": p.path, "message": p.message}
            for p in [*self.errors, *self.warnings]
        ]


def catalog_lint(doc: Document, catalog: Catalog, granted: Collection[str] = ()) -> list[Problem]:
    """What is valid but probably a mistake. `granted`: features the live access rules allow
    (a partner beta no plan includes is granted by a rule, not forgotten)."""
    # A price or feature without a metric adds None, which names no metric.
    used_metrics = {p.metric for plan in catalog.plans.values() for p in plan.prices}
    used_metrics |= {f.metric for f in catalog.features.values()}
    entitled = {fid for plan in catalog.plans.values() for fid in plan.entitlements} | set(granted)
    out = [
        doc.problem(["metrics", mid], "no price or feature uses this metric", "warning")
        for mid in sorted(set(catalog.metrics) - used_metrics)
    ]
    out += [
        doc.problem(["features", fid], "no plan grants this feature, and no access rule allows it", "warning")
        for fid in sorted(set(catalog.features) - entitled)
    ]
    for pid, plan in catalog.plans.items():
        out += _plan_lint(doc, pid, plan, catalog)
    return sorted(out, key=lambda p: (p.line, p.path))


def _plan_lint(doc: Document, pid: str, plan: Plan, catalog: Catalog) -> list[Problem]:
    out: list[Problem] = []
    if not plan.prices and not plan.entitlements:
        out.append(doc.problem(["plans", pid], "the plan has neither prices nor entitlements", "warning"))
    out += [
        doc.problem(
            ["plans", pid, "prices", i, "tiers"],
            "a later tier costs more per unit than an earlier one: heavy users pay more per unit",
            "warning",
        )
        for i, price in enumerate(plan.prices)
        if price.model == "graduated" and _unit_price_rises(price)
    ]
    out += [
        doc.problem(["plans", pid, "upgrade_to"], f"{target!r} is not a plan here", "warning")
        for target in plan.upgrade_to
        if target not in catalog.plans
    ]
    return out


def _unit_price_rises(price: Price) -> bool:
    """A free allowance first is normal; after it, unit prices should not rise."""
    units = [t.unit_amount for t in price.tiers if t.unit_amount > 0]
    return any(b > a for a, b in itertools.pairwise(units))


def _ruleset_checks(doc: Document, refs: Any) -> tuple[list[Problem], list[Problem], str]:
    """Validate a ruleset as publishing does (against `refs`: the plans, features, templates
    it may name), then lint it as `billing lint` does. Lint problems keep their severity: a
    condition that can never hold or an allow shadowed by a deny is an error, not a warning."""
    from engine import rules
    from engine.rules.lint import lint_ruleset

    # Lint what can be built even when validation fails: an editor sees every finding at once.
    ruleset, found = rules.ruleset_as_far_as_it_goes(doc, refs if refs is not None else rules.default_references())
    lint = lint_ruleset(ruleset, doc) if ruleset is not None else []
    every = sorted(found + lint, key=lambda p: (p.line, p.path))
    errors = [p for p in every if p.severity == "error"]
    warnings = [p for p in every if p.severity != "error"]
    if ruleset is None or any(p.severity == "error" for p in found):
        return errors, warnings, ""
    scheduled = sum(1 for r in ruleset.rules if r.schedule)
    disabled = sum(1 for r in ruleset.rules if not r.enabled)
    summary = (
        f"ruleset {ruleset.name}: {len(ruleset.rules)} rules on {len(ruleset.events)} events"
        + (f", {scheduled} scheduled" if scheduled else "")
        + (f", {disabled} disabled" if disabled else "")
    )
    return errors, warnings, summary


def check_draft(
    kind: str, text: str, file: str = "draft", *, refs: Any = None, granted: Collection[str] = ()
) -> DraftCheck:
    """Everything publishing would say about `text`, without raising. `refs` (a
    engine.rules.References) is what a ruleset may name; None: ./catalogs and ./templates,
    as `billing validate` does. `granted`: the features access rules allow (catalog lint)."""
    if kind not in KINDS:
        raise ValueError(f"kind: one of {', '.join(KINDS)}")
    try:
        doc = load_yaml_text(text, file)
    except DocumentError as exc:
        return DraftCheck(kind, None, errors=exc.problems)
    name = None
    if isinstance(doc.data, dict):
        raw = doc.data.get(kind)
        name = str(raw) if raw is not None else None
    if kind == "catalog":
        problems = catalog_problems(doc)
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            return DraftCheck(kind, name, errors=errors, document=doc)
        try:
            catalog = catalog_from_document(doc)
        except DocumentError as exc:
            return DraftCheck(kind, name, errors=exc.problems, document=doc)
        prices = sum(len(p.prices) for p in catalog.plans.values())
        summary = (
            f"catalog {catalog.name} ({catalog.currency}): {len(catalog.plans)} plans, {prices} prices, "
            f"{len(catalog.metrics)} metrics, {len(catalog.features)} features, {len(catalog.coupons)} coupons"
        )
        return DraftCheck(kind, catalog.name, [], catalog_lint(doc, catalog, granted), catalog, doc, summary)
    if not isinstance(doc.data, dict) or "ruleset" not in doc.data:
        return DraftCheck(kind, name, errors=[doc.problem([], "a ruleset starts with 'ruleset: NAME'")], document=doc)
    errors, warnings, summary = _ruleset_checks(doc, refs)
    return DraftCheck(kind, name, errors, warnings, None, doc, summary)


def normalised(data: Any) -> str:
    """One canonical YAML form, so a diff shows changes of meaning, not of layout."""
    return yaml.safe_dump(data, sort_keys=True, default_flow_style=False, allow_unicode=True, width=120)


def diff(published: Any, draft: Any, *, before: str = "published", after: str = "draft") -> str:
    """A unified diff of two documents' canonical forms ('' when they mean the same)."""
    a = normalised(published).splitlines(keepends=True) if published is not None else []
    b = normalised(draft).splitlines(keepends=True) if draft is not None else []
    return "".join(difflib.unified_diff(a, b, fromfile=before, tofile=after))
