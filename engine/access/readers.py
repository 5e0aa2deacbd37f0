"""What access reads of other subsystems, as typed callables: engine.system hands them in
(engine/system/access_readers.py), so access imports no subsystem's service layer and a
reader can follow a snapshot to the queries it is made of."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from engine.catalog import Catalog, Plan
from engine.periods import Period

# The usage counted already per metric, with its window (pricing reuses it).
Known = Mapping[str, tuple[Period, Decimal]]
# What the hard stop asks of one customer: (customer id, catalog, plan, billing period, known).
SpendAsk = tuple[str, Catalog, Plan, Period | None, Known]


@dataclass(frozen=True)
class CustomerInputs:
    """A known customer as a snapshot starts from: the customer, its dunning state and its
    live subscription's (summary, catalog, plan), None without one."""

    customer: Mapping[str, Any]
    dunning_state: str
    plan: tuple[Mapping[str, Any], Catalog, Plan] | None = None


@dataclass(frozen=True)
class AccessReaders:
    # (session, customer id) -> the customer's inputs in this session; None: no such customer.
    customer_inputs: Callable[[Session, str], CustomerInputs | None]
    # (session, customer id, catalog, metric, window) -> the metric's usage in the window.
    usage_in_period: Callable[[Session, str, Catalog, str, Period], Decimal]
    # (session, [(customer id, catalog, plan, billing period, known)], now) -> per customer,
    # the wallet credit left after the period's accrued usage (a hard-stop credits plan): many
    # customers at once, as a reload of a usage batch's customers asks.
    spendable: Callable[[Session, Sequence[SpendAsk], datetime], Mapping[str, Decimal]]
    # (session, customer id, subscription, catalog, plan, known) -> what is left of a
    # hard-stop budget; None: no budget that stops.
    budget_left: Callable[[Session, str, Mapping[str, Any], Catalog, Plan, Known], Decimal | None]
    # The customers a usage.recorded event's properties name.
    recorded_customers: Callable[[Mapping[str, Any]], Iterable[str]]
