"""`billing quote`: price a plan for one period from a catalog, usage and optional rules."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.catalog import Catalog, DocumentError, load_catalog
from engine.cli.clock import cli_now
from engine.cli.errors import BadInput
from engine.periods import Period
from engine.pricing import Discount, Document, UsageEvent, bill_to_dict, parse_event
from engine.pricing.quoting import PromotionSource, QuoteError, quote, resolve_plan


def register(sub: Any) -> None:
    p = sub.add_parser("quote", help="price a plan for one period")
    p.add_argument("--catalog", required=True, help="catalog YAML file")
    p.add_argument("--plan", required=True, help="plan id in the catalog")
    p.add_argument("--quantity", default="1", help="the subscription's quantity (seats); default 1")
    p.add_argument(
        "--usage",
        action="extend",
        nargs="+",
        default=[],
        metavar="METRIC=VALUE",
        help="a metric's aggregate for the period, e.g. api_calls=15000",
    )
    p.add_argument("--events", help="JSON Lines of event envelopes, aggregated by the catalog's metrics")
    p.add_argument("--coupon", help="a catalog coupon code")
    p.add_argument(
        "--customer",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="customer attributes for rules and tax, e.g. segment=edu country=CH",
    )
    p.add_argument("--rules", help="a directory (or file) of rulesets whose pricing rules apply")
    p.add_argument(
        "--period", help="START/END as ISO dates; default: the plan's period holding the first event, or today"
    )
    p.add_argument("--json", action="store_true", help="print the quote as JSON (FORMATS §5)")
    p.set_defaults(func=run)


_FLAGS = {
    "plan": "--plan",
    "quantity": "--quantity",
    "coupon": "--coupon",
    "events": "--events",
    "period": "--period",
    "usage": "--usage",
}


def _flag(field: str) -> str:
    head, _, rest = field.partition(".")
    flag = _FLAGS.get(head, f"--{head}")
    return f"{flag} {rest}" if rest else flag


def _pairs(items: Sequence[str], flag: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(f"{flag}: {item!r} is not KEY=VALUE")
        out.append((key.strip(), value.strip()))
    return out


def read_located_events(path: str) -> list[tuple[str, UsageEvent]]:
    """The file's events, each with `FILE:LINE` so that an error about it can name its line."""
    events: list[tuple[str, UsageEvent]] = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"--events: {path}: {getattr(exc, 'strerror', None) or exc}") from None
    seen: set[str] = set()
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}:{n}: malformed JSON: {exc.msg}") from None
        try:
            event = parse_event(data, f"{path}:{n}")
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        if event.id in seen:  # an event id seen before is accepted and ignored (FORMATS §3)
            continue
        seen.add(event.id)
        events.append((f"{path}:{n}", event))
    return events


def build_customer(items: Sequence[str]) -> dict[str, Any]:
    customer: dict[str, Any] = {}
    for key, value in _pairs(items, "--customer"):
        if key == "tags":
            customer["tags"] = [t for t in value.split(",") if t]
        else:
            customer[key] = value
    return customer


def compute_quote(
    catalog: Catalog, args: argparse.Namespace, *, today: date, promotions: PromotionSource
) -> Document:
    period = _period(args.period) if args.period else None
    usage = dict(_pairs(args.usage, "--usage"))
    customer = build_customer(args.customer)
    located = read_located_events(args.events) if args.events else []
    events = [event for _, event in located]
    source = _rules_source(args.rules, promotions) if args.rules else None
    try:
        plan = resolve_plan(catalog, args.plan)
        return quote(
            catalog,
            plan,
            today=today,
            quantity=args.quantity,
            usage=usage,
            events=events,
            coupon=args.coupon,
            customer=customer,
            period=period,
            promotions=source,
        )
    except QuoteError as exc:
        raise BadInput(f"{_where(exc.field, located)}: {exc.message}") from None
    except DocumentError as exc:  # a ruleset under --rules that does not validate
        raise BadInput(f"--rules: {exc}") from None


def _period(text: str) -> Period:
    try:
        return Period.parse(text)
    except ValueError as exc:
        raise BadInput(f"--period: {exc}") from None


def _rules_source(rules_path: str, promotions: PromotionSource) -> PromotionSource:
    """The pricing rules of --rules, asked as the live ones are."""

    def source(**kwargs: Any) -> tuple[list[Discount], list[dict[str, Any]]]:
        return promotions(rules_path=rules_path, **kwargs)

    return source


def _where(field: str, located: Sequence[tuple[str, UsageEvent]]) -> str:
    """`events[3].properties.gb` as the file's line and event id a user can find; any other
    field as its flag."""
    index, sep, rest = field.removeprefix("events[").partition("].")
    if not (field.startswith("events[") and sep and index.isdigit() and int(index) < len(located)):
        return _flag(field)
    where, event = located[int(index)]
    return f"--events {where}: event {event.id}: {rest}"


def render_table(data: dict[str, Any]) -> str:
    cur = data["currency"]
    rows = [f"Quote: plan {data['plan']}, {data['period']['start']} to {data['period']['end']} ({cur})", ""]
    width = max([len(line["name"]) for line in data["lines"]] + [24])
    for line in data["lines"]:
        rows.append(f"  {line['name']:<{width}}  {line['quantity']:>12}  {line['amount']:>12}")
        for tier in line["tiers"]:
            label = f"  tier {tier['tier']}"
            rows.append(f"  {label:<{width}}  {tier['quantity']:>12}  {tier['amount']:>12}")
    rows.append("  " + "-" * (width + 28))
    rows.append(f"  {'Subtotal':<{width}}  {'':>12}  {data['subtotal']:>12}")
    for d in data["discounts"]:
        rows.append(
            f"  {'Discount (' + (d['reason'] or d['source']) + ')':<{width}}  {'':>12}  {'-' + d['amount']:>12}"
        )
    tax = data["tax_detail"]
    tax_label = "Tax (reverse charge)" if tax["reverse_charge"] else f"Tax ({tax['rate']}%)"
    rows.append(f"  {tax_label:<{width}}  {'':>12}  {data['tax']:>12}")
    rows.append(f"  {'Total':<{width}}  {'':>12}  {data['total']:>12}")
    if data["rules"]:
        rows.append("")
        rows.append("Rules: " + ", ".join(f"{r['ruleset']}/{r['rule']}" for r in data["rules"]))
    return "\n".join(rows)


def _promotions() -> PromotionSource:
    from engine.rules import quote_promotions  # the rules runtime: only when quoting

    return quote_promotions


def run(args: argparse.Namespace) -> int:
    try:
        catalog = load_catalog(args.catalog)
    except DocumentError as exc:
        raise BadInput(str(exc)) from None
    bill = compute_quote(catalog, args, today=cli_now().date(), promotions=_promotions())
    data = bill_to_dict(bill, catalog.rounder)
    print(json.dumps(data, indent=2) if args.json else render_table(data))
    return 0
