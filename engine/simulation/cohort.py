"""Who a what-if runs on: a cohort of customers, each with a plan, a quantity (seats), a
segment and a month's usage per metric, who join and leave at month boundaries.

Three sources, one shape: `synthetic_cohort(spec)` (count, plan mix, usage distributions,
growth and churn per month), `cohort_from_csv(text)` (an uploaded file) and
`cohort_from_records(rows)` (e.g. the customers in the store with their real usage, read by the
caller through engine.sales).
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from engine.catalog.model import Catalog, Plan, Price
from engine.pricing import MetricUsage
from engine.simulation.observed import Observed, ObservedUsage

ZERO = Decimal(0)
ONE = Decimal(1)
CENT = Decimal("0.01")
# Aggregations whose monthly figure adds up over a longer period (a year is 12 months of calls).
ADDITIVE = frozenset({"count", "sum", "unique_count"})
INTEGRAL = frozenset({"count", "unique_count"})
MAX_CUSTOMERS = 2_000_000
MAX_MONTHS = 120


class CohortError(ValueError):
    """Bad cohort input; `problems` lists every reason, each naming the row or field."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class SimCustomer:
    """One customer of a cohort. `usage` is a month's usage per metric (Decimal)."""

    __slots__ = ("_mu", "country", "id", "joined", "left", "plan", "quantity", "segment", "usage")

    def __init__(
        self,
        id: str,
        plan: str,
        quantity: Decimal = ONE,
        usage: Mapping[str, Decimal] | None = None,
        *,
        segment: str = "",
        country: str = "",
        joined: int = 0,
        left: int | None = None,
    ) -> None:
        self.id = id
        self.plan = plan
        self.quantity = quantity
        self.usage: dict[str, Decimal] = dict(usage or {})
        self.segment = segment
        self.country = country
        self.joined = joined  # the month index it starts in
        self.left = left  # the month index it is gone from (None: stays)
        self._mu: dict[str, MetricUsage] | None = None

    def active(self, month: int) -> bool:
        return self.joined <= month and (self.left is None or month < self.left)

    def customer(self) -> dict[str, Any]:
        """The customer as pricing rules see it (`customer.segment`, `customer.country`)."""
        out: dict[str, Any] = {"id": self.id}
        if self.segment:
            out["segment"] = self.segment
        if self.country:
            out["country"] = self.country
        return out

    def metric_usage(self) -> dict[str, MetricUsage]:
        """The month's usage as the pricing engine takes it (built once)."""
        if self._mu is None:
            self._mu = {m: MetricUsage(q) for m, q in self.usage.items()}
        return self._mu

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.id,
            "plan": self.plan,
            "quantity": str(self.quantity),
            "segment": self.segment,
            "country": self.country,
            "joined": self.joined,
            "left": self.left,
            "usage": {m: str(q) for m, q in self.usage.items()},
        }

    def __repr__(self) -> str:
        return f"SimCustomer({self.id!r}, plan={self.plan!r}, quantity={self.quantity}, usage={self.usage})"


@dataclass
class Cohort:
    customers: list[SimCustomer]
    # Monthly growth of every customer's usage (0.05 = +5% a month, compounding).
    usage_growth: Decimal = ZERO
    source: str = "records"
    description: str = ""
    # Where each plan's usage of each metric came from, in words (the store, typical, as given).
    usage_notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.customers)

    def plans(self) -> set[str]:
        return {c.plan for c in self.customers}


def _decimal(value: Any, where: str, problems: list[str], *, minimum: Decimal | None = ZERO) -> Decimal | None:
    if isinstance(value, float):
        value = repr(value)
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        problems.append(f"{where}: {value!r} is not a number")
        return None
    if not d.is_finite():
        problems.append(f"{where}: {value!r} is not a finite number")
        return None
    if minimum is not None and d < minimum:
        problems.append(f"{where}: {value!r} is negative")
        return None
    return d


