"""Lifecycle what-if on the real engine: the cohort is run through a throwaway SQLite database
by the same system live billing runs (sales' billing run, payments' collection, the rules
runtime, automation and the scheduler on a test clock, messaging), once on the baseline and
once on the draft, with an in-process card provider that declines at the given rates.

Here, in engine.system beside `lifecycle_system`, because it drives sales, payments, dunning and
messaging together (it was engine/console/lifecycle.py; the console's modules import one
subsystem each at most). What is pure moved to engine.simulation: the inputs and their checks
(`lifecycle_inputs`: `CardModel`, the two sides) and the figures (`lifecycle_figures`); the
card provider is `lifecycle_cards.DecliningProvider`; the two sides run one process each
(`engine.simulation.lifecycle_sides`). The console's What-if page (ui/views/simulate.py) only
shows the result.

The engine is handed in (`build`: settings, clock, database, payment service -> a system):
the console page, `benchmarks/lifecycle.py` and the tests pass `lifecycle_system` (the full
system on that database and clock); a test's closure runs the sides in one process.

Usage is sent as one event per metric and customer-month: every metric of the simulated
catalogs is rewritten to sum a `units` field (prices untouched), so a month of 20,000 API
calls is one row, not 20,000.
"""

from __future__ import annotations

import copy
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Protocol

from dateutil.relativedelta import relativedelta
from sqlalchemy import event, select

from engine import dunning, messaging, payments, rules, sales
from engine.catalog import Catalog
from engine.clock import TestClock
from engine.config import Settings, get_settings, shipped_dir
from engine.pricing.quoting import PromotionSource
from engine.simulation import Cohort, LifecycleResult, month_start
from engine.simulation.auxiliary import priced_revenue
from engine.simulation.errors import CohortError, SimulationError
from engine.simulation.lifecycle_figures import Figures, Tally, event_column, lifecycle_result
from engine.simulation.lifecycle_inputs import CardModel, check_run, sides
from engine.simulation.lifecycle_sides import run_sides
from engine.simulation.sampling import Sample, stratified_sample
from engine.store import Database, OutboxEvent
from engine.system.lifecycle_cards import PROVIDER, DecliningProvider

Progress = Callable[[float, str], None]


class Engine(Protocol):
    """What a side of the what-if uses of the system it built (engine.system.System)."""

    @property
    def promotions(self) -> PromotionSource: ...

    def sync_rules(self) -> list[str]: ...

    def drain(self) -> int: ...

    def advance_to(self, target: datetime) -> dict[str, object]: ...


# (settings, clock, database, the card provider's payment service) -> the system of one side
Build = Callable[[Settings, TestClock, Database, payments.PaymentService], Engine]

# Customer-months a side the engine runs in a few minutes on the shared 2-core machine; a
# larger cohort runs as a stratified sample of about this many (never under MIN_SAMPLE customers).
SAMPLE_BUDGET = 2_400
MIN_SAMPLE = 30
_RUN_LOCK = threading.Lock()  # one lifecycle run at a time: each is a minute of both cores


def units_catalog(catalog: Catalog) -> dict[str, object]:
    """The catalog's document with every metric summing `units` of its own event type: one
    event carries a customer-month's usage. Prices, plans and features are unchanged."""
    doc = copy.deepcopy(dict(catalog.raw))
    doc["metrics"] = {
        mid: {"event": f"whatif.{mid}", "aggregation": "sum", "field": "units"} for mid in catalog.metrics
    }
    return doc


def _usage(catalog: Catalog, usage: Mapping[str, Decimal], factor: Decimal) -> dict[str, Decimal]:
    out = {}
    for mid, v in usage.items():
        metric = catalog.metrics.get(mid)
        if metric is None or v <= 0:
            continue
        value = v * factor
        if metric.aggregation in ("count", "unique_count"):
            value = value.quantize(Decimal(1), ROUND_HALF_UP)  # a count is whole
        out[mid] = value
    return out


