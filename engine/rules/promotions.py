"""Pricing rules: what `price.calculate` asks for, as discounts the pricing engine applies."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.catalog import Catalog, Plan
from engine.documents import DocumentError, Problem
from engine.pricing import Discount
from engine.pricing.discounts import coupon_discount
from engine.rules.conditions import lookup, paths
from engine.rules.lint import expand
from engine.rules.loader import References, load_ruleset, load_ruleset_text
from engine.rules.model import Action, Decision
from engine.rules.runtime import RulesRuntime
from engine.rules.vocabulary import PRICING_ACTIONS

PRICE_EVENT = "price.calculate"
MEMO_SIZE = 200_000


def price_context(*, plan: Plan | str, customer: Mapping[str, Any] | None = None,
                  usage: Mapping[str, Any] | None = None, quantity: Decimal | int = 1,
                  period: Any = None, subscription: Mapping[str, Any] | None = None,
                  coupon: str | None = None) -> dict[str, Any]:
    """The context of `price.calculate` (FORMATS §2): customer, subscription, plan, usage."""
    plan_id = plan if isinstance(plan, str) else plan.id
    sub = {"plan": plan_id, "quantity": Decimal(quantity)}
    sub.update(subscription or {})
    ctx: dict[str, Any] = {
        "customer": dict(customer or {}),
        "subscription": sub,
        "plan": plan_id,
        "quantity": Decimal(quantity),
        "usage": {k: getattr(v, "quantity", v) for k, v in (usage or {}).items()},
    }
    if coupon:
        ctx["coupon"] = coupon
    if period is not None:
        ctx["period"] = {"start": getattr(period, "start", None), "end": getattr(period, "end", None)}
    return ctx


def promotions_for(runtime: RulesRuntime, context: Mapping[str, Any], **kwargs: Any) -> list[Action]:
    """The `discount` and `apply_coupon` actions the live pricing rules ask for."""
    return runtime.evaluate(PRICE_EVENT, context, **kwargs).actions_named(*PRICING_ACTIONS)


def discounts_from(actions: list[Action], catalog: Catalog | None = None, plan_id: str | None = None) -> list[Discount]:
    """Turn discount/apply_coupon actions into pricing Discounts. A coupon the catalog does
    not have, or that does not apply to the plan, is skipped."""
    out: list[Discount] = []
    for a in actions:
        source = f"rule:{a.ruleset}/{a.rule}"
        if a.name == "discount":
            p = a.params
            out.append(Discount(
                percent=p.get("percent"), amount=p.get("amount"), prices=tuple(p.get("prices", ())),
                periods=p.get("periods"), reason=str(p.get("reason", "") or a.rule), source=source,
            ))
        elif a.name == "apply_coupon" and catalog is not None:
            coupon = catalog.coupons.get(a.params["code"])
            if coupon is None or not coupon.discounts or (plan_id and coupon.applies_to
                                                          and plan_id not in coupon.applies_to):
                continue
            d = coupon_discount(coupon)
            out.append(Discount(percent=d.percent, amount=d.amount, prices=d.prices, periods=_coupon_periods(coupon),
                                reason=d.reason, source=f"{d.source} ({source})"))
    return out


def _coupon_periods(coupon: Any) -> int | None:
    """How many periods a coupon given by a rule lasts: once 1, repeating its periods, forever all."""
    if coupon.duration == "once":
        return 1
    if coupon.duration == "repeating":
        return int(coupon.periods or 0)
    return None


class RulePromotions:
    """The live pricing rules of a runtime as the discounts of a period: what quotes, invoices
    and simulations ask (`engine.pricing.quoting.PromotionSource`). Rules are evaluated as
    of the period's start, so a promotion valid then applies to that period."""

    def __init__(self, runtime: RulesRuntime, *, memo: bool = False) -> None:
        self.runtime = runtime
        # memo: remember answers by what the rules read (a simulation asks for many customers
        # that look alike to the rules); only for a runtime whose rulesets do not change.
        self._memo: dict[tuple[Any, ...], tuple[list[Discount], list[dict[str, Any]]]] | None = (
            {} if memo else None)
        self._read: list[str] | None = None

    def __call__(self, *, catalog: Catalog, plan: Plan, customer: Mapping[str, Any], usage: Mapping[str, Any],
                 period: Any, quantity: Decimal, subscription: Mapping[str, Any] | None = None,
                 ) -> tuple[list[Discount], list[dict[str, Any]]]:
        start = getattr(period, "start", None)
        at = datetime(start.year, start.month, start.day, tzinfo=UTC) if isinstance(start, date) else None
        context = price_context(plan=plan, customer=customer, usage=usage, quantity=quantity, period=period,
                                subscription=subscription)
        memo = self._memo
        key: tuple[Any, ...] = ()
        if memo is not None:
            key = (id(catalog), plan.id, at, *(_hashable(lookup(context, p)) for p in self._paths()))
            found = memo.get(key)
            if found is not None:
                return list(found[0]), list(found[1])
        decision = self.runtime.evaluate(PRICE_EVENT, context, at=at)
        actions = decision.actions_named(*PRICING_ACTIONS)
        answer = discounts_from(actions, catalog, plan.id), trace_of(decision)
        if memo is not None:  # `key` was made above
            if len(memo) > MEMO_SIZE:
                memo.clear()
            memo[key] = answer
        return list(answer[0]), list(answer[1])

    def _paths(self) -> list[str]:
        """Every context path a live pricing rule reads: the whole of what its answer depends
        on, with the time (rules are valid from, until)."""
        if self._read is None:
            found: dict[str, None] = {}
            for name in sorted(self.runtime.versions()):
                for rule in self.runtime.ruleset(name).rules:
                    if PRICE_EVENT in rule.on and rule.when is not None:
                        found.update(dict.fromkeys(paths(rule.when)))
            self._read = list(found)
        return self._read


