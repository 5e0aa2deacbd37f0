"""Invoices as HTML, rendered from templates/invoice/ in the engine's limited sandbox
(engine/sandbox.py): autoescaping, immutable, and under the same size and time limits as every
message (a template's `{{ 'x' * 50000000 }}` rendered 50 MB, a nested range loop ran past 20 s)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session

from engine.sales.customers import get_customer
from engine.sales.queries import get_invoice
from engine.sandbox import LimitedSandbox, RenderBudget, RenderLimits, collect

DEFAULT_TEMPLATE = "invoice.html"


def templates_root(templates_dir: str | Path | None = None) -> Path:
    if templates_dir is not None:
        return Path(templates_dir)
    try:
        from engine.config import get_settings

        configured = Path(get_settings().templates_dir)
        if (configured / "invoice").is_dir():
            return configured
    except Exception:  # settings unavailable: fall back to the repository's templates
        pass
    return Path(__file__).resolve().parents[2] / "templates"


@lru_cache(maxsize=8)
def _environment(root: str) -> LimitedSandbox:
    return LimitedSandbox(
        loader=FileSystemLoader(str(Path(root) / "invoice")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_invoice_html(
    session: Session,
    invoice_id: str,
    *,
    templates_dir: str | Path | None = None,
    template: str = DEFAULT_TEMPLATE,
    seller: dict[str, Any] | None = None,
) -> str:
    invoice = get_invoice(session, invoice_id)
    customer = get_customer(session, invoice["customer_id"])
    env = _environment(str(templates_root(templates_dir)))
    limits = RenderLimits()
    with RenderBudget(limits):  # raises RenderLimitError past a limit: never a partial invoice
        tmpl = env.get_template(template)
        context = tmpl.new_context({"invoice": invoice, "customer": customer, "seller": seller or {}})
        return collect(tmpl.root_render_func(context), limits, f"invoice/{template}")
