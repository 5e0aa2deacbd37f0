"""The customer page's HTML, rendered from templates/portal/ in the engine's limited sandbox
(engine/sandbox.py: autoescaped, immutable, bounded in size and time), in English or German."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape

from engine.sandbox import LimitedSandbox, RenderBudget, RenderLimits, collect

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your billing",
        "link_valid_until": "This link is valid until",
        "open_invoices": "Open invoices",
        "nothing_due": "Nothing is due. Thank you.",
        "invoices": "Invoices",
        "no_invoices": "No invoices yet.",
        "credit_notes": "Credit notes",
        "number": "Number",
        "date": "Date",
        "period": "Period",
        "total": "Total",
        "status": "Status",
        "amount_due": "Amount due",
        "pay_now": "Pay",
        "download_pdf": "PDF",
        "payment_method": "Payment method",
        "update_method": "Update payment method",
        "no_method": "No payment method: invoices are paid by bank transfer.",
        "transfer": "Bank transfer",
        "ending": "ending",
        "notifications": "Notifications",
        "topics": "Send me messages about",
        "channels": "Reach me by",
        "always_sent": "Invoices, payments and the state of your account are always sent.",
        "save_preferences": "Save preferences",
        "cat_subscription": "My subscription (trial ending, renewals)",
        "cat_usage": "Usage and quotas",
        "cat_offers": "Offers and upgrades",
        "cat_digest": "Digests",
        "ch_email": "Email",
        "ch_sms": "SMS",
        "ch_in_app": "In the product",
        "status_finalized": "open",
        "status_paid": "paid",
        "status_void": "void",
        "status_uncollectible": "written off",
        "status_credited": "credited",
        "status_draft": "draft",
        # notices after an action
        "n_paid": "Thank you: invoice {number} is paid.",
        "n_pending": "Your payment for invoice {number} is being processed.",
        "n_declined": "The payment for invoice {number} was declined ({code}). Please update your payment method and try again.",
        "n_transfer": "Invoice {number} waits for your bank transfer. Add a card to pay it now.",
        "n_no_method": "There is no payment method to charge. Please add one first.",
        "n_not_open": "Invoice {number} is not open any more.",
        "n_method_saved": "Your new payment method ({method}) is saved.",
        "n_method_saved_paid": "Your new payment method ({method}) is saved, and {count} open invoice(s) were paid with it.",
        "n_method_failed": "Your payment method was not changed: {reason}",
        "n_prefs_saved": "Your notification preferences are saved.",
        "n_unavailable": "This is not available right now. Please try again later.",
        # error pages
        "e_link": "This link does not work",
        "e_tampered": "This link is not valid: it was changed or copied incompletely. Nothing was shown or changed.",
        "e_expired": "This link has expired. Nothing was shown or changed.",
        "e_hint": "Use the link in your most recent email from us, or ask us for a new one.",
        "e_form": "This form has expired",
        "e_csrf": "The form was not sent from this page, or the page is too old. Nothing was changed.",
        "e_csrf_hint": "Open the page again from your link and repeat what you did.",
        "e_not_found": "Not found",
        "e_not_found_text": "There is no such document for this account.",
        "e_not_found_hint": "Go back to the page and choose a document from the list.",
    },
    "de": {
        "title": "Ihre Abrechnung",
        "link_valid_until": "Dieser Link ist gültig bis",
        "open_invoices": "Offene Rechnungen",
        "nothing_due": "Es ist nichts offen. Vielen Dank.",
        "invoices": "Rechnungen",
        "no_invoices": "Noch keine Rechnungen.",
        "credit_notes": "Gutschriften",
        "number": "Nummer",
        "date": "Datum",
        "period": "Zeitraum",
        "total": "Gesamt",
        "status": "Status",
        "amount_due": "Offener Betrag",
        "pay_now": "Bezahlen",
        "download_pdf": "PDF",
        "payment_method": "Zahlungsmethode",
        "update_method": "Zahlungsmethode ändern",
        "no_method": "Keine Zahlungsmethode: Rechnungen werden per Überweisung bezahlt.",
        "transfer": "Überweisung",
        "ending": "endet auf",
        "notifications": "Benachrichtigungen",
        "topics": "Nachrichten zu",
        "channels": "Erreichen Sie mich per",
        "always_sent": "Rechnungen, Zahlungen und der Stand Ihres Kontos werden immer gesendet.",
        "save_preferences": "Einstellungen speichern",
        "cat_subscription": "Mein Abonnement (Testphase, Verlängerungen)",
        "cat_usage": "Nutzung und Kontingente",
        "cat_offers": "Angebote und Upgrades",
        "cat_digest": "Zusammenfassungen",
        "ch_email": "E-Mail",
        "ch_sms": "SMS",
        "ch_in_app": "Im Produkt",
        "status_finalized": "offen",
        "status_paid": "bezahlt",
        "status_void": "storniert",
        "status_uncollectible": "abgeschrieben",
        "status_credited": "gutgeschrieben",
        "status_draft": "Entwurf",
        "n_paid": "Vielen Dank: Rechnung {number} ist bezahlt.",
        "n_pending": "Ihre Zahlung für Rechnung {number} wird bearbeitet.",
        "n_declined": "Die Zahlung für Rechnung {number} wurde abgelehnt ({code}). Bitte ändern Sie Ihre Zahlungsmethode und versuchen Sie es erneut.",
        "n_transfer": "Rechnung {number} wartet auf Ihre Überweisung. Hinterlegen Sie eine Karte, um sie jetzt zu bezahlen.",
        "n_no_method": "Es ist keine Zahlungsmethode hinterlegt. Bitte fügen Sie zuerst eine hinzu.",
        "n_not_open": "Rechnung {number} ist nicht mehr offen.",
        "n_method_saved": "Ihre neue Zahlungsmethode ({method}) ist gespeichert.",
        "n_method_saved_paid": "Ihre neue Zahlungsmethode ({method}) ist gespeichert; {count} offene Rechnung(en) wurden damit bezahlt.",
        "n_method_failed": "Ihre Zahlungsmethode wurde nicht geändert: {reason}",
        "n_prefs_saved": "Ihre Einstellungen sind gespeichert.",
        "n_unavailable": "Das ist gerade nicht möglich. Bitte versuchen Sie es später noch einmal.",
        "e_link": "Dieser Link funktioniert nicht",
        "e_tampered": "Dieser Link ist ungültig: Er wurde verändert oder unvollständig kopiert. Es wurde nichts angezeigt oder geändert.",
        "e_expired": "Dieser Link ist abgelaufen. Es wurde nichts angezeigt oder geändert.",
        "e_hint": "Verwenden Sie den Link aus unserer neuesten E-Mail, oder bitten Sie uns um einen neuen.",
        "e_form": "Dieses Formular ist abgelaufen",
        "e_csrf": "Das Formular kam nicht von dieser Seite, oder die Seite ist zu alt. Es wurde nichts geändert.",
        "e_csrf_hint": "Öffnen Sie die Seite erneut über Ihren Link und wiederholen Sie den Schritt.",
        "e_not_found": "Nicht gefunden",
        "e_not_found_text": "Dieses Dokument gibt es für dieses Konto nicht.",
        "e_not_found_hint": "Gehen Sie zurück zur Seite und wählen Sie ein Dokument aus der Liste.",
    },
}


def labels(lang: str) -> dict[str, str]:
    return LABELS.get(lang, LABELS["en"])


def templates_dir(configured: str | Path | None = None) -> Path:
    if configured is not None and (Path(configured) / "portal").is_dir():
        return Path(configured) / "portal"
    return Path(__file__).resolve().parents[2] / "templates" / "portal"


@lru_cache(maxsize=4)
def _environment(root: str) -> LimitedSandbox:
    return LimitedSandbox(
        loader=FileSystemLoader(root),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(root: Path, template: str, context: Mapping[str, Any]) -> str:
    env = _environment(str(root))
    limits = RenderLimits()
    with RenderBudget(limits):
        tmpl = env.get_template(template)
        return collect(tmpl.root_render_func(tmpl.new_context(dict(context))), limits, f"portal/{template}")


def message_page(root: Path, lang: str, heading: str, message: str, hint: str) -> str:
    t = labels(lang)
    return render(root, "message.html", {"lang": lang, "t": t, "heading": t[heading], "message": t[message],
                                         "hint": t[hint]})