def cohort_from_records(
    rows: Iterable[Mapping[str, Any]], *, catalogs: Sequence[Catalog] = (), source: str = "records"
) -> Cohort:
    """A cohort from plain rows: {customer_id, plan, quantity?, segment?, country?, usage: {metric: q}}.

    With `catalogs`, every plan must be in the first one and every metric in one of them."""
    problems: list[str] = []
    customers: list[SimCustomer] = []
    seen: set[str] = set()
    plans = set(catalogs[0].plans) if catalogs else None
    metrics = {m for c in catalogs for m in c.metrics} if catalogs else None
    for i, row in enumerate(rows, 1):
        customer = _record_customer(row, f"row {i}", seen, plans, metrics, problems)
        if customer is not None:
            customers.append(customer)
        if len(problems) >= 50:
            problems.append("... (stopped after 50 problems)")
            break
    if problems:
        raise CohortError(problems)
    if not customers:
        raise CohortError(["the cohort has no customers: nothing to simulate"])
    return Cohort(customers, source=source)


def _record_customer(row: Mapping[str, Any], where: str, seen: set[str], plans: set[str] | None,
                     metrics: set[str] | None, problems: list[str]) -> SimCustomer | None:
    """One row's customer, or None when the row has a problem (added to `problems`)."""
    cid = str(row.get("customer_id") or "").strip()
    plan = str(row.get("plan") or "").strip()
    problems += _id_problems(cid, where, seen)
    seen.add(cid)
    problems += _plan_problems(plan, where, plans)
    raw_q = row.get("quantity")
    quantity = ONE if raw_q in (None, "") else _decimal(raw_q, f"{where}: quantity", problems)
    usage = _record_usage(dict(row.get("usage") or {}), where, metrics, problems)
    if quantity is None or not cid or not plan:
        return None
    return SimCustomer(
        cid,
        plan,
        quantity,
        usage,
        segment=str(row.get("segment") or "").strip(),
        country=str(row.get("country") or "").strip().upper(),
    )


def _id_problems(cid: str, where: str, seen: set[str]) -> list[str]:
    if not cid:
        return [f"{where}: customer_id is empty"]
    if cid in seen:
        return [f"{where}: customer_id {cid!r} appears twice"]
    return []


def _plan_problems(plan: str, where: str, plans: set[str] | None) -> list[str]:
    if not plan:
        return [f"{where}: plan is empty"]
    if plans is not None and plan not in plans:
        return [f"{where}: plan {plan!r} is not in the baseline catalog ({', '.join(sorted(plans))})"]
    return []


def _record_usage(raw: dict[str, Any], where: str, metrics: set[str] | None,
                  problems: list[str]) -> dict[str, Decimal]:
    """A row's usage per metric (empty values skipped); a metric no catalog has is a problem."""
    usage: dict[str, Decimal] = {}
    for metric, value in raw.items():
        if metrics is not None and metric not in metrics:
            problems.append(f"{where}: usage.{metric}: no catalog has a metric {metric!r}")
            continue
        if value in (None, ""):
            continue
        q = _decimal(value, f"{where}: {metric}", problems)
        if q is not None:
            usage[metric] = q
    return usage


CSV_FIXED = ("customer_id", "plan", "quantity", "segment", "country")
CSV_REQUIRED = ("customer_id", "plan")


def cohort_from_csv(text: str | bytes, catalogs: Sequence[Catalog] = (), *, max_rows: int = MAX_CUSTOMERS) -> Cohort:
    """A cohort from CSV: columns customer_id, plan, and optionally quantity, segment, country;
    every other column is a metric's monthly usage (named as in the catalog, or usage.METRIC)."""
    reader = csv.reader(io.StringIO(_csv_text(text)))
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as exc:
        raise CohortError([f"line 1: not CSV ({exc})"]) from None
    rows = _csv_rows(reader, header, _csv_columns(header, catalogs), max_rows)
    try:
        return cohort_from_records(rows, catalogs=catalogs, source="csv")
    except CohortError as exc:
        raise CohortError([_file_line(p, rows) for p in exc.problems]) from None


