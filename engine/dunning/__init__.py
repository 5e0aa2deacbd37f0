"""Dunning: the account-level state (active, warning, suspended, cancelled, or states a
ruleset names) that the dunning rules drive and access decisions read."""

from engine.dunning.models import Account
from engine.dunning.state import (
    ACTIVE,
    StateChange,
    customers_in_states,
    get_state,
    known_states,
    recorded_states,
    set_state,
    set_states,
    states_of,
)

__all__ = ["ACTIVE", "Account", "StateChange", "customers_in_states", "get_state", "known_states", "recorded_states",
           "set_state", "set_states", "states_of"]