class _ReportingClock(TestClock):
    """The run's test clock, telling the progress bar each time the engine moves it."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.moved: Callable[[datetime], object] = lambda _now: None

    def set(self, when: datetime) -> None:
        super().set(when)
        self.moved(self.now())


def _isolated_settings(db: Database, begin: datetime) -> Settings:
    """Nothing leaves the run: no broker, no SMTP, no provider URL, whatever the environment says."""
    return get_settings().model_copy(
        update={
            "database_url": db.url,
            "test_clock": begin.isoformat(),
            "broker_url": "",
            "smtp_url": "",
            "psp_url": "",
            "access_denial_buffer_ms": 0,
            "templates_dir": str(shipped_dir(get_settings().templates_dir)),
        }
    )


def _publish(db: Database, catalog: Catalog, rulesets: Mapping[str, str], clock: TestClock) -> None:
    with db.session() as s:
        sales.publish_catalog(s, units_catalog(catalog), "what-if", "lifecycle what-if", clock=clock)
        for name, text in sorted(rulesets.items()):
            # Checked when drafted or published; the smoke test's subprocess is not needed here.
            rs = rules.load_ruleset_text(text, f"{name}.yaml")
            rules.publish_ruleset(s, rs, "what-if", clock=clock, smoke=False)


def _join(db: Database, cohort: Cohort, m: int, service: payments.PaymentService, clock: TestClock) -> None:
    """The customers joining in month `m`, each with a card."""
    with db.session() as s:
        for c in cohort.customers:
            if c.joined == m:
                data = {"id": c.id, "name": c.id, "email": f"{c.id}@whatif.invalid", "segment": c.segment}
                if c.country:
                    data["country"] = c.country
                sales.create_customer(s, data, clock=clock)
                payments.add_payment_method(s, c.id, "card", "tok_whatif", provider=PROVIDER, service=service)


def _subscribe_and_churn(
    db: Database,
    system: Engine,
    cohort: Cohort,
    m: int,
    plans: Mapping[str, str],
    subs: dict[str, str],
    clock: TestClock,
) -> None:
    """Month `m`'s joiners subscribe; those gone next month cancel at this period's end."""
    with db.session() as s:
        for c in cohort.customers:
            if c.joined == m:
                sub = sales.create_subscription(
                    s,
                    c.id,
                    plans[c.plan],
                    clock=clock,
                    quantity=c.quantity,
                    trial_days=0,
                    promotions=system.promotions,
                )
                subs[c.id] = str(sub["id"])
            if c.left == m + 1 and c.id in subs:
                try:  # gone next month: ends at this period's end, as churn does
                    sales.cancel_subscription(s, subs[c.id], clock=clock, at="period_end", promotions=system.promotions)
                except sales.SalesError:
                    pass  # dunning cancelled it already


def _month_usage(catalog: Catalog, cohort: Cohort, m: int, growth: Decimal, now: datetime) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    for c in cohort.customers:
        if not c.active(m):
            continue
        for mid, v in _usage(catalog, c.usage, growth**m).items():
            events.append(
                {
                    "id": f"whatif_{c.id}_{m}_{mid}",
                    "type": f"whatif.{mid}",
                    "customer_id": c.id,
                    "time": (now + timedelta(hours=1)).isoformat(),
                    "properties": {"units": str(v)},
                }
            )
    return events


def run_side(
    build: Build,
    catalog: Catalog,
    rulesets: Mapping[str, str],
    cohort: Cohort,
    plans: Mapping[str, str],
    *,
    months: int,
    start: date,
    cards: CardModel,
    folder: Path,
    label: str,
    progress: Progress | None = None,
    share: tuple[float, float] = (0.0, 1.0),
    weights: Mapping[str, Decimal] | None = None,
) -> Figures:
    """One side of the what-if: a fresh database, the catalog and rulesets published, the
    cohort subscribed with cards, its usage sent month by month, the clock run through every
    billing run, payment attempt, retry and dunning sweep. Returns the figures."""
    begin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    end = begin + relativedelta(months=months)
    clock = _ReportingClock(begin)
    if progress is not None:
        span = (end - begin).total_seconds()
        clock.moved = lambda now: progress(
            share[0] + share[1] * min((now - begin).total_seconds() / span, 1.0), f"{label}: {now.date().isoformat()}"
        )
    db = Database(f"sqlite:///{folder}/{label}.db")
    event.listen(db.engine, "connect", _throwaway_pragmas)
    service = payments.PaymentService([DecliningProvider(cards, clock)], clock, default_provider=PROVIDER)
    system = build(_isolated_settings(db, begin), clock, db, service)
    try:
        _publish(db, catalog, rulesets, clock)
        system.sync_rules()
        growth = Decimal(1) + cohort.usage_growth
        subs: dict[str, str] = {}
        for m in range(months):
            now = begin + relativedelta(months=m)
            system.advance_to(now)
            _join(db, cohort, m, service, clock)
            _subscribe_and_churn(db, system, cohort, m, plans, subs, clock)
            system.drain()
            events = _month_usage(catalog, cohort, m, growth, now)
            for i in range(0, len(events), 5000):
                with db.session() as s:
                    sales.ingest_events(s, events[i : i + 5000], clock=clock)
            # One advance a month: the scheduler stops wherever work is due (daily sweeps,
            # retries); extra stops would cost a full round of jobs each. The renewal at `end`
            # is not in the window.
            system.advance_to(min(begin + relativedelta(months=m + 1), end - timedelta(seconds=1)))
        figures = _figures(db, cohort, begin, months, label, weights or {})
        if progress is not None:
            progress(share[0] + share[1], f"{label}: done")
        return figures
    finally:
        db.dispose()


class _Connection(Protocol):
    """The DB-API connection SQLAlchemy's `connect` event hands over (sqlite3's)."""

    def execute(self, sql: str) -> object: ...


def _throwaway_pragmas(dbapi_conn: _Connection, _record: object) -> None:
    # After the store's own (WAL kept: read sessions run beside the writer). The database is
    # deleted after the run, so a commit need not wait for the disk.
    dbapi_conn.execute("PRAGMA synchronous=OFF")


def _figures(
    db: Database, cohort: Cohort, begin: datetime, months: int, label: str, weights: Mapping[str, Decimal]
) -> Figures:
    """Read back what the engine did, month by month (by when it happened): invoices issued
    and what of them was paid, payment attempts, dunning transitions, notifications; each
    customer's share weighted by how many cohort customers it stands for (1 unless sampled)."""
    tally = Tally(begin, months, label, weights)
    states: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    with db.read_session() as s:
        for c in cohort.customers:
            if c.joined >= months:
                continue
            states[dunning.get_state(s, c.id)] += 1
            for inv in sales.list_invoices(s, c.id, per_page=500)["items"]:
                tally.invoice(c.id, inv)
        for n in messaging.list_notifications(s, limit=10_000_000):
            notes[f"{n['template']} ({n['channel']})"] += 1
            tally.count(n["created_at"], "notifications", n.get("customer_id"))
        kinds = ("payment.failed", "payment.succeeded", "dunning.state_changed")
        for ev in s.scalars(select(OutboxEvent).where(OutboxEvent.type.in_(kinds))):
            tally.count(ev.time, event_column(ev.type, ev.properties), ev.customer_id)
    return tally.figures(states, notes)