def _csv_text(text: str | bytes) -> str:
    """The file as text, refused when it is not UTF-8 or is empty."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CohortError(["the file is not UTF-8 text"]) from None
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise CohortError(["the file is empty: expected a header line with customer_id, plan, ..."])
    return text


def _csv_columns(header: list[str], catalogs: Sequence[Catalog]) -> list[tuple[int, str, str | None]]:
    """(index, name, metric or None for a fixed column) per column; refused for a missing
    required column or a metric no catalog has."""
    problems = [f"missing column {c!r} (the header has: {', '.join(header)})" for c in CSV_REQUIRED if c not in header]
    metrics = {m for c in catalogs for m in c.metrics}
    columns: list[tuple[int, str, str | None]] = []
    for i, name in enumerate(header):
        if name in CSV_FIXED:
            columns.append((i, name, None))
            continue
        metric = name[6:] if name.startswith("usage.") else name
        if not metric:
            problems.append(f"column {i + 1} has no name")
        elif catalogs and metric not in metrics:
            problems.append(
                f"column {name!r} is not a metric of the catalogs (known: {', '.join(sorted(metrics)) or 'none'})"
            )
        else:
            columns.append((i, name, metric))
    if problems:
        raise CohortError(problems)
    return columns


def _csv_rows(reader: Iterator[list[str]], header: list[str], columns: list[tuple[int, str, str | None]],
              max_rows: int) -> list[dict[str, Any]]:
    """The records of the data lines (blank lines skipped), each with its file line as `_line`."""
    rows: list[dict[str, Any]] = []
    row_problems: list[str] = []
    try:
        for line_no, values in enumerate(reader, 2):
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                row_problems.append(f"line {line_no}: {len(values)} values for {len(header)} columns")
                continue
            row: dict[str, Any] = {"usage": {}, "_line": line_no}
            for i, name, col_metric in columns:
                if col_metric is None:
                    row[name] = values[i]
                else:
                    row["usage"][col_metric] = values[i]
            rows.append(row)
            if len(rows) > max_rows:
                raise CohortError([f"more than {max_rows:,} rows: split the file"])
    except csv.Error as exc:
        raise CohortError([f"not CSV ({exc})"]) from None
    if row_problems:
        raise CohortError(row_problems[:50])
    if not rows:
        raise CohortError(["the file has a header but no customers: nothing to simulate"])
    return rows


def _file_line(problem: str, rows: list[dict[str, Any]]) -> str:
    """A record's problem ("row 3: ...") named by its file line instead."""
    if problem.startswith("row "):
        n, _, rest = problem[4:].partition(":")
        if n.isdigit():
            return f"line {rows[int(n) - 1]['_line']}:{rest}"
    return problem


# What each kind of distribution needs of its figures.
_NEEDS = {
    "constant": "value must be 0 or more",
    "uniform": "uniform needs 0 <= low <= high",
    "lognormal": "lognormal needs median >= 0 and sigma >= 0",
}


@dataclass(frozen=True)
class Distribution:
    """How a figure is spread over a cohort: constant(value), uniform(low, high) or
    lognormal(median, sigma) — most customers near the median, a long tail of heavy users."""

    kind: str = "constant"
    value: float = 0.0  # constant
    low: float = 0.0  # uniform
    high: float = 0.0
    median: float = 0.0  # lognormal
    sigma: float = 1.0

    def problems(self, where: str) -> list[str]:
        if self.kind not in _NEEDS:
            return [f"{where}: kind is constant, uniform or lognormal, not {self.kind!r}"]
        figures = (self.value, self.low, self.high, self.median, self.sigma)
        if any(not math.isfinite(x) for x in figures):
            return [f"{where}: every figure must be a finite number"]
        invalid = {
            "constant": self.value < 0,
            "uniform": not 0 <= self.low <= self.high,
            "lognormal": self.median < 0 or self.sigma < 0,
        }
        return [f"{where}: {_NEEDS[self.kind]}"] if invalid[self.kind] else []

    def draw(self, rng: random.Random) -> float:
        if self.kind == "constant":
            return self.value
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        if self.median == 0:
            return 0.0
        return self.median * math.exp(rng.gauss(0.0, self.sigma))

    @classmethod
    def parse(cls, value: Any) -> Distribution:
        """From a number (constant) or a mapping {kind, ...}."""
        if isinstance(value, Distribution):
            return value
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            return cls("constant", value=float(value))
        if isinstance(value, Mapping):
            allowed = {"kind", "value", "low", "high", "median", "sigma"}
            unknown = set(value) - allowed
            if unknown:
                raise CohortError([f"unknown distribution field(s) {', '.join(sorted(unknown))}"])
            try:
                return cls(str(value.get("kind", "constant")), **{k: float(v) for k, v in value.items() if k != "kind"})
            except (TypeError, ValueError):
                raise CohortError([f"distribution {dict(value)!r}: figures must be numbers"]) from None
        raise CohortError([f"{value!r} is not a distribution (a number or {{kind, ...}})"])


