"""`billing up`: the whole embedded system in one command."""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from typing import Any

from engine.catalog import DocumentError, load_catalog
from engine.cli.errors import BadInput
from engine.cli.paths import expand
from engine.config import get_settings
from engine.periods import Period
from engine.pricing import MetricUsage, bill_to_dict, price_period


def register(sub: Any) -> None:
    p = sub.add_parser("up", help="start the whole embedded system (SQLite, in-process bus, demo data)")
    p.set_defaults(func=run)


def demo_quote() -> dict[str, Any]:
    settings = get_settings()
    catalogs = []
    for path in expand([settings.catalogs_dir]):
        try:
            catalogs.append(load_catalog(path))
        except DocumentError as exc:
            raise BadInput(str(exc)) from None
    saas = next(c for c in catalogs if "pro" in c.plans)
    bill = price_period(
        saas,
        saas.plan("pro"),
        Period.parse("2026-11-01/2026-12-01"),
        quantity=Decimal(3),
        usage={"api_calls": MetricUsage(Decimal(15000))},
    )
    return bill_to_dict(bill, saas.rounder)


def run(args: argparse.Namespace) -> int:
    print("billing-engine: catalogs validated; demo quote for plan pro (3 seats, 15,000 API calls):")
    print(json.dumps(demo_quote(), indent=2))
    return 0
