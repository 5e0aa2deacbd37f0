"""The what-if's refusals, shared by its modules: a run that cannot go as asked, and bad cohort
input (CohortError, moved from engine.simulation.cohort)."""

from __future__ import annotations

from collections.abc import Sequence


class SimulationError(ValueError):
    """A what-if that cannot run as asked (the message says what to change)."""


class CohortError(ValueError):
    """Bad cohort input; `problems` lists every reason, each naming the row or field."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))
