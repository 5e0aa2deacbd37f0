"""The plan builder page's fields (one flat key per input) to and from a PlanSpec. Pure, so the
mapping is tested without Streamlit; the page draws one input per key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from engine.console.plan_builder import EntitlementSpec, PlanSpec, PriceSpec, TierSpec

P = "pb_"  # every key of the page starts with it
PLAN_KEYS = ("id", "name", "interval", "description", "trial_days", "minimum_amount")
PRICE_KEYS = tuple(f.name for f in fields(PriceSpec) if f.name != "tiers")
TIER_KEYS = ("up_to", "unit_amount", "flat_amount", "rate")
ENT_KEYS = ("feature", "value", "limit", "period", "overage")


_FIELD = re.compile(rf"^{P}(p\d+_|e\d+_|n_prices$|n_ents$|upgrade_to$|original$|({'|'.join(PLAN_KEYS)})$)")


def is_field_key(key: str) -> bool:
    """A key of the plan's inputs (not of the page's own pickers), cleared when a plan loads."""
    return bool(_FIELD.match(key))


def price_key(i: int, name: str) -> str:
    return f"{P}p{i}_{name}"


def tier_key(i: int, j: int, name: str) -> str:
    return f"{P}p{i}_t{j}_{name}"


def ent_key(i: int, name: str) -> str:
    return f"{P}e{i}_{name}"


def _text(values: Mapping[str, Any], key: str, default: str = "") -> str:
    v = values.get(key, default)
    return default if v is None else str(v)


def spec_from_fields(values: Mapping[str, Any]) -> PlanSpec:
    prices = []
    for i in range(int(values.get(f"{P}n_prices", 0) or 0)):
        tiers = [TierSpec(*(_text(values, tier_key(i, j, k)) for k in TIER_KEYS))
                 for j in range(int(values.get(price_key(i, "n_tiers"), 0) or 0))]
        prices.append(PriceSpec(tiers=tiers, **{k: _text(values, price_key(i, k)) for k in PRICE_KEYS}))
    ents = [EntitlementSpec(**{k: _text(values, ent_key(i, k)) for k in ENT_KEYS})
            for i in range(int(values.get(f"{P}n_ents", 0) or 0))]
    return PlanSpec(upgrade_to=list(values.get(f"{P}upgrade_to") or []), prices=prices, entitlements=ents,
                    **{k: _text(values, f"{P}{k}") for k in PLAN_KEYS})


def fields_from_spec(spec: PlanSpec) -> dict[str, Any]:
    out: dict[str, Any] = {f"{P}{k}": getattr(spec, k) for k in PLAN_KEYS}
    out[f"{P}upgrade_to"] = list(spec.upgrade_to)
    out[f"{P}n_prices"] = len(spec.prices)
    for i, price in enumerate(spec.prices):
        out.update({price_key(i, k): getattr(price, k) for k in PRICE_KEYS})
        out[price_key(i, "n_tiers")] = len(price.tiers)
        for j, tier in enumerate(price.tiers):
            out.update({tier_key(i, j, k): getattr(tier, k) for k in TIER_KEYS})
    out[f"{P}n_ents"] = len(spec.entitlements)
    for i, ent in enumerate(spec.entitlements):
        out.update({ent_key(i, k): getattr(ent, k) for k in ENT_KEYS})
    return out
