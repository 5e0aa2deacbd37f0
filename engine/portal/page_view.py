"""The customer page's content: its invoices (as payments knows them first), credit notes,
payment method and notification opt-outs, formatted in the customer's language. Sales and
messaging come as readers (cfg.read, engine.portal.readers); this module imports payments alone."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from engine import payments
from engine.pdf import customer_language
from engine.portal import pages
from engine.portal.links import Grant
from engine.portal.readers import PortalReaders
from engine.portal.service import PortalConfig

OPTIONAL_CATEGORIES = ("subscription", "usage", "offers", "digest")
OPTIONAL_CHANNELS = ("email", "sms", "in_app")


def hosted(cfg: PortalConfig) -> payments.HostedSetups | None:
    """The default provider's hosted form for a new method, or None when it has none."""
    if cfg.payments is None:
        return None
    try:
        adapter = cfg.payments.adapter(cfg.payments.default_provider)
    except payments.PaymentError:
        return None
    return adapter if isinstance(adapter, payments.HostedSetups) else None


def notice_shown(t: dict[str, str], notice: str, **params: str) -> dict[str, Any] | None:
    """The message after an action. Only known notices, and parameters of a safe shape, are
    shown (everything is escaped anyway): a crafted query string can say nothing else."""
    key = f"n_{notice}"
    if not notice or key not in t:
        return None
    safe = {k: (v if re.fullmatch(r"[A-Za-z0-9 _.:-]{0,40}", v) else "") for k, v in params.items()}
    ok = notice in ("paid", "pending", "method_saved", "method_saved_paid", "prefs_saved")
    return {"ok": ok, "text": t[key].format(**safe)}


def page_context(session: Any, cfg: PortalConfig, grant: Grant, customer: dict[str, Any]) -> dict[str, Any]:
    read = cfg.read
    lang = customer_language(customer)
    t = pages.labels(lang)
    invoices, open_invoices = _invoice_rows(session, read, grant.customer_id, lang, t)
    notes = [
        {"id": n["id"], "number": n["number"] or n["id"],
         "date": read.date(n["created_at"], lang), "total": read.money(n["total"], n["currency"], lang)}
        for n in reversed(read.credit_notes(session, grant.customer_id))
    ]
    opted_out = read.opt_outs(session, grant.customer_id)
    return {
        "lang": lang,
        "t": t,
        "base": f"/portal/{quote(grant.token, safe='')}",
        "customer": {"name": customer.get("name") or customer.get("id")},
        "seller": {"name": cfg.seller.name},
        "expires_at": read.date(grant.expires_at, lang),
        "invoices": invoices,
        "open_invoices": open_invoices,
        "credit_notes": notes,
        "method": _method_described(session, grant.customer_id, t),
        "can_pay": cfg.payments is not None,
        "can_update_method": hosted(cfg) is not None,
        "categories": [{"name": c, "label": t[f"cat_{c}"], "on": c not in opted_out.categories}
                       for c in OPTIONAL_CATEGORIES],
        "channels": [{"name": c, "label": t[f"ch_{c}"], "on": c not in opted_out.channels}
                     for c in OPTIONAL_CHANNELS],
    }


def _invoice_rows(session: Any, read: PortalReaders, customer_id: str, lang: str,
                  t: Mapping[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(every issued invoice, the open ones) as the page lists them: at most 20 pages of 100."""
    invoices: list[dict[str, Any]] = []
    open_invoices: list[dict[str, Any]] = []
    page_no = 1
    while True:
        listed = read.invoices(session, customer_id, page_no, 100)
        for item in listed["items"]:
            if item["status"] == "draft":
                continue
            status, due = _collected_status(session, item)
            row = _invoice_row(read, item, status, due, lang, t)
            invoices.append(row)
            if status == "finalized" and due > 0:
                open_invoices.append(row)
        if page_no * 100 >= listed["total"] or page_no >= 20:
            return invoices, open_invoices
        page_no += 1


def _collected_status(session: Any, item: Mapping[str, Any]) -> tuple[str, Decimal]:
    """(status, amount due) of an invoice, as payments knows them first: sales marks the
    invoice paid only when the payment's event is applied."""
    due = Decimal(item["amount_due"]) - Decimal(item["amount_paid"])
    status = item["status"]
    if status != "finalized":
        return status, due
    collected = payments.invoice_payment_summary(session, item["id"])
    if collected is None:
        return status, due
    if collected["status"] in ("paid", "void", "uncollectible"):
        status = collected["status"]
    return status, Decimal(collected["remaining"])


def _invoice_row(read: PortalReaders, item: Mapping[str, Any], status: str, due: Decimal, lang: str,
                 t: Mapping[str, str]) -> dict[str, Any]:
    currency = item["currency"]
    period = item.get("period") or {}
    return {
        "id": item["id"], "number": item["number"] or item["id"],
        "date": read.date(item["issued_at"], lang) if item.get("issued_at") else "",
        "period": (f"{read.date(period['start'], lang)} – {read.date(period['end'], lang)}"
                   if period.get("start") and period.get("end") else ""),
        "total": read.money(item["total"], currency, lang),
        "status": t.get(f"status_{status}", status),
        "due": read.money(max(due, Decimal(0)), currency, lang),
    }


def _method_described(session: Any, customer_id: str, t: Mapping[str, str]) -> str:
    method = payments.default_payment_method(session, customer_id)
    if method is None:
        return t["no_method"]
    if method.provider == "bank" or method.method_type in ("bank_transfer", "manual"):
        return t["transfer"]
    last4 = payments.method_to_dict(method).get("last4")
    return f"{method.method_type} {t['ending']} {last4}" if last4 else method.method_type
