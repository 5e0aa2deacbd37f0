"""Prepaid credits: each customer's wallet as an immutable ledger of grants and their
consumptions, expiries and voids (docs/credits.md)."""

from engine.credits.amounts import is_custom
from engine.credits.balance import announce_balance, level_sources, low_level, low_levels
from engine.credits.budgets import (
    BudgetRequest,
    budget_to_dict,
    delete_budget,
    get_budget,
    raise_once,
    raised,
    reached,
    set_budget,
)
from engine.credits.burn import Burned, burn, burn_batch, burned, spend_figures
from engine.credits.drawdown import Available, Draw, allocate, draw_order
from engine.credits.errors import CreditsConflict, CreditsError, UnknownGrant
from engine.credits.ledger import MAX_PAGE, grant_to_dict, ledger_page, wallet
from engine.credits.levels import delete_level, get_level, level_to_dict, set_level
from engine.credits.models import Grant
from engine.credits.terms import burn_asked, credit_share
from engine.credits.top_up import due_top_up, get_top_up, set_top_up, top_up_to_dict
from engine.credits.wallet import (
    PREPAID,
    GrantRequest,
    activate,
    add_grant,
    available_total,
    available_totals,
    draw_down,
    expire_due,
    get_grant,
    grant_sold_by,
    lapsed_on_void,
    paid_by_credits,
    pending_for_invoice,
    reduce_grant,
    remaining,
    restore_invoice,
    usable,
    void_grant,
)

__all__ = [
    "MAX_PAGE",
    "PREPAID",
    "Available",
    "BudgetRequest",
    "Burned",
    "CreditsConflict",
    "CreditsError",
    "Draw",
    "Grant",
    "GrantRequest",
    "UnknownGrant",
    "activate",
    "add_grant",
    "allocate",
    "announce_balance",
    "available_total",
    "available_totals",
    "budget_to_dict",
    "burn",
    "burn_asked",
    "burn_batch",
    "burned",
    "credit_share",
    "delete_budget",
    "delete_level",
    "draw_down",
    "draw_order",
    "due_top_up",
    "expire_due",
    "get_budget",
    "get_grant",
    "get_level",
    "get_top_up",
    "grant_sold_by",
    "grant_to_dict",
    "is_custom",
    "lapsed_on_void",
    "ledger_page",
    "level_sources",
    "level_to_dict",
    "low_level",
    "low_levels",
    "paid_by_credits",
    "pending_for_invoice",
    "raise_once",
    "raised",
    "reached",
    "reduce_grant",
    "remaining",
    "restore_invoice",
    "set_budget",
    "set_level",
    "set_top_up",
    "spend_figures",
    "top_up_to_dict",
    "usable",
    "void_grant",
    "wallet",
]
