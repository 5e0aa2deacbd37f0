"""The cohort `billing simulate` prices: a CSV file, or drawn from --customers, --usage and the
store's real usage. Moved from engine/cli/commands/ops.py."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cli.clock import cli_now
from engine.cli.errors import BadInput
from engine.cli.paths import no_sqlite_file
from engine.config import get_settings

if TYPE_CHECKING:
    from engine.simulation import Cohort


def simulation_cohort(args: argparse.Namespace, baseline: Any, notes: list[str]) -> Cohort:
    """The cohort of a CSV file, or drawn from the options (usage read from the store when
    they ask for it)."""
    from engine.simulation import cohort_from_csv, synthetic_cohort

    if args.csv:
        return cohort_from_csv(Path(args.csv).read_bytes(), [baseline])
    spec = _synthetic_spec(args, baseline)
    if spec.default_usage == "store":
        found = _stored_usage(baseline.name, notes)
        spec.observed, spec.store_read, spec.default_usage = found or {}, found is not None, "typical"
    return synthetic_cohort(spec, baseline)


def _synthetic_spec(args: argparse.Namespace, baseline: Any) -> Any:
    """The synthetic cohort the flags ask for: every recurring plan alike, usage as given by
    --usage and typical for the rest (or none)."""
    from engine.simulation import SyntheticSpec

    if args.customers < 1:
        raise BadInput("--customers: a cohort needs at least one customer")
    default_usage = "store"
    usage = {}
    for item in args.usage:
        if item in ("none", "typical", "store"):
            default_usage = item
            continue
        metric, dist = _usage_item(item, baseline)
        usage[metric] = _distribution(dist)
    plans = [p for p in baseline.plans if baseline.plans[p].interval != "once"]
    return SyntheticSpec(
        count=args.customers,
        plan_mix={p: 1.0 for p in plans},
        usage=usage,
        months=args.months,
        seed=args.seed,
        default_usage=default_usage,
    )


def _usage_item(item: str, baseline: Any) -> tuple[str, str]:
    """(metric, distribution text) of a --usage METRIC=DIST naming a metric of the baseline."""
    metric, sep, dist = item.partition("=")
    if not sep or not metric:
        raise BadInput(f"--usage: {item!r} is not METRIC=DIST, 'typical' or 'none'")
    if metric not in baseline.metrics:
        raise BadInput(f"--usage: {metric!r} is not a metric of the baseline ({', '.join(sorted(baseline.metrics))})")
    return metric, dist


def _distribution(text: str) -> Any:
    """number | lognormal:MEDIAN[:SIGMA] | uniform:LOW:HIGH"""
    from engine.simulation import Distribution

    kind, *figures = text.split(":")
    try:
        numbers = [float(x) for x in figures]
        if not figures:
            found = Distribution("constant", value=float(kind))
        elif kind == "lognormal" and len(numbers) in (1, 2):
            found = Distribution("lognormal", median=numbers[0], sigma=numbers[1] if len(numbers) > 1 else 0.8)
        elif kind == "uniform" and len(numbers) == 2:
            found = Distribution("uniform", low=numbers[0], high=numbers[1])
        else:
            raise ValueError(text)
    except ValueError:
        raise BadInput(f"--usage: {text!r} is a number, lognormal:MEDIAN[:SIGMA] or uniform:LOW:HIGH") from None
    problems = found.problems("--usage")
    if problems:
        raise BadInput("; ".join(problems))
    return found


def _stored_usage(catalog_name: str, notes: list[str]) -> dict[str, Any] | None:
    """The configured database's real usage per plan and metric (None, with a note, when
    there is no such database)."""
    from sqlalchemy.exc import SQLAlchemyError

    from engine.store import Database
    from engine.system.stored_usage import stored_usage

    url = get_settings().database_url
    if no_sqlite_file(url):
        notes.append(f"no database at {url}: typical usage instead of the store's")
        return None
    db = Database(url)
    try:
        with db.read_session() as session:
            found = stored_usage(session, catalog_name, cli_now())
        if not found:
            notes.append("the store has no usage in the last 3 full months: typical usage instead")
        return found
    except SQLAlchemyError:
        notes.append(f"{url} has no usage tables: typical usage instead of the store's")
        return None
    finally:
        db.dispose()
