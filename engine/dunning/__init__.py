"""Dunning: the account-level state (active, warning, suspended, cancelled, or states a
ruleset names) that the dunning rules drive and access decisions read."""

from engine.dunning.models import Account
from engine.dunning.state import ACTIVE, get_state, set_state

__all__ = ["ACTIVE", "Account", "get_state", "set_state"]
