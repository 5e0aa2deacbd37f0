"""What `billing simulate` prints without --json: the months, discounts, totals, credit packs
and progressive invoices of both catalogs. Moved from engine/cli/commands/ops.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.simulation import SimulationResult


def print_simulation(result: SimulationResult) -> None:
    print(f"{result.cohort}")
    for line in result.usage_source:
        print(f"usage: {line}")
    print(f"{result.customer_months} customer-months, {result.currency}, before tax, {result.seconds:.1f} s")
    for row in result.by_month:
        print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    for d in result.discounts:
        print(f"discount {d['reason'] or d['source']} ({d['source']}): baseline={d['baseline']}  draft={d['draft']}")
    print("totals: " + "  ".join(f"{k}={v}" for k, v in result.totals.items()))
    for line in _prepaid_lines(result) + _progressive_lines(result):
        print(line)
    for f in result.features:
        print(
            f"features: {f['customers']} customers of {f['plan']} moving to {f['draft_plan']} would "
            f"{'lose' if f['change'] == 'lost' else 'get less of'} {f['feature']}"
        )
    for w in result.warnings:
        print(f"warning: {w}")


def _prepaid_lines(result: SimulationResult) -> list[str]:
    """Credit packs per catalog: cash at sale against revenue earned as credit is used."""
    p = result.prepaid
    if p is None:
        return []
    out = [
        f"prepaid: {(p['share'] * 100).normalize():f}% of the cohort buy pack {p['pack']}"
        + (" with the automatic top-up" if p["top_up"] else "")
    ]
    for side in ("baseline", "draft"):
        f = p[side]
        out.append(
            f"prepaid {side}: {f['customers']} customers bought {f['packs_sold']} packs "
            f"({f['top_ups']} top-ups), sold={f['sold']} credit={f['credit']} consumed={f['consumed']} "
            f"earned={f['earned']} expired={f['expired']} breakage={f['breakage']} deferred={f['deferred']} "
            f"collected={f['collected']}; {f['ran_out']} customers ran out"
            + (f"; in {f['unit']}: credit, consumed, expired; unburned={f['unburned']} {f['unit']} still owed"
               if f.get("unit") else "")
        )
    return out


def _progressive_lines(result: SimulationResult) -> list[str]:
    """Progressive invoices per catalog, and whether the periods still total their quotes."""
    p = result.progressive
    if p is None:
        return []
    out = []
    for side in ("baseline", "draft"):
        f = p[side]
        same = "unchanged" if f["unchanged"] else "CHANGED"
        out.append(
            f"progressive {side}: {f['invoices']} invoices for {f['customers']} customers in {f['periods']} "
            f"periods, billed_early={f['billed_early']}; those periods total {f['period_total']}, "
            f"their quotes {f['quote_total']} ({same})"
        )
    return out
