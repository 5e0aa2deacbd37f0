"""Bad input to the wallet: the field it names and why; nothing was written."""

from __future__ import annotations

from engine import errors


class CreditsError(ValueError, errors.Invalid):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class UnknownGrant(CreditsError, errors.NotFound):
    pass


class CreditsConflict(CreditsError, errors.Conflict):
    """The request is well formed but the wallet's state refuses it (a grant already void)."""
