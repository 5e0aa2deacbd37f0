"""Which tax applies to a customer: the catalog's rate for their country, or reverse charge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.catalog.model import Catalog
from engine.money import ZERO


@dataclass(frozen=True, slots=True)
class TaxDecision:
    rate: Decimal  # percent
    country: str | None = None
    reverse_charge: bool = False

    @property
    def label(self) -> str:
        if self.reverse_charge:
            return "reverse charge"
        return f"{self.country} {self.rate}%" if self.country else "no tax"


NO_TAX = TaxDecision(ZERO)


def tax_for(catalog: Catalog, customer: Mapping[str, Any] | None) -> TaxDecision:
    """B2B customers with a tax id are invoiced without tax (reverse charge: the buyer
    accounts for it); everyone else pays the rate of their country, if the catalog has one."""
    if not customer:
        return NO_TAX
    country = customer.get("country")
    country = country.upper() if isinstance(country, str) else None
    if customer.get("tax_id"):
        return TaxDecision(ZERO, country, reverse_charge=True)
    if country and country in catalog.taxes:
        return TaxDecision(catalog.taxes[country], country)
    return TaxDecision(ZERO, country)
