"""HTTP: PDF documents for operators (admin key), links to the customer page, and the page.

    GET  /v1/invoices/{id}.pdf, /v1/credit_notes/{id}.pdf          admin key
    POST /v1/customers/{id}/portal_links {days?} -> {url, expires_at}  admin key
    GET  /portal/{token}                                           the customer's page
    GET  /portal/{token}/invoices/{id}.pdf, /credit_notes/{id}.pdf
    POST /portal/{token}/invoices/{id}/pay                         form, CSRF token
    POST /portal/{token}/payment_method                            form, CSRF token -> the provider's hosted form
    GET  /portal/{token}/payment_method/return?setup_session=ID    back from the hosted form
    POST /portal/{token}/preferences                               form, CSRF token

The page has no login and takes no API key: the signed link is the credential, for exactly
one customer, until it expires (engine/portal/links.py). A tampered or expired link, a form
without its CSRF token, or a document of another customer gets an HTML page saying so and
changes nothing. See docs/customer-page.md.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from engine import errors, payments
from engine.api.deps import ADMIN
from engine.api.errors import domain_errors
from engine.api.problems import documented
from engine.pdf import Document, credit_note_pdf, customer_language, invoice_pdf, language_of
from engine.portal import pages
from engine.portal.links import Grant, LinkError, check_csrf, csrf_token
from engine.portal.page_view import OPTIONAL_CATEGORIES, OPTIONAL_CHANNELS, hosted, notice_shown, page_context
from engine.portal.service import MAX_LINK_DAYS, PortalConfig

COOKIE = "portal_csrf"
_CODE = re.compile(r"^[a-z0-9_:]{1,40}$")
# The page shows, links and posts only to itself (and the provider's hosted form, by redirect).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
PDF_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "The PDF", "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}}
}


class PortalLinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"days": 7}]})
    days: int | None = Field(default=None, ge=1, le=MAX_LINK_DAYS,
                             description="how long the link works; default: BILLING_PORTAL_LINK_DAYS (30)")


def _pdf_response(doc: Document, *, inline: bool = True) -> Response:
    disposition = "inline" if inline else "attachment"
    return Response(doc.data, media_type=doc.media_type, headers={
        "Content-Disposition": f'{disposition}; filename="{doc.filename}"', "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff"})


class _Refused(Exception):
    """Answer with this HTML page instead (status, heading, message, hint label keys)."""

    def __init__(self, status: int, heading: str, message: str, hint: str, lang: str = "en") -> None:
        super().__init__(message)
        self.status, self.heading, self.message, self.hint, self.lang = status, heading, message, hint, lang


def router(cfg: PortalConfig) -> APIRouter:
    """The route table: each route is a method of `_Portal` (below)."""
    api = APIRouter()
    portal = _Portal(cfg)
    documents: dict[str, Any] = {"dependencies": [ADMIN], "tags": ["documents"]}
    pdf: dict[str, Any] = {**documents, "response_class": Response, "responses": {**PDF_RESPONSE, **documented(401, 403, 404, 422)}}
    # -- operators: the PDFs and the links
    api.get("/v1/invoices/{invoice_id}.pdf", **pdf,
            summary="An invoice as PDF, in the customer's language (or `language`)")(portal.invoice_pdf_admin)
    api.get("/v1/credit_notes/{credit_note_id}.pdf", **pdf,
            summary="A credit note as PDF, in the customer's language (or `language`)")(portal.credit_note_pdf_admin)
    api.post("/v1/customers/{customer_id}/portal_links", status_code=201, **documents,
             summary="A signed, expiring link to the customer's own page (no login)",
             responses=documented(400, 401, 403, 404, 413, 422))(portal.create_portal_link)
    # -- the customer page
    hidden: dict[str, Any] = {"include_in_schema": False}
    api.get("/portal/{token}", **hidden)(portal.page)
    api.get("/portal/{token}/invoices/{invoice_id}.pdf", **hidden)(portal.portal_invoice_pdf)
    api.get("/portal/{token}/credit_notes/{credit_note_id}.pdf", **hidden)(portal.portal_credit_note_pdf)
    api.post("/portal/{token}/invoices/{invoice_id}/pay", **hidden)(portal.pay)
    api.post("/portal/{token}/payment_method", **hidden)(portal.update_method)
    api.get("/portal/{token}/payment_method/return", **hidden, name="method_return")(portal.method_return)
    api.post("/portal/{token}/preferences", **hidden)(portal.preferences)
    return api


class _Portal:
    """The routes of the customer page and the operators' documents, over one config."""

    def __init__(self, cfg: PortalConfig) -> None:
        self.cfg = cfg
        self.root = pages.templates_dir(cfg.templates)
        self.csp = SECURITY_HEADERS["Content-Security-Policy"].replace(
            "form-action 'self'", " ".join(["form-action 'self'", *cfg.hosted_origins]))

    # -- helpers ------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.cfg.clock.now()

    def html(self, body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
        return HTMLResponse(body, status_code=status,
                            headers={**SECURITY_HEADERS, "Content-Security-Policy": self.csp, **(headers or {})})

    def refused(self, exc: _Refused) -> HTMLResponse:
        return self.html(pages.message_page(self.root, exc.lang, exc.heading, exc.message, exc.hint), exc.status)

    def grant_of(self, token: str) -> Grant:
        try:
            return self.cfg.links.verify(token, self.now())
        except LinkError as exc:
            message = "e_expired" if exc.reason == "expired" else "e_tampered"
            raise _Refused(410 if exc.reason == "expired" else 403, "e_link", message, "e_hint") from None

    @contextmanager
    def page_errors(self) -> Iterator[None]:
        try:
            yield
        except _Refused:
            raise
        except errors.NotFound:
            raise _Refused(404, "e_not_found", "e_not_found_text", "e_not_found_hint") from None

    def customer_of(self, session: Session, grant: Grant) -> dict[str, Any]:
        try:
            return self.cfg.read.customer(session, grant.customer_id)
        except errors.NotFound:
            raise _Refused(404, "e_not_found", "e_not_found_text", "e_not_found_hint") from None

    async def form_of(self, request: Request, grant: Grant, lang: str) -> dict[str, list[str]]:
        """The posted form, once its CSRF token is this link's for this browser."""
        raw = (await request.body()).decode("utf-8", "replace")
        form = parse_qs(raw, keep_blank_values=True, max_num_fields=50)
        given = (form.get("csrf_token") or [""])[0]
        if not check_csrf(self.cfg.links.secrets, grant.token, request.cookies.get(COOKIE, ""), given):
            raise _Refused(403, "e_form", "e_csrf", "e_csrf_hint", lang)
        return form

    async def posted(self, token: str, request: Request) -> tuple[Grant, dict[str, list[str]]]:
        """The link's grant and the posted form (its CSRF token checked)."""
        grant = self.grant_of(token)
        lang = _language_of_grant(self.cfg, grant)
        return grant, await self.form_of(request, grant, lang)

    def back(self, token: str, notice: str, **params: str) -> RedirectResponse:
        query = urlencode({"notice": notice, **params})
        return RedirectResponse(f"/portal/{quote(token, safe='')}?{query}", status_code=303,
                                headers=SECURITY_HEADERS)

    def customers_pdf(self, token: str, draw: Callable[[Session], Document], field: str) -> Response:
        """A document of the link's customer (anyone else's is not found), as a download."""
        try:
            grant = self.grant_of(token)
            with self.page_errors(), self.cfg.db.read_session() as session:
                doc = draw(session)
                if doc.customer_id != grant.customer_id:
                    raise _Refused(404, "e_not_found", "e_not_found_text", "e_not_found_hint")
        except _Refused as exc:
            return self.refused(exc)
        return _pdf_response(doc, inline=False)

    # -- operators: the PDFs and the links --------------------------------------------------

    def invoice_pdf_admin(self, invoice_id: str, language: str | None = Query(None, pattern="^(en|de)$")) -> Response:
        with domain_errors(), self.cfg.db.read_session() as session:
            return _pdf_response(invoice_pdf(session, invoice_id, self.cfg.seller, self.cfg.instructions, language=language))

    def credit_note_pdf_admin(self, credit_note_id: str,
                              language: str | None = Query(None, pattern="^(en|de)$")) -> Response:
        with domain_errors(), self.cfg.db.read_session() as session:
            return _pdf_response(credit_note_pdf(session, credit_note_id, self.cfg.seller, language=language))

    def create_portal_link(self, customer_id: str, body: PortalLinkIn | None = None) -> dict[str, str]:
        with domain_errors(), self.cfg.db.read_session() as session:
            self.cfg.read.customer(session, customer_id)
        link = self.cfg.links.customer_page(customer_id, self.now(), (body.days if body else None))
        return {"customer_id": customer_id, "url": link["url"], "expires_at": link["expires_at"]}

    # -- the customer page ------------------------------------------------------------------

    def page(self, token: str, request: Request, notice: str = "", number: str = "", code: str = "",
             method: str = "", count: str = "") -> HTMLResponse:
        try:
            grant = self.grant_of(token)
            with self.cfg.db.read_session() as session:
                customer = self.customer_of(session, grant)
                context = page_context(session, self.cfg, grant, customer)
        except _Refused as exc:
            return self.refused(exc)
        nonce = request.cookies.get(COOKIE) or secrets.token_urlsafe(24)
        t = context["t"]
        context["csrf"] = csrf_token(self.cfg.links.secrets[0], grant.token, nonce)
        context["notice"] = notice_shown(t, notice, number=number, code=code, method=method, count=count)
        response = self.html(pages.render(self.root, "page.html", context))
        response.set_cookie(COOKIE, nonce, httponly=True, samesite="lax", path="/portal/",
                            secure=request.url.scheme == "https")
        return response

    def portal_invoice_pdf(self, token: str, invoice_id: str) -> Response:
        return self.customers_pdf(
            token, lambda session: invoice_pdf(session, invoice_id, self.cfg.seller, self.cfg.instructions), "invoice_id")

    def portal_credit_note_pdf(self, token: str, credit_note_id: str) -> Response:
        return self.customers_pdf(
            token, lambda session: credit_note_pdf(session, credit_note_id, self.cfg.seller), "credit_note_id")

    async def pay(self, token: str, invoice_id: str, request: Request) -> Response:
        try:
            grant, _form = await self.posted(token, request)
            return await run_in_threadpool(_pay, self.cfg, grant, invoice_id, self.back)
        except _Refused as exc:
            return self.refused(exc)

    async def update_method(self, token: str, request: Request) -> Response:
        try:
            grant, _form = await self.posted(token, request)
        except _Refused as exc:
            return self.refused(exc)
        form = hosted(self.cfg)
        if form is None:
            return self.back(token, "unavailable")
        return_url = str(request.url_for("method_return", token=token))
        try:
            session = await run_in_threadpool(form.start_setup, grant.customer_id, return_url)
        except (payments.ProviderError, payments.ProviderRejected):
            return self.back(token, "unavailable")
        return RedirectResponse(str(session["url"]), status_code=303, headers=SECURITY_HEADERS)

    def method_return(self, token: str, setup_session: str = "") -> Response:
        try:
            grant = self.grant_of(token)
        except _Refused as exc:
            return self.refused(exc)
        form = hosted(self.cfg)
        if form is None or not setup_session or len(setup_session) > 100:
            return self.back(token, "unavailable")
        try:
            setup = form.finish_setup(setup_session)
        except (payments.ProviderError, payments.ProviderRejected):
            return self.back(token, "unavailable")
        if setup.customer_id != grant.customer_id or setup.status != "complete" or not setup.token:
            # Another customer's session, or one not finished: nothing is attached.
            return self.back(token, "method_failed", code="not_completed")
        try:
            paid = self.attach_and_collect(grant, setup)
        except payments.PaymentError as exc:
            return self.back(token, "method_failed", code=_code(exc.field or "payment_method"))
        label = f"{setup.method_type} {setup.last4}" if setup.last4 else setup.method_type
        if paid:
            return self.back(token, "method_saved_paid", method=label, count=str(paid))
        return self.back(token, "method_saved", method=label)

    def attach_and_collect(self, grant: Grant, setup: payments.HostedSetup) -> int:
        """Attach the hosted form's method (unless it is the default already), then collect the
        open invoices, as POST /v1/customers/{id}/payment_methods does (a hard decline was
        waiting for this): the number paid."""
        cfg = self.cfg
        assert cfg.payments is not None
        with cfg.db.session() as session:
            current = payments.default_payment_method(session, grant.customer_id)
            if current is None or (current.token, current.method_type) != (setup.token, setup.method_type):
                payments.attach_payment_method(session, grant.customer_id, setup.method_type, setup.token,
                                               provider=cfg.payments.default_provider, service=cfg.payments)
        with cfg.db.session() as session:
            results = payments.collect_open_invoices(session, grant.customer_id, service=cfg.payments)
        cfg.invalidate(grant.customer_id)
        cfg.after_commit()
        return sum(1 for r in results if r.status == "paid")

    async def preferences(self, token: str, request: Request) -> Response:
        try:
            grant, form = await self.posted(token, request)
        except _Refused as exc:
            return self.refused(exc)
        wanted_categories = set(form.get("category") or []) & set(OPTIONAL_CATEGORIES)
        wanted_channels = set(form.get("channel") or []) & set(OPTIONAL_CHANNELS)
        with self.cfg.db.session() as session:
            current = self.cfg.read.opt_outs(session, grant.customer_id)
            # Channels the page does not show (webhook) keep what they were.
            hidden = {c for c in current.channels if c not in OPTIONAL_CHANNELS}
            self.cfg.read.save_opt_outs(
                session, grant.customer_id, self.now(),
                sorted(set(OPTIONAL_CATEGORIES) - wanted_categories),
                sorted((set(OPTIONAL_CHANNELS) - wanted_channels) | hidden))
        return self.back(token, "prefs_saved")


def _code(text: str) -> str:
    text = str(text).lower().replace(" ", "_")
    return text if _CODE.match(text) else "error"


def _language_of_grant(cfg: PortalConfig, grant: Grant) -> str:
    with cfg.db.read_session() as session:
        try:
            return customer_language(cfg.read.customer(session, grant.customer_id))
        except errors.NotFound:
            raise _Refused(404, "e_not_found", "e_not_found_text", "e_not_found_hint") from None


def _pay(cfg: PortalConfig, grant: Grant, invoice_id: str, back: Any) -> Response:
    token = grant.token
    if cfg.payments is None:
        return back(token, "unavailable")
    try:
        with cfg.db.session() as session:
            invoice = cfg.read.invoice(session, invoice_id)
            if invoice["customer_id"] != grant.customer_id:
                raise _Refused(404, "e_not_found", "e_not_found_text", "e_not_found_hint",
                               _language_of_grant(cfg, grant))
            number = str(invoice["number"] or invoice["id"])
            if invoice["status"] != "finalized" or Decimal(invoice["amount_due"]) <= Decimal(invoice["amount_paid"]):
                return back(token, "not_open", number=number)
            result = payments.pay_invoice_now(session, invoice_id, service=cfg.payments)
    except payments.PaymentError:  # before NotFound: a payment not found is 'unavailable', as it was
        return back(token, "unavailable")
    except errors.NotFound:
        raise _Refused(404, "e_not_found", "e_not_found_text", "e_not_found_hint") from None
    cfg.invalidate(grant.customer_id)
    cfg.after_commit()
    if result.status == "failed":
        return back(token, "declined", number=number, code=_code(result.decline_code or "declined"))
    return back(token, _PAY_NOTICES.get(result.status, "pending"), number=number)


# The notice after a payment that did not fail, by the result's status (else: still pending).
_PAY_NOTICES = {"paid": "paid", "already_paid": "paid", "awaiting_transfer": "transfer",
                "no_payment_method": "no_method"}


__all__ = ["COOKIE", "PortalLinkIn", "language_of", "router"]
