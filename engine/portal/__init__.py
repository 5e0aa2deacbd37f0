"""The customer page: a signed, expiring link (sent in invoice and dunning emails) opens a page
served by the API where one customer sees their invoices and credit notes, downloads the PDFs,
pays an open invoice, updates the payment method through the provider's hosted form and sets
notification preferences. No login, no API key. Also the operators' PDF and link calls.

    links = PortalLinks(settings, db)                 # the signing secret, read once
    app.include_router(router(PortalConfig(db, clock, links, Seller.from_settings(settings), payment_instructions,
                                            portal_readers(), payments)))   # engine.system binds the readers

See docs/customer-page.md.
"""

from engine.portal.links import Grant, LinkError, check_csrf, csrf_token, sign_link, verify_link
from engine.portal.routes import COOKIE, router
from engine.portal.service import PortalConfig, PortalLinks, origins

__all__ = [
    "COOKIE",
    "Grant",
    "LinkError",
    "PortalConfig",
    "PortalLinks",
    "check_csrf",
    "csrf_token",
    "origins",
    "router",
    "sign_link",
    "verify_link",
]
