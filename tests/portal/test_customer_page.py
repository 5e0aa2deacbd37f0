"""The customer page over HTTP as a browser speaks it (forms, cookies, redirects through the
sandbox's hosted form): the link grants one customer, its actions only, and a tampered or
expired link, a forged form or another customer's document changes nothing."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import func, select

from engine import messaging
from engine.messaging.models import NotificationPreference
from engine.payments.models import PaymentMethod
from tests.portal.conftest import Engine, pdf_text, portal_link

DECLINING_CARD = "4000000000000002"  # generic decline: retrying cannot help (a hard decline)
GOOD_CARD = "4242424242424242"


def browser_client() -> httpx.Client:
    """A client that keeps cookies and follows redirects, as a browser does."""
    return httpx.Client(timeout=30, follow_redirects=True)


def link_for(engine: Engine, cid: str, **body: Any) -> str:
    r = engine.admin.post(f"/v1/customers/{cid}/portal_links", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["url"])


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def written(engine: Engine) -> tuple[int, int, int]:
    """What an action writes: payment methods, preference rows, outbox events."""
    from engine.store import OutboxEvent

    with engine.system.db.read_session() as s:
        return (int(s.scalar(select(func.count()).select_from(PaymentMethod)) or 0),
                int(s.scalar(select(func.count()).select_from(NotificationPreference)) or 0),
                int(s.scalar(select(func.count()).select_from(OutboxEvent)) or 0))


def test_a_tampered_or_expired_link_is_refused_with_a_clear_page(engine: Engine) -> None:
    engine.customer("cus_a", name="Ada", country="CH", card=GOOD_CARD)
    engine.customer("cus_b", name="Bob", country="CH", card=GOOD_CARD)
    link = link_for(engine, "cus_a", days=2)
    browser = browser_client()
    page = browser.get(link)
    assert page.status_code == 200 and "Ada" in page.text and "Bob" not in page.text
    token = csrf(page)
    before = written(engine)

    # Another customer's id in the same link, its signature kept: refused.
    payload, sig = link.rsplit("/", 1)[1].split(".")
    import base64
    import json

    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["c"] = "cus_b"
    forged = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
    bad = link.rsplit("/", 1)[0] + f"/{forged}.{sig}"
    for url in (bad, link[:-3], bad + "/invoices/x.pdf"):
        r = browser.get(url)
        assert r.status_code == 403, (url, r.status_code)
        assert "This link does not work" in r.text and "not valid" in r.text and "Bob" not in r.text
    r = browser.post(bad + "/preferences", data={"csrf_token": token, "category": "usage"})
    assert r.status_code == 403 and "not valid" in r.text

    # Past its expiry (the engine's clock), the link shows nothing and changes nothing.
    engine.advance("2026-03-03T01:00:00Z")
    r = browser.get(link)
    assert r.status_code == 410 and "This link has expired" in r.text and "Ada" not in r.text
    r = browser.post(link + "/preferences", data={"csrf_token": token, "category": "usage"})
    assert r.status_code == 410
    r = browser.post(link + "/payment_method", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 410
    assert written(engine)[:2] == before[:2]
    with engine.system.db.read_session() as s:
        assert messaging.get_preferences(s, "cus_a").opted_out_categories == frozenset()

    # Links are made for customers that exist, for at most a year.
    assert engine.admin.post("/v1/customers/nobody/portal_links", json={}).json()["field"] == "customer_id"
    r = engine.admin.post("/v1/customers/cus_a/portal_links", json={"days": 400})
    assert r.status_code == 422 and "days" in str(r.json())


def test_forms_need_the_page_token_and_the_browser_cookie(engine: Engine) -> None:
    engine.customer("cus_c", name="Cleo", country="CH", card=GOOD_CARD)
    link = link_for(engine, "cus_c")
    browser = browser_client()
    token = csrf(browser.get(link))
    before = written(engine)
    # No token; a token of another link; the right token from a browser without the page's
    # cookie (a form posted from another site): all refused, nothing written.
    other = csrf(browser_client().get(link_for(engine, "cus_c", days=3)))
    for client, form in ((browser, {"category": "usage"}), (browser, {"csrf_token": other}),
                         (browser_client(), {"csrf_token": token})):
        r = client.post(link + "/preferences", data=form)
        assert r.status_code == 403 and "This form has expired" in r.text and "Nothing was changed" in r.text
    assert written(engine) == before

    # With both: saved. Offers and digests off, SMS off; what is left is what the page shows.
    r = browser.post(link + "/preferences", data={"csrf_token": token, "category": ["subscription", "usage"],
                                                  "channel": ["email", "in_app"]})
    assert r.status_code == 200 and "Your notification preferences are saved." in r.text
    with engine.system.db.read_session() as s:
        prefs = messaging.get_preferences(s, "cus_c")
    assert prefs.opted_out_categories == frozenset({"offers", "digest"})
    assert prefs.opted_out_channels == frozenset({"sms"})
    assert 'value="offers">' in r.text and 'value="usage" checked>' in r.text


def test_pay_declined_then_a_new_card_through_the_hosted_form_pays_the_invoice(engine: Engine) -> None:
    engine.customer("cus_d", name="Dora", country="CH", card=DECLINING_CARD)
    invoice = engine.invoices("cus_d")[0]
    assert invoice["status"] == "finalized"
    # The hard decline's email links to the page.
    mail = next(m for m in engine.inbox.to("cus_d@example.com") if "payment method" in m.subject.lower())
    link = portal_link(mail.text)
    browser = browser_client()
    page = browser.get(link)
    assert f'id="open-{invoice["id"]}"' in page.text and "card ending 0002" in page.text

    # Pay: charged through the provider, declined again: said so, still open.
    r = browser.post(f"{link}/invoices/{invoice['id']}/pay", data={"csrf_token": csrf(page)})
    assert r.status_code == 200 and "was declined (generic_decline)" in r.text
    assert engine.admin.get(f"/v1/invoices/{invoice['id']}").json()["status"] == "finalized"

    # Update the payment method: to the sandbox's own form, a card there, back to the page.
    r = browser.post(f"{link}/payment_method", data={"csrf_token": csrf(r)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith(f"{engine.psp_url}/hosted/setup/")
    form_url = r.headers["location"]
    assert "Card number" in browser.get(form_url).text
    r = browser.post(form_url, data={"number": "1234"}, follow_redirects=False)
    assert r.status_code == 402 and "invalid card number" in r.text  # the sandbox refuses it there
    r = browser.post(form_url, data={"number": GOOD_CARD}, follow_redirects=True)
    assert r.status_code == 200
    # Attaching a method collects what a hard decline left open (docs/payments.md).
    assert "Your new payment method (card 4242) is saved, and 1 open invoice(s) were paid with it." in r.text
    assert "card ending 4242" in r.text and 'id="nothing-due"' in r.text
    engine.system.drain()
    assert engine.admin.get(f"/v1/invoices/{invoice['id']}").json()["status"] == "paid"
    # Coming back to the same return URL attaches nothing more.
    methods = written(engine)[0]
    browser.get(f"{link}/payment_method/return?setup_session={form_url.rsplit('/', 1)[1]}")
    assert written(engine)[0] == methods

    # The PDF from the page is the invoice's, now paid.
    pdf = browser.get(f"{link}/invoices/{invoice['id']}.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-disposition"].startswith("attachment;")
    assert invoice["number"] in pdf_text(pdf.content) and "Paid in full" in pdf_text(pdf.content)


def test_a_link_reaches_only_its_own_customer(engine: Engine) -> None:
    engine.customer("cus_e", name="Eve", country="CH", card=GOOD_CARD)
    engine.customer("cus_f", name="Fay", country="CH", card=DECLINING_CARD)
    theirs = engine.invoices("cus_f")[0]
    link = link_for(engine, "cus_e")
    browser = browser_client()
    page = browser.get(link)
    assert theirs["number"] not in page.text
    r = browser.get(f"{link}/invoices/{theirs['id']}.pdf")
    assert r.status_code == 404 and "There is no such document for this account." in r.text
    r = browser.post(f"{link}/invoices/{theirs['id']}/pay", data={"csrf_token": csrf(page)})
    assert r.status_code == 404
    assert engine.admin.get(f"/v1/invoices/{theirs['id']}").json()["collection"]["payments"][-1]["attempt"] == 1
    # The page's security headers: no framing, no referrer (the link is the credential), no cache.
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
