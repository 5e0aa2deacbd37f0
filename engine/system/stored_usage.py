"""The store's real usage per plan and metric, for a what-if's synthetic cohort: read
through engine.sales (`usage_profile`) and shaped for engine.simulation (`Observed`).

Here, in engine.system, because it joins two subsystems (sales, simulation): the console's
What-if page (ui/views/simulate.py) and `billing simulate` (engine/cli) both call it, and the
console's modules import one subsystem each at most (tests/test_quality.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from engine.sales.usage_profile import usage_profile
from engine.simulation import Observed, observed_usage

STORED_MONTHS = 3  # the full calendar months read: enough customer-months, still recent


def stored_usage(session: Session, catalog_name: str, now: datetime) -> dict[str, dict[str, Observed]]:
    """plan -> metric -> the stored monthly usage of the last STORED_MONTHS full months."""
    return observed_usage(usage_profile(session, now, months=STORED_MONTHS), catalog_name)
