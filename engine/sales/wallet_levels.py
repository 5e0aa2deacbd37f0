"""A customer's own low-balance level for their token wallet (docs/credits.md, Token wallets):
the product sets, reads and removes it over HTTP. Sales' part is the catalog: the level is in
the custom unit of the customer's catalog, and the level in force falls back to its
`credits.low_balance`. Setting it looks at the balance at once, as a budget set below the
spend alerts at once."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engine import credits
from engine.catalog.model import Catalog
from engine.clock import Clock
from engine.money import to_decimal
from engine.sales.burn_totals import latest_catalogs
from engine.sales.common import now_of
from engine.sales.customers import load_customer
from engine.sales.errors import Conflict, NotFound, SalesError
from engine.sales.wallet import catalog_level


def _token_catalog(session: Session, customer_id: str, unit: str | None) -> tuple[Catalog, str]:
    """The customer's catalog and its custom unit (`unit`, when given, must be it)."""
    customer = load_customer(session, customer_id)
    catalog = latest_catalogs(session, [customer.id]).get(customer.id)
    known = catalog.tokens.unit if catalog is not None and catalog.tokens is not None else None
    if known is None:
        raise Conflict(
            "unit",
            f"customer {customer.id}'s catalog has no custom-unit wallet; a money wallet's "
            "low-balance level is the budget's low_balance",
        )
    if unit is not None and unit != known:
        raise Conflict("unit", f"unknown unit {unit!r}: the customer's catalog's custom unit is {known}")
    return catalog, known  # type: ignore[return-value]


def low_balance(session: Session, customer_id: str, unit: str | None = None) -> dict[str, Any]:
    """The customer's own level (null: not set), the level in force and its source."""
    catalog, unit = _token_catalog(session, customer_id, unit)
    level, source = credits.level_sources(session, [customer_id], unit, {customer_id: catalog_level(catalog, unit)})[
        customer_id
    ]
    return credits.level_to_dict(customer_id, unit, credits.get_level(session, customer_id, unit), level, source)


def set_low_balance(
    session: Session, customer_id: str, value: Any, unit: str | None = None, *, clock: Clock
) -> dict[str, Any]:
    """Set the level (above zero, in the unit); below it now, `credits.balance_low` at once
    (once per episode, as every balance event)."""
    catalog, unit = _token_catalog(session, customer_id, unit)
    try:
        amount = to_decimal(value, "low_balance")
    except ValueError as exc:
        raise SalesError("low_balance", str(exc).removeprefix("low_balance: ")) from None
    now = now_of(clock)
    credits.set_level(session, customer_id, unit, amount, now)
    session.flush()
    credits.announce_balance(session, customer_id, unit, now, catalog_level=catalog_level(catalog, unit))
    return low_balance(session, customer_id, unit)


def delete_low_balance(session: Session, customer_id: str, unit: str | None = None) -> None:
    """Back to the catalog's level; 404 on `low_balance` when none was set."""
    _catalog, unit = _token_catalog(session, customer_id, unit)
    if not credits.delete_level(session, customer_id, unit):
        raise NotFound("low_balance", f"customer {customer_id} set no low-balance level in {unit}")
