"""The what-if's refusal, shared by its modules."""


class SimulationError(ValueError):
    """A what-if that cannot run as asked (the message says what to change)."""
