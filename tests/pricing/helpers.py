from __future__ import annotations

import textwrap
from decimal import Decimal

from engine.catalog import Catalog, load_catalog_text


def catalog_with(
    prices_yaml: str, *, currency: str = "USD", rounding: str = "half_up", metrics: str = "", extra: str = ""
) -> Catalog:
    """A one-plan catalog (plan `p`) around the given price list, for worked examples."""
    text = f"""
catalog: t
currency: {currency}
rounding: {rounding}
metrics:
  m: {{event: e, aggregation: sum, field: v}}
  n: {{event: e, aggregation: count}}
{textwrap.indent(textwrap.dedent(metrics), "  ")}
{textwrap.dedent(extra)}
plans:
  p:
    name: P
    interval: month
    prices:
{textwrap.indent(textwrap.dedent(prices_yaml), "      ")}
"""
    return load_catalog_text(text, "test.yaml")


D = Decimal
