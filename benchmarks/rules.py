"""Rules runtime throughput against plain durable_rules, in the same run.

    .venv/bin/python benchmarks/rules.py            # full: 200k timed evaluations, then 1M over 100k customers
    .venv/bin/python benchmarks/rules.py --quick    # 20k timed, 100k for memory
    .venv/bin/python benchmarks/rules.py --publishes 500 --evaluations 0   # only the publish memory run

Ours: RulesRuntime.evaluate(event, context) over the four shipped rulesets (schema-loaded,
compiled, typed flat facts, trace with actions and inputs). Baseline: the same messages
posted straight to durable_rules through its Host API, with hand-written JSON rulesets over the
nested messages and Python action functions (assert_fact + retract_fact on one session: the
fastest Host usage that keeps memory flat; see engine/rules/durable_engine.py).
The last line is one JSON object with the figures; ratio = ours / baseline (higher is better).

Publishes (`--publishes N`, default 500): in a fresh child process each, N hot swaps of a shipped
ruleset (cycling through the four, what sync_runtime does after each publish) while a thread
keeps evaluating; RSS before and after, with the replaced versions retired (the runtime's
default) and kept registered (`reclaim=False`, what durable's Host does). Every evaluation
during the swaps must succeed and give the rules the same messages gave before.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from durable.engine import Host, MessageNotHandledException  # noqa: E402

from engine.catalog import load_catalog  # noqa: E402
from engine.clock import TestClock  # noqa: E402
from engine.rules import References, RulesRuntime, load_ruleset  # noqa: E402

TARGET = 0.5
TARGET_RATE = 20_000
NOW = datetime(2026, 11, 15, tzinfo=UTC)  # both sides evaluate at this instant, never today
SEGMENTS = ["smb", "edu", "gov", "enterprise", "smb", "smb"]
STATES = ["active"] * 7 + ["warning", "suspended", "suspended"]
FEATURES = ["sso", "projects", "api", "data_export", "beta_ai", "audit_log"]
PLANS = ["free", "pro", "enterprise", "pro"]


def message(i: int, customer: int) -> tuple[str, dict[str, Any]]:
    """A realistic evaluation for customer number `customer`: which event, which context."""
    tags = ["partner"] if customer % 11 == 0 else (["churned"] if customer % 13 == 0 else [])
    ctx: dict[str, Any] = {
        "customer": {"id": f"cus_{customer}", "segment": SEGMENTS[customer % len(SEGMENTS)], "tags": tags,
                     "country": "DE"},
        "account": {"dunning_state": STATES[customer % len(STATES)]},
        "plan": PLANS[customer % len(PLANS)],
    }
    kind = i % 20
    if kind < 8:
        ctx.update(feature=FEATURES[i % len(FEATURES)], quantity=Decimal(1), allowed=True)
        return "access.check", ctx
    if kind < 14:
        ctx["usage"] = {"api_calls": Decimal(i % 200_000)}
        ctx["subscription"] = {"plan": ctx["plan"], "quantity": Decimal(3)}
        return "price.calculate", ctx
    if kind < 17:
        ctx["invoice"] = {"id": f"in_{i}", "attempt": 1 + i % 5, "amount_due": "49.00"}
        return "invoice.payment_failed", ctx
    if kind < 19:
        ctx["event"] = {"type": "usage.threshold_reached", "properties": {"threshold": 80 if i % 2 else 100}}
        return "usage.threshold_reached", ctx
    # A free plan's 0.00 invoice is not mailed (rules/notifications.yaml invoice-issued): one in four is.
    ctx["invoice"] = {"id": f"in_{i}", "total": Decimal(0) if customer % 4 == 0 else Decimal("49.00")}
    return "invoice.finalized", ctx


def _baseline_rulesets() -> dict[str, dict[str, Any]]:
    now_from = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp())
    now_until = int(datetime(2027, 1, 1, tzinfo=UTC).timestamp())

    def r(*conds: dict[str, Any], run: str) -> dict[str, Any]:
        return {"all": [{"m": {"$and": list(conds)}}], "run": run}

    return {
        "b_promotions": {
            "edu": r({"type": "price.calculate"}, {"customer.segment": "edu"}, run="discount"),
            "launch": r({"type": "price.calculate"}, {"plan": "pro"}, {"$gte": {"now": now_from}},
                        {"$lt": {"now": now_until}}, run="discount"),
            "winback": r({"type": "price.calculate"}, {"$iany": {"customer.tags": {"$i": "churned"}}},
                         {"$or": [{"plan": "pro"}, {"plan": "enterprise"}]}, run="apply_coupon"),
        },
        "b_access": {
            "suspended": r({"type": "access.check"}, {"account.dunning_state": "suspended"},
                           {"$neq": {"feature": "data_export"}}, run="deny"),
            "partner": r({"type": "access.check"}, {"$iany": {"customer.tags": {"$i": "partner"}}},
                         {"feature": "beta_ai"}, run="allow"),
            "export": r({"type": "access.check"}, {"account.dunning_state": "suspended"},
                        {"feature": "data_export"}, run="allow"),
        },
        "b_dunning": {
            "first": r({"type": "invoice.payment_failed"}, {"invoice.attempt": 1}, run="retry_payment"),
            "later": r({"type": "invoice.payment_failed"},
                       {"$or": [{"invoice.attempt": 2}, {"invoice.attempt": 3}, {"invoice.attempt": 4}]},
                       run="retry_payment"),
            "recovered": r({"$or": [{"type": "invoice.paid"}, {"type": "payment.succeeded"}]},
                           {"$or": [{"account.dunning_state": "warning"}, {"account.dunning_state": "suspended"}]},
                           run="set_dunning_state"),
        },
        "b_notifications": {
            "invoice": r({"type": "invoice.finalized"}, {"$gt": {"invoice.total": 0}}, run="notify"),
            "failed": r({"type": "invoice.payment_failed"}, run="notify"),
            "succeeded": r({"type": "payment.succeeded"}, run="notify"),
            "trial": r({"type": "subscription.trial_will_end"}, run="notify"),
            "q80": r({"type": "usage.threshold_reached"}, {"event.properties.threshold": 80}, run="notify"),
            "q100": r({"type": "usage.threshold_reached"}, {"event.properties.threshold": 100}, run="notify"),
            "offer": r({"type": "access.denied"}, {"$ex": {"event.properties.offer.plan": 1}}, run="notify"),
        },
    }


ROUTES = {
    "price.calculate": ["b_promotions"], "access.check": ["b_access"],
    "invoice.payment_failed": ["b_dunning", "b_notifications"], "usage.threshold_reached": ["b_notifications"],
    "invoice.finalized": ["b_notifications"],
}


class BaselineHost(Host):  # type: ignore[misc]
    def __init__(self) -> None:
        self.fired: list[str] = []
        super().__init__()

    def get_action(self, action_name: str) -> Any:
        def action(c: Any) -> None:
            self.fired.append(action_name)

        return action


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def run_baseline(messages: list[tuple[str, dict[str, Any]]], at: datetime = NOW) -> tuple[float, int, float]:
    """The baseline's rules read the time from the message (`now`): the benchmark's fixed
    instant, as ours read their test clock, so the run does not depend on today's date."""
    host = BaselineHost()
    host.set_rulesets(_baseline_rulesets())
    now = int(at.timestamp())
    prepared = [(ROUTES.get(e, []), {**_plain(c), "type": e, "now": now}) for e, c in messages]
    fired = 0
    n = 0
    cpu = time.process_time()
    start = time.perf_counter()
    for routes, msg in prepared:
        for rs in routes:
            n += 1
            fact = dict(msg, id=n, sid="1")  # a unique id per fact, as durable requires
            try:
                host.assert_fact(rs, fact)
            except MessageNotHandledException:
                pass
            host.retract_fact(rs, fact)
        fired += len(host.fired)
        host.fired.clear()
    elapsed = time.perf_counter() - start
    return len(messages) / elapsed, fired, len(messages) / (time.process_time() - cpu)


