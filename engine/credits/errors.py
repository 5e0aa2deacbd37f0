"""Bad input to the wallet: the field it names and why; nothing was written."""

from __future__ import annotations


class CreditsError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class UnknownGrant(CreditsError):
    pass


class CreditsConflict(CreditsError):
    """The request is well formed but the wallet's state refuses it (a grant already void)."""