def lifecycle_on_engine(
    build: Build,
    baseline: Catalog,
    draft: Catalog,
    cohort: Cohort,
    *,
    rulesets: Mapping[str, str],
    draft_rulesets: Mapping[str, str] | None = None,
    months: int = 3,
    start: date,
    cards: CardModel | None = None,
    plan_map: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    budget: int | None = None,
) -> LifecycleResult:
    """Baseline (catalog + `rulesets`, name -> YAML text) against the draft (catalog + the
    rulesets with `draft_rulesets` replacing theirs), each on its own engine. A cohort larger
    than `budget` customer-months a side runs as a stratified sample scaled back up
    (engine.simulation.sampling; the result's `sampling` says so, with 95 % margins). The
    budget defaults to SAMPLE_BUDGET as it is at the call (a test may set it small)."""
    cards = cards or CardModel()
    check_run(cards, cohort, months, baseline, draft)
    pair = sides(baseline, draft, cohort, rulesets, draft_rulesets or {}, plan_map or {})
    start = month_start(start)
    budget = SAMPLE_BUDGET if budget is None else budget
    sample = draw_sample(baseline, draft, cohort, max(MIN_SAMPLE, budget // months), months, start, plan_map or {})
    with _RUN_LOCK, tempfile.TemporaryDirectory(prefix="whatif-", dir=_scratch()) as folder:
        # Each side's system owns its payment service, renderer and rules engine: nothing of
        # the process to restore, and the two sides run at once (one process each).
        runs = [
            {
                "build": build,
                "catalog": catalog,
                "rulesets": rs,
                "cohort": sample.cohort,
                "plans": plans,
                "months": months,
                "start": start,
                "cards": cards,
                "folder": Path(folder),
                "label": label,
                "share": (i / 2, 0.5),
                "weights": sample.side_weights(label) if sample.scaled else None,
            }
            for i, (label, catalog, rs, plans) in enumerate(pair)
        ]
        base, drafted = run_sides(run_side, runs, progress)
    return lifecycle_result(baseline.currency, sample, base, drafted)


def draw_sample(
    baseline: Catalog, draft: Catalog, cohort: Cohort, size: int, months: int, start: date, plan_map: Mapping[str, str]
) -> Sample:
    """The customers the engine runs: all of a cohort within `size`; else a sample stratified by
    plan, joining and priced revenue (the pure pricing what-if's, both sides), whose estimates
    are calibrated to the cohort's priced revenue (engine.simulation.sampling)."""
    if len(cohort.customers) <= size:
        return stratified_sample(cohort, size)
    try:
        priced = priced_revenue(baseline, draft, cohort, months=months, start=start, plan_map=plan_map)
    except (SimulationError, CohortError):  # what pricing alone refuses: strata by plan and joining only
        priced = {}
    return stratified_sample(cohort, size, priced=priced)


def _scratch() -> str | None:
    """Memory-backed when the machine has it: the throwaway database commits thousands of
    times, and nothing of it needs to survive the run."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None