@dataclass
class SyntheticSpec:
    """A made-up cohort: `count` customers at the start, `plan_mix` weights, seat and usage
    distributions, `growth` (new customers a month, as a share of the active ones) and `churn`
    (the share that leaves each month). Metrics `usage` does not name get each plan's typical
    usage (`typical_usage`), or none with `default_usage="none"`; `seed` makes it reproducible."""

    count: int
    plan_mix: dict[str, float]
    usage: dict[str, Distribution] = field(default_factory=dict)
    seats: Distribution = field(default_factory=lambda: Distribution("constant", value=1))
    growth: float = 0.0
    churn: float = 0.0
    usage_growth: float = 0.0
    segments: dict[str, float] = field(default_factory=dict)
    months: int = 12
    seed: int = 7
    # Metrics `usage` leaves out: "typical" draws them around each plan's included quota and
    # tiers (`typical_usage`), "none" leaves them at zero.
    default_usage: str = "typical"
    # The store's real usage per plan and metric (engine.simulation.observed): drawn before
    # typical usage for the metrics `usage` leaves out.
    observed: ObservedUsage = field(default_factory=dict)
    # Set when the store was read (even if it had nothing): the sentences then say "no stored usage".
    store_read: bool = False

    def problems(self, catalog: Catalog | None = None) -> list[str]:
        """What is wrong with the spec, field by field, in the order of the fields."""
        out = _count_problems(self.count) + _mix_problems(self.plan_mix)
        if catalog is not None:
            out += _catalog_problems(self, catalog)
        for m, d in self.usage.items():
            out.extend(d.problems(f"usage.{m}"))
        if self.default_usage not in DEFAULT_USAGE:
            out.append(f"default_usage: {' or '.join(DEFAULT_USAGE)}, not {self.default_usage!r}")
        out.extend(self.seats.problems("seats"))
        out += _rate_problems(self)
        if any(not isinstance(w, int | float) or w < 0 for w in self.segments.values()):
            out.append("segments: weights are numbers, 0 or more")
        if _not_int(self.months) or not 1 <= self.months <= MAX_MONTHS:
            out.append(f"months: between 1 and {MAX_MONTHS}")
        return out


def _not_int(value: object) -> bool:
    """True for anything but a whole number (a JSON true is not 1)."""
    return isinstance(value, bool) or not isinstance(value, int)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _count_problems(count: int) -> list[str]:
    if _not_int(count):
        return ["count: a whole number of customers"]
    if count <= 0:
        return ["count: a cohort of zero customers has nothing to simulate; give at least 1"]
    return [f"count: at most {MAX_CUSTOMERS:,}"] if count > MAX_CUSTOMERS else []


def _mix_problems(plan_mix: dict[str, float]) -> list[str]:
    out = [] if plan_mix else ["plan_mix: name at least one plan"]
    weights = list(plan_mix.values())
    if any(not _finite(w) or w < 0 for w in weights):
        out.append("plan_mix: weights are numbers, 0 or more")
    elif plan_mix and sum(weights) <= 0:
        out.append("plan_mix: the weights add up to 0")
    return out


def _catalog_problems(spec: SyntheticSpec, catalog: Catalog) -> list[str]:
    """Plans and metrics the spec names that the baseline does not have."""
    plans, metrics = ", ".join(sorted(catalog.plans)), ", ".join(sorted(catalog.metrics))
    return ([f"plan_mix.{p}: not a plan of the baseline ({plans})" for p in spec.plan_mix if p not in catalog.plans]
            + [f"usage.{m}: not a metric of the baseline ({metrics})" for m in spec.usage if m not in catalog.metrics])