def build_runtime(at: datetime = NOW) -> RulesRuntime:
    catalogs = [load_catalog(p) for p in sorted((ROOT / "catalogs").glob("*.yaml"))]
    refs = References.from_catalogs(catalogs, ROOT / "templates")
    rt = RulesRuntime(TestClock(at))
    rt.install_many((load_ruleset(ROOT / "rules" / f"{n}.yaml", refs), 1)
                    for n in ("promotions", "access", "dunning", "notifications"))
    return rt


def run_ours(rt: RulesRuntime, messages: list[tuple[str, dict[str, Any]]]) -> tuple[float, int, float]:
    fired = 0
    cpu = time.process_time()
    start = time.perf_counter()
    for event, ctx in messages:
        fired += len(rt.evaluate(event, ctx).matches)
    elapsed = time.perf_counter() - start
    return len(messages) / elapsed, fired, len(messages) / (time.process_time() - cpu)


def run_ours_batched(rt: RulesRuntime, messages: list[tuple[str, dict[str, Any]]], size: int = 200) -> float:
    start = time.perf_counter()
    for k in range(0, len(messages), size):
        rt.evaluate_many(messages[k:k + size])
    return len(messages) / (time.perf_counter() - start)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def publish_child(publishes: int, reclaim: bool) -> dict[str, Any]:
    """N hot swaps while a thread evaluates; run in a child so the two modes do not mix."""
    base = build_runtime()
    rulesets = [base.ruleset(n) for n in ("promotions", "access", "dunning", "notifications")]
    base.close()
    rt = RulesRuntime(TestClock(NOW), reclaim=reclaim)
    rt.install_many((r, 1) for r in rulesets)
    messages = [message(i, (i * 7919) % 100_000) for i in range(500)]
    expected = [rt.evaluate(e, c).rule_ids for e, c in messages]
    for e, c in messages * 4:  # warm up: allocations that are not per version
        rt.evaluate(e, c)
    gc.collect()
    before = rss_mb()
    stop = threading.Event()
    counts = {"evaluations": 0, "errors": 0, "mismatches": 0}

    def hammer() -> None:
        while not stop.is_set():
            for (e, c), want in zip(messages, expected, strict=True):
                try:
                    got = rt.evaluate(e, c).rule_ids
                except Exception:  # counted: the claim is that there are none
                    counts["errors"] += 1
                    continue
                counts["evaluations"] += 1
                counts["mismatches"] += got != want

    thread = threading.Thread(target=hammer)
    thread.start()
    start = time.perf_counter()
    for k in range(publishes):
        rt.install(rulesets[k % len(rulesets)], 2 + k)
    elapsed = time.perf_counter() - start
    time.sleep(0.2)  # evaluations on the last versions too
    stop.set()
    thread.join()
    gc.collect()
    after = rss_mb()
    return {"publishes": publishes, "reclaim": reclaim, "seconds": round(elapsed, 2),
            "rss_mb_before": round(before, 1), "rss_mb_after": round(after, 1),
            "rss_mb_growth": round(after - before, 1), "durable_rulesets_live": rt.registered,
            **counts}


