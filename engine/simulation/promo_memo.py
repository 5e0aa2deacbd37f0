"""A what-if asks the pricing rules about every customer-month, and most customers look alike
to them (the shipped rules read the segment, the tags and the plan). `remembered` puts a memo
in front of a `RulePromotions`, keyed by the raw values of exactly the context paths the
rules read, taken straight from the question: no context is built and nothing normalised
for a question already answered. A rule reading a path this module cannot take from the
question (nested customer attributes, say) leaves the source as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from engine.pricing import Discount
from engine.pricing.quoting import PromotionSource
from engine.rules import RulePromotions
from engine.rules.conditions import paths
from engine.rules.promotions import PRICE_EVENT

Answer = tuple[list[Discount], list[dict[str, Any]]]
Reader = Callable[[Mapping[str, Any]], Any]
MEMO_SIZE = 100_000


def _plan_id(q: Mapping[str, Any]) -> Any:
    return q["plan"].id


def _quantity(q: Mapping[str, Any]) -> Any:
    return q["quantity"]


def _customer_field(name: str, q: Mapping[str, Any]) -> Any:
    return (q.get("customer") or {}).get(name)


def _subscription_field(name: str, q: Mapping[str, Any]) -> Any:
    return (q.get("subscription") or {}).get(name)


def _usage_quantity(metric: str, q: Mapping[str, Any]) -> Any:
    return getattr((q.get("usage") or {}).get(metric), "quantity", None)


def _period_bound(name: str, q: Mapping[str, Any]) -> Any:
    return getattr(q.get("period"), name, None)


# Paths read as they are, and heads whose one field (`customer.segment`) is read by name.
_FIXED: dict[str, Reader] = {"plan": _plan_id, "subscription.plan": _plan_id, "quantity": _quantity,
                             "subscription.quantity": _quantity}
_BY_FIELD: dict[str, Callable[[str, Mapping[str, Any]], Any]] = {
    "customer": _customer_field, "subscription": _subscription_field, "usage": _usage_quantity,
    "period": _period_bound,
}


def _reader(path: str) -> Reader | None:
    """How to read a context path from a promotion question's keyword arguments."""
    head, _, rest = path.partition(".")
    if "." in rest:
        return None
    if path in _FIXED:
        return _FIXED[path]
    if not rest or head not in _BY_FIELD or (head == "period" and rest not in ("start", "end")):
        return None
    return partial(_BY_FIELD[head], rest)


def read_paths(source: RulePromotions) -> list[str]:
    """Every path a live pricing rule of the source's runtime reads."""
    found: dict[str, None] = {}
    runtime = source.runtime
    for name in sorted(runtime.versions()):
        for rule in runtime.ruleset(name).rules:
            if PRICE_EVENT in rule.on and rule.when is not None:
                found.update(dict.fromkeys(paths(rule.when)))
    return list(found)


class _Remembered:
    def __init__(self, source: PromotionSource, readers: list[Reader]) -> None:
        self.source = source
        self.readers = readers
        self.memo: dict[tuple[Any, ...], Answer] = {}

    def __call__(self, **q: Any) -> Answer:
        period = q.get("period")
        # Rules are valid from/until a date: the period's start is always part of the key.
        key = (id(q["catalog"]), q["plan"].id, getattr(period, "start", None),
               *(read(q) for read in self.readers))
        found = self.memo.get(key)
        if found is None:
            if len(self.memo) >= MEMO_SIZE:
                self.memo.clear()
            found = self.memo[key] = self.source(**q)
        return list(found[0]), list(found[1])


def remembered(source: PromotionSource) -> PromotionSource:
    """The source with a memo in front, when every path its rules read can be keyed."""
    if not isinstance(source, RulePromotions):
        return source
    readers = [_reader(p) for p in read_paths(source)]
    if any(r is None for r in readers):
        return source
    return _Remembered(source, [r for r in readers if r is not None])
