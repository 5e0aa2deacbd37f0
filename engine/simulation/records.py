"""A cohort from plain rows ({customer_id, plan, quantity?, segment?, country?, usage}), e.g.
the store's customers with their real usage: every problem named by its row, all of them
at once. Moved from engine.simulation.cohort."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.catalog.model import Catalog
from engine.simulation.cohort import ONE, ZERO, Cohort, SimCustomer
from engine.simulation.errors import CohortError


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