def run_publishes(publishes: int, reclaim: bool) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--publish-child", str(publishes),
                          "--reclaim" if reclaim else "--no-reclaim"],
                         capture_output=True, text=True, check=True, timeout=1200)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="20k timed evaluations, 100k for memory")
    ap.add_argument("--evaluations", type=int, help="timed evaluations (default 200k, 20k with --quick)")
    ap.add_argument("--memory-evaluations", type=int, help="evaluations for the memory run (default 1M)")
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--publishes", type=int, default=500,
                    help="hot swaps for the publish memory run, with and without retiring (0: skip)")
    ap.add_argument("--publish-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--reclaim", action=argparse.BooleanOptionalAction, default=True, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.publish_child is not None:
        print(json.dumps(publish_child(args.publish_child, args.reclaim)))
        return
    n = args.evaluations if args.evaluations is not None else (20_000 if args.quick else 200_000)
    if n == 0:  # the publish memory run alone
        runs = {"retired": run_publishes(args.publishes, True), "kept": run_publishes(args.publishes, False)}
        ok = all(r["errors"] == 0 and r["mismatches"] == 0 for r in runs.values())
        growth = runs["retired"]["rss_mb_growth"]
        print(json.dumps({"benchmark": "rules-publishes", "publishes": runs,
                          "ratio": round(runs["kept"]["rss_mb_growth"] / max(growth, 1.0), 2),
                          "target": "bounded: retired growth independent of the number of publishes",
                          "meets_target": ok and growth < 20,
                          "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}))
        return
    mem_n = args.memory_evaluations or (100_000 if args.quick else 1_000_000)
    messages = [message(i, (i * 7919) % args.customers) for i in range(n)]

    load_start = os.getloadavg()[0]  # the machine is shared: timings depend on it
    rt = build_runtime()
    run_ours(rt, messages[:2000])  # warm up
    base_rate, base_fired, base_cpu_rate = run_baseline(messages)
    our_rate, our_fired, our_cpu_rate = run_ours(rt, messages)
    batched_rate = run_ours_batched(rt, messages)
    if our_fired != base_fired:
        raise SystemExit(f"ours fired {our_fired} rules, the baseline {base_fired}: not the same work "
                         "(a shipped ruleset changed: mirror it in _baseline_rulesets)")

    gc.collect()
    rss_before = rss_mb()
    checkpoints = {}
    start = time.perf_counter()
    for i in range(mem_n):
        event, ctx = message(i, (i * 7919) % args.customers)
        rt.evaluate(event, ctx)
        if (i + 1) % (mem_n // 4) == 0:
            gc.collect()
            checkpoints[str(i + 1)] = round(rss_mb(), 1)
    mem_rate = mem_n / (time.perf_counter() - start)
    rss_after = rss_mb()
    publishes = ({"retired": run_publishes(args.publishes, True), "kept": run_publishes(args.publishes, False)}
                 if args.publishes else None)

    ratio = our_rate / base_rate
    result = {
        "benchmark": "rules",
        "evaluations": n,
        "rulesets": sorted(rt.versions()),
        "baseline_evals_per_s": round(base_rate, 1),
        "evals_per_s": round(our_rate, 1),
        "batched_evals_per_s": round(batched_rate, 1),
        "baseline_evals_per_cpu_s": round(base_cpu_rate, 1),
        "evals_per_cpu_s": round(our_cpu_rate, 1),
        "rules_fired_per_run": our_fired,
        "ratio": round(ratio, 3),
        "target": TARGET,
        "target_evals_per_s": TARGET_RATE,
        "meets_target": ratio >= TARGET and our_rate >= TARGET_RATE
        and (publishes is None or all(r["errors"] == 0 == r["mismatches"] for r in publishes.values())),
        "memory_run": {
            "evaluations": mem_n, "customers": args.customers, "evals_per_s": round(mem_rate, 1),
            "rss_mb_before": round(rss_before, 1), "rss_mb_after": round(rss_after, 1),
            "rss_mb_growth": round(rss_after - rss_before, 1), "rss_mb_checkpoints": checkpoints,
        },
        "publishes": publishes,
        "durable_rulesets_registered": rt.registered,
        "cpus": os.cpu_count(),
        "load_avg_1m_start": round(load_start, 2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