def _hashable(value: Any) -> Any:
    """A value read from a context as a memo key (lists and mappings made immutable)."""
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    return value


def trace_of(decision: Decision, names: tuple[str, ...] = PRICING_ACTIONS) -> list[dict[str, Any]]:
    """The quote's `rules` field: [{"ruleset", "rule", "actions": [...]}]."""
    out = []
    for m in decision.matches:
        acts = [a.name for a in m.actions if a.name in names]
        if acts:
            out.append({"ruleset": m.ruleset, "rule": m.rule, "actions": acts, "version": m.version})
    return out


class _PeriodStart:
    """The clock of the runtimes made here (quotes, simulations, console previews): they price
    periods, and a period is priced as of its start, passed as `at`. There is no "now" to
    fall back on: the wall clock would make a promotion's window depend on the day a quote or
    a benchmark runs (launch-2026 applies in Nov-Dec 2026 whatever today is)."""

    def now(self) -> datetime:
        raise RuntimeError("pricing rules outside a system are evaluated at a period's start: pass at=")


_period_start = _PeriodStart()
_runtimes: dict[tuple[str, str, tuple[tuple[str, float], ...]], RulesRuntime] = {}
_cache_lock = threading.Lock()


def _runtime_for(rules_path: str | Path, engine: str) -> RulesRuntime:
    """One runtime per rules directory content (durable rulesets are never freed: do not
    register the same files again for every quote)."""
    files = _ruleset_files(rules_path)
    key = (str(rules_path), engine, tuple((str(p), p.stat().st_mtime) for p in files))
    with _cache_lock:
        runtime = _runtimes.get(key)
        if runtime is None:
            rulesets = [load_ruleset(p, References()) for p in files]
            runtime = RulesRuntime(_period_start, engine=engine)
            runtime.install_many((rs, 0) for rs in rulesets if PRICE_EVENT in rs.events)
            _runtimes[key] = runtime
        return runtime


def quote_promotions(*, rules_path: str | Path, catalog: Catalog, plan: Plan, customer: Mapping[str, Any],
                     usage: Mapping[str, Any], period: Any, quantity: Decimal,
                     engine: str = "durable") -> tuple[list[Discount], list[dict[str, Any]]]:
    """For `billing quote --rules DIR`: the discounts the pricing rules in DIR give this quote,
    and the trace for the quote's `rules` field. Time is the period's start (a promotion
    valid then applies)."""
    start = getattr(period, "start", None)
    if not isinstance(start, date):
        raise ValueError("a quote's promotions are those valid at its period's start: the period has none")
    runtime = _runtime_for(rules_path, engine)
    decision = runtime.evaluate(PRICE_EVENT, price_context(plan=plan, customer=customer, usage=usage,
                                                           quantity=quantity, period=period),
                                at=datetime(start.year, start.month, start.day, tzinfo=UTC))
    actions = decision.actions_named(*PRICING_ACTIONS)
    return discounts_from(actions, catalog, plan.id), trace_of(decision)


_text_runtimes: dict[tuple[tuple[str, str], ...], RulesRuntime | None] = {}


def pricing_runtime(texts: Mapping[str, str]) -> RulesRuntime | None:
    """A runtime of the pricing (`price.calculate`) rules among these rulesets (name -> YAML
    text), or None when none prices: what a simulation evaluates. One per distinct set of
    texts (durable rulesets are never freed: do not register the same ones for every run).
    Raises DocumentError for a ruleset that does not load."""
    key = tuple(sorted(texts.items()))
    with _cache_lock:
        if key in _text_runtimes:
            return _text_runtimes[key]
    rulesets = [load_ruleset_text(text, name) for name, text in key]
    chosen = [rs for rs in rulesets if PRICE_EVENT in rs.events]
    runtime = None
    if chosen:
        runtime = RulesRuntime(_period_start)
        runtime.install_many((rs, 1) for rs in chosen)
    with _cache_lock:
        return _text_runtimes.setdefault(key, runtime)


def ruleset_texts(path: str | Path) -> dict[str, str]:
    """The rulesets of a file or a directory (name -> text), for `billing simulate --rules`."""
    return {str(p): p.read_text(encoding="utf-8") for p in _ruleset_files(path)}


def _ruleset_files(path: str | Path) -> list[Path]:
    """The YAML and JSON files of a file or a directory; DocumentError when there are none."""
    files = [p for p in expand([path]) if p.suffix in (".yaml", ".yml", ".json")]
    if not files:
        raise DocumentError([Problem(str(path), 1, "(document)", "no rulesets here")])
    return files