def _rate_problems(spec: SyntheticSpec) -> list[str]:
    rates = (("churn", spec.churn, 0.0, 0.99), ("growth", spec.growth, 0.0, 10.0),
             ("usage_growth", spec.usage_growth, -0.99, 10.0))
    return [f"{name}: a monthly rate between {lo} and {hi}"
            for name, value, lo, hi in rates if not _finite(value) or not lo <= value <= hi]

DEFAULT_USAGE = ("typical", "none")
# The spread of typical usage: two customers in three within a factor e^0.8 (2.2) of the median.
TYPICAL_SIGMA = 0.8
# A customer with nothing included for free typically uses this much of a metric a month.
TYPICAL_UNPRICED = 100


def plan_metrics(catalog: Catalog, plan: Plan) -> list[str]:
    """The metrics a plan's bill or quotas read: its usage prices and metered entitlements."""
    found = {p.metric for p in plan.prices if p.metric}
    for fid, e in plan.entitlements.items():
        feature = catalog.features.get(fid)
        if e.enabled and feature is not None and feature.type == "metered" and feature.metric:
            found.add(feature.metric)
    return sorted(m for m in found if m in catalog.metrics)


def _included(price: Price) -> Decimal:
    """How much of a metric the price gives for nothing: free units, or the first tiers
    that cost nothing."""
    free = Decimal(price.free_units)
    for tier in price.tiers:
        if tier.unit_amount or tier.flat_amount or tier.rate or tier.up_to is None:
            break
        free = max(free, tier.up_to)
    return free


def typical_median(catalog: Catalog, plan: Plan, metric: str) -> float:
    """The median of a plan's typical monthly usage of a metric (docs/console.md,
    "Synthetic cohort"): half again what the plan includes for free, so most customers use
    some paid units and a tail reaches the upper tiers; without anything free, the first
    tier's bound; without tiers, half the plan's quota (a quota that blocks is seldom hit);
    else TYPICAL_UNPRICED."""
    prices = [p for p in plan.prices if p.metric == metric]
    included = max((_included(p) for p in prices), default=Decimal(0))
    if included > 0:
        return float(included * Decimal("1.5"))
    bounds = [t.up_to for p in prices for t in p.tiers if t.up_to is not None]
    if bounds:
        return float(min(bounds))
    limits = _quota_limits(catalog, plan, metric)
    if limits:
        return min(limits) / 2
    return float(TYPICAL_UNPRICED)


def _quota_limits(catalog: Catalog, plan: Plan, metric: str) -> list[int]:
    """The limits of the plan's enabled entitlements on features that count the metric."""
    return [
        e.limit
        for fid, e in plan.entitlements.items()
        if e.enabled and e.limit and (f := catalog.features.get(fid)) is not None and f.metric == metric
    ]


def typical_usage(catalog: Catalog, plan: Plan) -> dict[str, Distribution]:
    """Per metric the plan reads, a lognormal spread around `typical_median` (seeded draws
    make it reproducible)."""
    return {
        m: Distribution("lognormal", median=typical_median(catalog, plan, m), sigma=TYPICAL_SIGMA)
        for m in plan_metrics(catalog, plan)
    }


def _pick(rng: random.Random, names: list[str], cumulative: list[float]) -> str:
    x = rng.random() * cumulative[-1]
    lo, hi = 0, len(cumulative) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cumulative[mid] > x:
            hi = mid
        else:
            lo = mid + 1
    return names[lo]


def _cumulative(weights: Mapping[str, float]) -> tuple[list[str], list[float]]:
    names = [n for n, w in weights.items() if w > 0]
    acc, cum = 0.0, []
    for n in names:
        acc += weights[n]
        cum.append(acc)
    return names, cum


