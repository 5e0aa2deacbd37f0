"""`billing validate PATH...`: check catalogs and rulesets without a server."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.catalog import catalog_from_document, is_catalog_document
from engine.cli.paths import expand
from engine.documents import Document, DocumentError, Problem, load_yaml_file


def register(sub: Any) -> None:
    p = sub.add_parser("validate", help="validate catalogs and rulesets (files or directories)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.set_defaults(func=run)


def summarize(doc: Document) -> tuple[str, list[Problem]]:
    """A one-line summary of a valid document, or its problems."""
    if is_catalog_document(doc):
        try:
            c = catalog_from_document(doc)
        except DocumentError as exc:
            return "", exc.problems
        prices = sum(len(p.prices) for p in c.plans.values())
        return (
            f"catalog {c.name} ({c.currency}): {len(c.plans)} plans, {prices} prices, "
            f"{len(c.metrics)} metrics, {len(c.features)} features, {len(c.coupons)} coupons"
        ), []
    if isinstance(doc.data, dict) and "ruleset" in doc.data:
        from engine.rules import summarize_ruleset_document  # the rules runtime: only for rulesets

        return summarize_ruleset_document(doc)
    return "", [doc.problem([], "neither a catalog (top-level 'catalog:') nor a ruleset (top-level 'ruleset:')")]


def run(args: argparse.Namespace) -> int:
    problems: list[Problem] = []
    summaries: list[str] = []
    for path in expand(args.paths):
        try:
            doc = load_yaml_file(path)
        except DocumentError as exc:
            problems.extend(exc.problems)
            continue
        summary, found = summarize(doc)
        if found:
            problems.extend(found)
        else:
            summaries.append(f"{path}: ok: {summary}")
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        errors = sum(1 for p in problems if p.severity == "error")
        print(f"{errors} error(s)", file=sys.stderr)
        return 1
    for line in summaries:
        print(line)
    return 0
