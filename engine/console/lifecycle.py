"""Lifecycle what-if on the real engine: the cohort is run through a throwaway SQLite database
by the same system live billing runs (sales' billing run, payments' collection, the rules
runtime, automation and the scheduler on a test clock, messaging), once on the baseline and
once on the draft, with an in-process card provider that declines at the given rates.

The engine is handed in (`build`: settings, clock, database, payment service -> a system),
because the console sits below engine.system in the layers; the console page and the tests
pass `engine.system.lifecycle_system` (the full system on that database and clock).

Usage is sent as one event per metric and customer-month: every metric of the simulated
catalogs is rewritten to sum a `units` field (prices untouched), so a month of 20,000 API
calls is one row, not 20,000.
"""

from __future__ import annotations

import copy
import hashlib
import tempfile
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Protocol

from dateutil.relativedelta import relativedelta
from sqlalchemy import event, select

from engine import dunning, messaging, payments, rules, sales
from engine.catalog import Catalog
from engine.clock import TestClock
from engine.config import Settings, get_settings, shipped_dir
from engine.console.lifecycle_sides import run_sides
from engine.payments import ChargeOutcome, ChargeRequest, PaymentState, ProviderRejected, WebhookRejected
from engine.pricing.quoting import PromotionSource
from engine.simulation import Cohort, CohortError, LifecycleResult, SimulationError, month_start
from engine.simulation.sampling import Sample, margin95, stratified_sample
from engine.store import Database, OutboxEvent

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

PROVIDER = "whatif"
# Customer-months a side the engine runs in a few minutes on the shared 2-core machine; a
# larger cohort runs as a stratified sample of about this many (never under MIN_SAMPLE customers).
SAMPLE_BUDGET = 2_400
MIN_SAMPLE = 30
ZERO = Decimal(0)
_RUN_LOCK = threading.Lock()  # one lifecycle run at a time: each is a minute of both cores


@dataclass(frozen=True)
class CardModel:
    """How the cohort's cards behave: a first attempt on an invoice declines with
    `failure_rate`; a retry succeeds with `recovery_rate`. Draws are keyed by (customer,
    the customer's n-th invoice, attempt), so baseline and draft meet the same declines."""

    failure_rate: float = 0.05
    recovery_rate: float = 0.5
    seed: int = 11

    def problems(self) -> list[str]:
        return [
            f"{name}: a share between 0 and 1"
            for name, v in (("failure_rate", self.failure_rate), ("recovery_rate", self.recovery_rate))
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1
        ]


def _draw(seed: int, *parts: object) -> float:
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / float(1 << 64)


class DecliningProvider:
    """An in-process provider adapter (engine.payments.ProviderAdapter): charges settle at
    once, or decline with `insufficient_funds` (retryable, so dunning retries)."""

    name = PROVIDER

    def __init__(self, model: CardModel, clock: TestClock) -> None:
        self.model = model
        self.clock = clock
        self._outcomes: dict[str, ChargeOutcome] = {}
        self._invoices: dict[str, list[str]] = defaultdict(list)  # customer -> invoice ids in order
        self.attempts: Counter[str] = Counter()

    def charge(self, request: ChargeRequest) -> ChargeOutcome:
        if request.idempotency_key in self._outcomes:
            return self._outcomes[request.idempotency_key]
        invoice, _, attempt = request.idempotency_key.rpartition(":")
        seen = self._invoices[request.customer_id]
        if invoice not in seen:
            seen.append(invoice)
        u = _draw(self.model.seed, request.customer_id, seen.index(invoice), attempt)
        first = attempt in ("", "1")
        ok = u >= self.model.failure_rate if first else u < self.model.recovery_rate
        self.attempts["succeeded" if ok else "failed"] += 1
        outcome = ChargeOutcome(
            PaymentState.SUCCEEDED if ok else PaymentState.FAILED,
            f"whatif_{len(self._outcomes) + 1}",
            request.amount,
            request.currency,
            "succeeded" if ok else "declined",
            decline_code=None if ok else "insufficient_funds",
            retryable=None if ok else True,
            captured_at=self.clock.now() if ok else None,
            idempotency_key=request.idempotency_key,
        )
        self._outcomes[request.idempotency_key] = outcome
        return outcome

    def lookup(self, idempotency_key: str) -> ChargeOutcome | None:
        return self._outcomes.get(idempotency_key)

    def refund(self, request: Any) -> Any:
        raise ProviderRejected("unsupported", "the what-if provider does not refund")

    def lookup_refund(self, idempotency_key: str) -> Any:
        return None

    def parse_webhook(self, headers: dict[str, str], body: bytes) -> Any:
        raise WebhookRejected("the what-if provider sends no webhooks")


def units_catalog(catalog: Catalog) -> dict[str, Any]:
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


def _month_usage(catalog: Catalog, cohort: Cohort, m: int, growth: Decimal, now: datetime) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
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
) -> dict[str, Any]:
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