def synthetic_cohort(spec: SyntheticSpec, catalog: Catalog) -> Cohort:
    """Draw the cohort (seeded: the same spec gives the same customers), with the joins and
    departures of every month decided up front, so a baseline and a draft see the same people."""
    problems = spec.problems(catalog)
    if problems:
        raise CohortError(problems)
    rng = random.Random(spec.seed)
    plan_names, plan_cum = _cumulative(spec.plan_mix)
    seg_names, seg_cum = _cumulative(spec.segments) if spec.segments else ([], [])
    integral = {m for m, metric in catalog.metrics.items() if metric.aggregation in INTEGRAL}
    by_plan = {p: _usage_specs(spec, catalog, p, integral) for p in plan_names}
    customers: list[SimCustomer] = []

    def new(month: int) -> SimCustomer:
        plan = _pick(rng, plan_names, plan_cum)
        usage: dict[str, Decimal] = {}
        for m, d, whole in by_plan[plan]:
            if isinstance(d, Observed):
                usage[m] = d.draw(rng)  # a stored customer-month, exact
                continue
            x = d.draw(rng)
            usage[m] = Decimal(round(x)) if whole else Decimal(repr(round(x, 2)))
        seats = max(round(spec.seats.draw(rng)), 0)
        return SimCustomer(
            f"sim_{len(customers) + 1:07d}",
            plan,
            Decimal(seats),
            usage,
            segment=_pick(rng, seg_names, seg_cum) if seg_names else "",
            joined=month,
        )

    _populate(spec, rng, new, customers)
    mix = ", ".join(f"{p} {w:g}" for p, w in spec.plan_mix.items())
    usage_note = _usage_note(spec, by_plan)
    return Cohort(
        customers,
        usage_growth=Decimal(repr(spec.usage_growth)),
        source="synthetic",
        description=f"{spec.count:,} synthetic customers ({mix}), {usage_note}, growth {spec.growth:.1%}, "
        f"churn {spec.churn:.1%} a month",
        usage_notes=_usage_notes(spec, catalog, by_plan),
    )


def _populate(spec: SyntheticSpec, rng: random.Random, new: Callable[[int], SimCustomer],
              customers: list[SimCustomer]) -> None:
    """The first month's customers, then each month's departures (churn) and joins (growth)."""
    active: list[SimCustomer] = []
    for _ in range(spec.count):
        c = new(0)
        customers.append(c)
        active.append(c)
    carry = 0.0
    for month in range(1, spec.months):
        if spec.churn > 0:
            active = _staying(rng, active, spec.churn, month)
        if spec.growth > 0:
            carry += len(active) * spec.growth
            joining = int(carry)
            carry -= joining
            for _ in range(joining):
                c = new(month)
                customers.append(c)
                active.append(c)


def _staying(rng: random.Random, active: list[SimCustomer], churn: float, month: int) -> list[SimCustomer]:
    """Who stays this month; each who leaves is marked with the month."""
    staying = []
    for c in active:
        if rng.random() < churn:
            c.left = month
        else:
            staying.append(c)
    return staying


def _usage_note(spec: SyntheticSpec, by_plan: dict[str, list[tuple[str, Distribution | Observed, bool]]]) -> str:
    usage_note = "typical usage" if spec.default_usage == "typical" else "no usage"
    if any(isinstance(d, Observed) for specs in by_plan.values() for _, d, _ in specs):
        usage_note = "usage drawn from the store where it has some, else typical usage"
    if spec.usage:
        usage_note = f"usage of {', '.join(sorted(spec.usage))} as given, else {usage_note}"
    return usage_note


def _usage_notes(
    spec: SyntheticSpec, catalog: Catalog, by_plan: Mapping[str, list[tuple[str, Distribution | Observed, bool]]]
) -> list[str]:
    """One sentence per plan and metric its bill reads: where the cohort's usage comes from."""
    out = []
    for plan_id in sorted(by_plan):
        drawn = {m: d for m, d, _ in by_plan[plan_id]}
        for m in sorted(set(plan_metrics(catalog, catalog.plans[plan_id])) | set(drawn)):
            d = drawn.get(m)
            if isinstance(d, Observed):
                out.append(d.sentence(plan_id, m))
            elif m in spec.usage:
                out.append(f"plan {plan_id}, metric {m}: usage as given ({_describe(spec.usage[m])})")
            elif d is not None:
                stored = "no stored usage, " if spec.observed or spec.store_read else ""
                out.append(f"plan {plan_id}, metric {m}: {stored}typical usage around {d.median:,.0f} a month")
            else:
                out.append(f"plan {plan_id}, metric {m}: no usage (zero), as asked")
    return out


