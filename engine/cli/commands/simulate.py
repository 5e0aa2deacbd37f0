"""`billing simulate`: what-if, a cohort priced on a baseline and a draft catalog. Moved from
engine/cli/commands/ops.py."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import Any

from engine.cli.clock import cli_now
from engine.cli.commands.simulate_cohort import simulation_cohort
from engine.cli.commands.simulate_output import print_simulation
from engine.cli.commands.simulate_rules import simulation_rules
from engine.cli.errors import BadInput


def register(sub: Any) -> None:
    """`simulate`: the what-if simulator's options."""
    p = sub.add_parser("simulate", help="what-if: price a cohort on a baseline and a draft catalog")
    p.add_argument("--baseline", required=True, help="the catalog in force")
    p.add_argument("--draft", required=True, help="the catalog to try")
    p.add_argument("--customers", type=int, default=1000, help="a synthetic cohort of this many customers")
    p.add_argument(
        "--usage",
        action="append",
        default=[],
        metavar="METRIC=DIST",
        help="the synthetic cohort's monthly usage of a metric: a number, lognormal:MEDIAN[:SIGMA] or "
        "uniform:LOW:HIGH (repeatable). Metrics not given are drawn from the store's real usage of each plan "
        "(the last 3 full months), else typical usage around each plan's included quota and tiers; "
        "--usage typical skips the store, --usage none leaves them at zero",
    )
    p.add_argument(
        "--move",
        action="append",
        default=[],
        metavar="FROM=TO",
        help="every customer of plan FROM is on plan TO in the draft (repeatable)",
    )
    p.add_argument(
        "--share",
        action="append",
        default=[],
        metavar="PLAN=SHARE[:FROM,...]",
        help="a share of the cohort (30%% or 0.3; only of plans FROM,... if given) takes PLAN in the "
        "draft, e.g. a new plan: --share team=20%%:pro (repeatable; drawn with --seed)",
    )
    p.add_argument("--seed", type=int, default=7, help="the synthetic cohort's random seed (same seed, same cohort)")
    p.add_argument(
        "--prepaid",
        default=None,
        metavar="SHARE:PACK[:top-up]",
        help="a share of the cohort (30%% or 0.3, drawn with --seed) buys the credit pack PACK when "
        "they join and their bills are drawn from it; with :top-up the catalog's automatic top-up "
        "buys again below its threshold (e.g. --prepaid 30%%:starter:top-up)",
    )
    p.add_argument("--csv", help="a cohort CSV instead of a synthetic one")
    p.add_argument(
        "--rules",
        default="published",
        help="the pricing rules in force: 'published' (those published in the database, the default), "
        "a ruleset file or directory, or 'none'",
    )
    p.add_argument("--draft-rules", default=None, help="proposed pricing rules (file or directory); default: --rules")
    p.add_argument("--months", type=int, default=12)
    p.add_argument("--start", default=None, help="first month (ISO date); default this month")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    from engine.catalog import DocumentError, load_catalog
    from engine.simulation import (
        CohortError,
        SimulationError,
        assign,
        moves,
        parse_move,
        parse_prepaid,
        parse_share,
        simulate,
    )

    try:
        baseline, draft = load_catalog(args.baseline), load_catalog(args.draft)
    except DocumentError as exc:
        raise BadInput(str(exc)) from None
    start = date.fromisoformat(args.start) if args.start else cli_now().date().replace(day=1)
    notes: list[str] = []
    promotions, draft_promotions = simulation_rules(args, notes)
    try:
        plan_map = dict(parse_move(m) for m in args.move)
        shares = [parse_share(x) for x in args.share]
        prepaid = parse_prepaid(args.prepaid, seed=args.seed) if args.prepaid else None
        moves.check(baseline, draft, plan_map, shares)
        cohort = simulation_cohort(args, baseline, notes)
        result = simulate(
            baseline,
            draft,
            cohort,
            months=args.months,
            start=start,
            plan_map=plan_map,
            moved=assign(cohort, shares, seed=args.seed),
            promotions=promotions,
            draft_promotions=draft_promotions,
            prepaid=prepaid,
        )
    except (CohortError, SimulationError, OSError) as exc:
        raise BadInput(str(exc)) from None
    result.warnings[:0] = notes
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
        for w in result.warnings:
            print(f"warning: {w}", file=sys.stderr)
    else:
        print_simulation(result)
    return 0