def _throwaway_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # After the store's own (WAL kept: read sessions run beside the writer). The database is
    # deleted after the run, so a commit need not wait for the disk.
    dbapi_conn.execute("PRAGMA synchronous=OFF")


def _month(when: datetime, begin: datetime) -> int:
    return (when.year - begin.year) * 12 + when.month - begin.month


MONEY = ("invoiced", "collected", "outstanding", "written_off")
COUNTS = ("invoices", "payments", "failed_payments", "warned", "suspended", "cancelled", "notifications")
STATE_COLUMNS = {"warning": "warned", "suspended": "suspended", "cancelled": "cancelled"}
PAYMENT_COLUMNS = {"payment.failed": "failed_payments", "payment.succeeded": "payments"}
UNPAID_COLUMNS = {"finalized": "outstanding", "uncollectible": "written_off"}  # what is left unpaid
ONE = Decimal(1)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class _Tally:
    """One side's figures month by month (by when things happened), each customer's share
    weighted by how many cohort customers it stands for (1 unless sampled)."""

    def __init__(self, begin: datetime, months: int, label: str, weights: Mapping[str, Decimal]) -> None:
        self.begin = begin
        self.weights = weights
        self.rows: list[dict[str, Any]] = [
            {
                "month": (begin + relativedelta(months=m)).date().isoformat()[:7],
                "side": label,
                **dict.fromkeys(COUNTS, ZERO),
                **dict.fromkeys(MONEY, ZERO),
            }
            for m in range(months)
        ]
        self.collected: dict[str, Decimal] = defaultdict(lambda: ZERO)

    def weight(self, customer_id: object) -> Decimal:
        return self.weights.get(str(customer_id), ONE)

    def row(self, when: datetime) -> dict[str, Any] | None:
        m = _month(_aware(when), self.begin)
        return self.rows[m] if 0 <= m < len(self.rows) else None

    def invoice(self, customer_id: str, inv: Mapping[str, Any]) -> None:
        """An invoice issued within the run (a void one counts for nothing)."""
        r = self.row(datetime.fromisoformat(inv["issued_at"])) if inv["issued_at"] else None
        if r is None or inv["status"] == "void":
            return
        w = self.weight(customer_id)
        paid = Decimal(inv["amount_paid"])
        self.collected[customer_id] += paid
        r["invoices"] += w
        r["invoiced"] += Decimal(inv["total"]) * w
        r["collected"] += paid * w
        if (column := UNPAID_COLUMNS.get(inv["status"])) is not None:
            r[column] += (Decimal(inv["amount_due"]) - paid) * w

    def count(self, when: datetime, column: str | None, customer_id: object) -> None:
        """One more of `column` (None: nothing to count) in the month of `when`."""
        r = self.row(when)
        if r is not None and column is not None:
            r[column] += self.weight(customer_id)


def _event_column(ev: OutboxEvent) -> str | None:
    """The column a payment or dunning event counts in (None: a transition not counted)."""
    return PAYMENT_COLUMNS.get(ev.type) or STATE_COLUMNS.get(str((ev.properties or {}).get("to")))


def _figures(
    db: Database, cohort: Cohort, begin: datetime, months: int, label: str, weights: Mapping[str, Decimal]
) -> dict[str, Any]:
    """Read back what the engine did, month by month (by when it happened): invoices issued
    and what of them was paid, payment attempts, dunning transitions, notifications; each
    customer's share weighted by how many cohort customers it stands for (1 unless sampled)."""
    tally = _Tally(begin, months, label, weights)
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
            tally.count(ev.time, _event_column(ev), ev.customer_id)
    for r in tally.rows:
        _round(r)
    scale = sum(weights.values(), ZERO) / len(weights) if weights else ONE
    return {
        "rows": tally.rows,
        "totals": _totals(tally.rows),
        # Templates and final states of the customers run, scaled by the mean weight.
        "notifications": {k: _whole(v * scale) for k, v in sorted(notes.items())},
        "dunning": {k: _whole(v * scale) for k, v in sorted(states.items())},
        "collected": dict(tally.collected),
    }


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The side's months added up, with the share of what was invoiced that was collected."""
    totals: dict[str, Any] = {k: sum((r[k] for r in rows), 0) for k in COUNTS}
    totals |= {k: sum((r[k] for r in rows), ZERO) for k in MONEY}
    totals["collection_rate"] = (
        (totals["collected"] * 100 / totals["invoiced"]).quantize(Decimal("0.1")) if totals["invoiced"] else None
    )
    return totals


def _whole(x: Decimal) -> int:
    return int(x.quantize(Decimal(1), ROUND_HALF_UP))