def _describe(d: Distribution) -> str:
    if d.kind == "constant":
        return f"{d.value:,g} a month"
    if d.kind == "uniform":
        return f"uniform {d.low:,g} to {d.high:,g} a month"
    return f"lognormal, median {d.median:,g}, sigma {d.sigma:g}"


def _usage_specs(
    spec: SyntheticSpec, catalog: Catalog, plan_id: str, integral: set[str]
) -> list[tuple[str, Distribution | Observed, bool]]:
    """What a customer of the plan draws: the spec's distributions, and for the plan's other
    metrics what the store saw of them, else the typical ones (unless the spec asks for no
    default usage)."""
    dists: dict[str, Distribution | Observed] = {}
    if spec.default_usage == "typical":
        dists.update(typical_usage(catalog, catalog.plans[plan_id]))
        dists.update({m: o for m, o in spec.observed.get(plan_id, {}).items() if m in catalog.metrics})
    dists.update(spec.usage)
    return [(m, d, m in integral) for m, d in dists.items()]


def usage_at(c: SimCustomer, factor: Decimal, integral: frozenset[str] | set[str]) -> dict[str, MetricUsage]:
    """A customer's usage in a month whose growth factor is `factor` (1 = the base month)."""
    if factor == ONE:
        return c.metric_usage()
    out = {}
    for m, q in c.usage.items():
        v = q * factor
        v = v.quantize(ONE, ROUND_HALF_UP) if m in integral else v.quantize(CENT, ROUND_HALF_UP)
        out[m] = MetricUsage(v)
    return out


_SPEC_FIELDS = {
    "count",
    "plan_mix",
    "usage",
    "seats",
    "growth",
    "churn",
    "usage_growth",
    "segments",
    "months",
    "seed",
    "default_usage",
}


def _spec_shape(data: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(plan_mix, usage) of a spec whose fields are known and whose required ones are there."""
    if not isinstance(data, Mapping):
        raise CohortError(["a synthetic cohort is a mapping with count, plan_mix, usage, ..."])
    unknown = sorted(set(data) - _SPEC_FIELDS)
    if unknown:
        raise CohortError([f"unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(_SPEC_FIELDS))})"])
    if "count" not in data or "plan_mix" not in data:
        raise CohortError(["count and plan_mix are required"])
    plan_mix = data.get("plan_mix")
    if not isinstance(plan_mix, Mapping):
        raise CohortError(["plan_mix: a mapping of plan id to weight"])
    usage = data.get("usage") or {}
    if not isinstance(usage, Mapping):
        raise CohortError(["usage: a mapping of metric to a distribution"])
    return plan_mix, usage


def spec_from_dict(data: Mapping[str, Any]) -> SyntheticSpec:
    """A synthetic cohort from plain data (a YAML/JSON file for `billing simulate`):
    {count, plan_mix: {plan: weight}, usage: {metric: number | {kind, ...}}, seats, growth,
    churn, usage_growth, segments, months, seed}."""
    plan_mix, usage = _spec_shape(data)
    try:
        return SyntheticSpec(
            count=data["count"],
            plan_mix={str(k): float(v) for k, v in plan_mix.items()},
            usage={str(k): Distribution.parse(v) for k, v in usage.items()},
            seats=Distribution.parse(data.get("seats", 1)),
            growth=float(data.get("growth", 0)),
            churn=float(data.get("churn", 0)),
            usage_growth=float(data.get("usage_growth", 0)),
            segments={str(k): float(v) for k, v in (data.get("segments") or {}).items()},
            months=data.get("months", 12),
            seed=int(data.get("seed", 7)),
            default_usage=str(data.get("default_usage", "typical")),
        )
    except (TypeError, ValueError) as exc:
        raise CohortError([f"not a synthetic cohort: {exc}"]) from None