def _round(r: dict[str, Any]) -> None:
    """A scaled-up month: money to the cent, counts to whole numbers (half up, once, at the end)."""
    for k in MONEY:
        r[k] = r[k].quantize(Decimal("0.01"), ROUND_HALF_UP)
    for k in COUNTS:
        r[k] = _whole(r[k])


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
    budget: int = SAMPLE_BUDGET,
) -> LifecycleResult:
    """Baseline (catalog + `rulesets`, name -> YAML text) against the draft (catalog + the
    rulesets with `draft_rulesets` replacing theirs), each on its own engine. A cohort larger
    than `budget` customer-months a side runs as a stratified sample scaled back up
    (engine.simulation.sampling; the result's `sampling` says so, with 95 % margins)."""
    cards = cards or CardModel()
    _check(cards, cohort, months, baseline, draft)
    sides = _sides(baseline, draft, cohort, rulesets, draft_rulesets or {}, plan_map or {})
    start = month_start(start)
    sample = stratified_sample(cohort, max(MIN_SAMPLE, budget // months))
    with _RUN_LOCK, tempfile.TemporaryDirectory(prefix="whatif-", dir=_scratch()) as folder:
        # Each side's system owns its payment service, renderer and rules engine: nothing of
        # the process to restore, and the two sides run at once (one process each).
        runs = [
            {"build": build, "catalog": catalog, "rulesets": rs, "cohort": sample.cohort, "plans": plans,
             "months": months, "start": start, "cards": cards, "folder": Path(folder), "label": label,
             "share": (i / 2, 0.5), "weights": sample.weights if sample.scaled else None}
            for i, (label, catalog, rs, plans) in enumerate(sides)
        ]
        base, drafted = run_sides(run_side, runs, progress)
    return _result(baseline.currency, sample, base, drafted)


def _check(cards: CardModel, cohort: Cohort, months: int, baseline: Catalog, draft: Catalog) -> None:
    """What a lifecycle run needs before it starts an engine."""
    if cards.problems():
        raise SimulationError("; ".join(cards.problems()))
    if not cohort.customers:
        raise CohortError(["the cohort has no customers: nothing to simulate"])
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 24:
        raise SimulationError("months: between 1 and 24 for a lifecycle run")
    if baseline.currency != draft.currency:
        raise SimulationError(f"currency: the baseline is in {baseline.currency}, the draft in {draft.currency}")


Side = tuple[str, Catalog, dict[str, str], dict[str, str]]  # label, catalog, rulesets, plan -> plan run


def _sides(
    baseline: Catalog,
    draft: Catalog,
    cohort: Cohort,
    rulesets: Mapping[str, str],
    draft_rulesets: Mapping[str, str],
    plan_map: Mapping[str, str],
) -> tuple[Side, Side]:
    """The baseline and the draft, each with its rulesets and the plan its customers are on
    (the draft's through `plan_map`; every plan must exist on its side)."""
    cohort_plans = {c.plan for c in cohort.customers}
    missing = sorted(cohort_plans - set(baseline.plans))
    if missing:
        raise SimulationError(f"plan {missing[0]!r} is not in the baseline catalog")
    draft_plans = {p: plan_map.get(p, p) for p in cohort_plans}
    lost = sorted(p for p, t in draft_plans.items() if t not in draft.plans)
    if lost:
        raise SimulationError(
            f"plan {lost[0]!r} is not in the draft: map it to one of {', '.join(sorted(draft.plans))}"
        )
    return (
        ("baseline", baseline, dict(rulesets), {p: p for p in draft_plans}),
        ("draft", draft, {**rulesets, **draft_rulesets}, draft_plans),
    )


def _result(currency: str, sample: Sample, baseline: dict[str, Any], draft: dict[str, Any]) -> LifecycleResult:
    sides = {"baseline": baseline, "draft": draft}
    return LifecycleResult(
        currency,
        [r["month"] for r in baseline["rows"]],
        [*baseline["rows"], *draft["rows"]],
        {label: side["totals"] for label, side in sides.items()},
        {label: side["notifications"] for label, side in sides.items()},
        {label: side["dunning"] for label, side in sides.items()},
        _sampling(sample, baseline["collected"], draft["collected"]),
    )


def _sampling(sample: Sample, baseline: Mapping[str, Decimal], draft: Mapping[str, Decimal]) -> dict[str, Any]:
    """How the figures were obtained, with the 95 % margins of cash collected (each side, and
    the paired difference: the same customers ran on both sides)."""
    delta = {cid: draft.get(cid, ZERO) - baseline.get(cid, ZERO) for cid in set(baseline) | set(draft)}
    return {
        "sentence": sample.sentence(),
        "customers_run": len(sample.cohort.customers),
        "customers": sample.population,
        "scaled": sample.scaled,
        "collected_margin_95": {
            "baseline": margin95(sample, baseline),
            "draft": margin95(sample, draft),
            "delta": margin95(sample, delta),
        },
    }


def _scratch() -> str | None:
    """Memory-backed when the machine has it: the throwaway database commits thousands of
    times, and nothing of it needs to survive the run."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None
