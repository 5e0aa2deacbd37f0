"""Token wallets (issue 20, docs/credits.md *Token wallets*, docs/books.md *Token packs*), over
HTTP on the shared test clock, ending with the ledger checker: a pack of tokens bought by card,
burned by usage events as they are recorded, run out (the plan stops: `credits_exhausted`), and
its price earned in the journal token by token. Hand-computed for a DE customer (19 %): the
small pack is 1000 tokens for 3.00 (+ 0.57 tax, 3.57), 0.003 a token; an LLM call burns its
`tokens`, an image 100."""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.journeys.harness import Engine, money, redeliver
from tests.journeys.test_books_journey import balances, journal
from tests.journeys.test_credits import kinds, wallet
from tests.journeys.test_journeys import CARD_OK, card

D = Decimal

CATALOG = """\
catalog: tokens-{tag}
currency: USD
taxes: {{DE: 19}}
metrics:
  llm: {{event: llm.call, aggregation: sum, field: tokens}}
  images: {{event: image.made, aggregation: count}}
features:
  llm: {{name: LLM, type: metered, metric: llm}}
plans:
  tokens-{tag}:
    name: Tokens
    interval: month
    prices:
      - {{id: base, name: Platform, model: flat, amount: "5.00"}}
    entitlements:
      llm: {{limit: null, period: month, overage: allow}}
    credits: {{on_exhausted: hard_stop}}
credits:
  unit: tokens
  rate: "0.002"
  burn: {{llm: "1", images: "100"}}
  packs:
    small: {{name: Small tokens, price: "3.00", credit: "1000", expires_after: 1y, rollover: all}}
"""


def publish(engine: Engine, tmp_path: Path) -> str:
    tag = secrets.token_hex(3)
    path = tmp_path / "tokens.yaml"
    path.write_text(CATALOG.format(tag=tag))
    engine.publish(path)
    return f"tokens-{tag}"


def tokens(engine: Engine, cid: str) -> dict[str, str]:
    engine.settle()  # the bus burned what was recorded
    [row] = [b for b in wallet(engine, cid)["balances"] if b["unit"] == "tokens"]
    return row


def buy(engine: Engine, cid: str) -> dict[str, Any]:
    r = engine.product.post(f"/v1/customers/{cid}/wallet/packs", json={"pack": "small", "key": secrets.token_hex(4)})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def llm(engine: Engine, cid: str, count: int) -> None:
    engine.usage(cid, 1, event="llm.call", properties={"tokens": count})


def entries(engine: Engine, references: set[str]) -> dict[str, list[dict[str, str]]]:
    start = date.fromisoformat(engine.now()[:10]) - timedelta(days=40)
    found = journal(engine, start, references)
    for entry_id, rows in found.items():
        assert sum(money(r["debit"]) for r in rows) == sum(money(r["credit"]) for r in rows), entry_id
    return found


def burned(found: dict[str, list[dict[str, str]]]) -> list[Decimal]:
    """What each burn earned, in the order of the wallet's entries."""
    keys = sorted((k for k in found if k.startswith("credits:burned:")), key=lambda k: int(k.rsplit(":", 1)[1]))
    return [balances({k: found[k]})["revenue:credits:usage"] * -1 for k in keys]


def refused(engine: Engine, cid: str) -> None:
    """Bad token grants name their field and write nothing."""
    for amount, status, field in (("0", 422, "amount"), ("-5", 422, "amount")):
        r = engine.admin.post(f"/v1/customers/{cid}/wallet/grants",
                              json={"amount": amount, "unit": "tokens", "reason": "bad"})
        assert (r.status_code, r.json()["field"]) == (status, field), r.text
    r = engine.admin.post(f"/v1/customers/{cid}/wallet/grants", json={"amount": "10", "unit": "credits", "reason": "x"})
    assert (r.status_code, r.json()["field"]) == (409, "unit"), r.text
    assert "unknown unit 'credits'" in r.json()["detail"]
    assert wallet(engine, cid)["grants"] == []


def test_a_token_pack_is_burned_by_usage_and_earned_token_by_token(engine: Engine, tmp_path: Path) -> None:
    plan = publish(engine, tmp_path)
    cid = engine.customer("tokens")
    engine.subscribe(cid, plan, payment_method=card(CARD_OK))
    engine.advance("1h")
    assert engine.check(cid, "llm")["reason"] == "credits_exhausted"  # no tokens yet
    refused(engine, cid)

    first = buy(engine, cid)
    assert (money(first["invoice"]["total"]), first["grant"]["unit"], first["grant"]["status"]) == (
        D("3.57"), "tokens", "pending")
    assert engine.check(cid, "llm")["reason"] == "credits_exhausted"  # not paid yet
    engine.advance("1h")  # paid by card: 1000 tokens
    assert tokens(engine, cid) == {"unit": "tokens", "balance": "1000", "available": "1000", "pending": "0"}
    assert engine.check(cid, "llm")["allowed"]

    llm(engine, cid, 333)  # 333 tokens: 0.999 of the price, 1.00 earned
    assert tokens(engine, cid)["balance"] == "667"
    engine.usage(cid, 2, event="image.made")  # 200 tokens: 533 used, 1.599 -> 1.60, 0.60 more
    assert engine.check(cid, "llm")["allowed"]
    assert tokens(engine, cid)["balance"] == "467"
    llm(engine, cid, 467)  # the rest: 3.00 earned in all, 1.40 more
    denied = engine.check(cid, "llm")
    assert (denied["allowed"], denied["reason"]) == (False, "credits_exhausted")
    assert tokens(engine, cid)["balance"] == "0"
    exhausted = [n for n in engine.notifications(cid) if n["template"] == "credits_exhausted"]
    assert len(exhausted) == 1, exhausted

    pack = first["grant"]["id"]
    found = entries(engine, {pack})
    sold = balances({k: v for k, v in found.items() if k.startswith("credits:sold:")})
    [revenue] = [k for k in sold if k.startswith("revenue:")]
    assert sold == {revenue: D("3.00"), "deferred_revenue": D("-3.00")}  # the price deferred, before tax
    assert burned(found) == [D("1.00"), D("0.60"), D("1.40")]
    assert "deferred_revenue" not in balances(found)  # used up: all 3.00 earned

    llm(engine, cid, 50)  # recorded while stopped (ingestion takes it): owed, the wallet stays at zero
    assert tokens(engine, cid)["balance"] == "0"
    second = buy(engine, cid)
    engine.advance("1h")  # paid: its tokens pay the 50 owed first
    assert tokens(engine, cid)["balance"] == "950"
    assert engine.check(cid, "llm")["allowed"]
    found = entries(engine, {second["grant"]["id"]})
    assert burned(found) == [D("0.15")]  # 50 x 3.00 / 1000
    assert balances(found)["deferred_revenue"] == D("-2.85")


def test_usage_burning_below_the_threshold_buys_one_top_up_pack_once(engine: Engine, tmp_path: Path) -> None:
    """The automatic top-up of a token wallet (docs/credits.md, Automatic top-up): 1000 tokens
    bought; 700 then 150 burned over HTTP leave 150, below the 200 threshold: one small pack
    (3.57 with tax) is bought and charged to the card through the provider, 1000 tokens more. The product sending that
    batch again (the same event ids) and more usage above the threshold buy nothing more."""
    plan = publish(engine, tmp_path)
    cid = engine.customer("tokens_topup")
    engine.subscribe(cid, plan, payment_method=card(CARD_OK))
    engine.advance("1h")
    r = engine.product.put(f"/v1/customers/{cid}/wallet/top_up", json={"enabled": True, "threshold": "1000",
                                                                        "pack": "small"})
    assert (r.status_code, r.json()["field"]) == (409, "threshold"), r.text  # not below the pack's 1000 tokens
    r = engine.product.put(f"/v1/customers/{cid}/wallet/top_up", json={"enabled": True, "threshold": "200",
                                                                        "pack": "small"})
    assert r.status_code == 200 and r.json() == {"enabled": True, "threshold": "200", "pack": "small"}, r.text
    buy(engine, cid)
    engine.advance("1h")  # paid by card: 1000 tokens
    llm(engine, cid, 700)
    assert tokens(engine, cid)["balance"] == "300"  # above the threshold: nothing bought
    assert len([i for i in engine.invoices(cid) if i["reason"] == "charge"]) == 1

    batch = [{"id": f"evt_{cid}_below", "type": "llm.call", "customer_id": cid, "time": engine.now(),
              "properties": {"tokens": 150}}]
    assert engine.product.post("/v1/events", json=batch).status_code == 202
    # The bus burned 150 (150 left < 200) and bought the pack; its invoice, charged by card
    # through the provider, is paid: its tokens count.
    assert tokens(engine, cid) == {"unit": "tokens", "balance": "1150", "available": "1150", "pending": "0"}
    assert engine.product.post("/v1/events", json=batch).status_code == 202  # sent again: stored once
    llm(engine, cid, 100)  # 1050 left, above the threshold
    engine.advance("1h")
    assert tokens(engine, cid)["balance"] == "1050"
    packs = [i for i in engine.invoices(cid) if i["reason"] == "charge"]
    assert [(money(i["total"]), i["status"]) for i in packs] == [(D("3.57"), "paid")] * 2
    grants = wallet(engine, cid)["grants"]
    assert sorted((g["source"], g["amount"], g["status"]) for g in grants) == [
        ("pack", "1000", "active"), ("top_up", "1000", "active")]
    assert sorted(money(c["amount"]) for c in engine.charges(cid)) == sorted(
        [D("3.57"), D("3.57"), *(money(i["total"]) for i in engine.invoices(cid) if i["reason"] != "charge")])


def test_a_credit_note_on_part_of_a_token_packs_invoice_takes_back_its_share_of_tokens(engine: Engine,
                                                                                       tmp_path: Path) -> None:
    """1000 tokens for 3.00 (3.57 with tax); 333 burned earn 1.00. A 1.19 credit note on the
    pack's invoice: tax 1.19 x 0.57 / 3.57 = 0.19, net 1.00, whose share of the tokens at the
    pack's rate is 1.00 x 1000 / 3.00 = 333.33, 333 (whole tokens, half-even): they leave the
    wallet (a `reduced` entry, 334 left) and `credits:reduced` moves their deferral, round(666 x
    0.003 = 1.998) - 1.00 = 1.00, to credit_notes; 1.00 stays deferred. The note's events
    delivered again change nothing; the customer's level (400) is crossed by the note itself: one
    low-credit notice. The last 334 tokens burned earn the last 1.00 and the plan stops. The revenue report's deferred and the journal's deferred_revenue agree throughout."""
    plan = publish(engine, tmp_path)
    cid = engine.customer("tokens_note")
    engine.subscribe(cid, plan, payment_method=card(CARD_OK))
    engine.advance("1h")
    bought = buy(engine, cid)
    pack, invoice = bought["grant"]["id"], bought["invoice"]["id"]
    engine.advance("1h")
    sold_in = engine.now()[:7]
    llm(engine, cid, 333)
    assert tokens(engine, cid)["balance"] == "667"
    assert _deferred(engine, cid, sold_in, pack) == D("2.00")
    engine.product.put(f"/v1/customers/{cid}/wallet/low_balance", json={"low_balance": "400"}).raise_for_status()
    assert _low(engine, cid) == []  # 667 is above it

    note = engine.post(f"/v1/invoices/{invoice}/credit_notes", {"amount": "1.19", "reason": "goodwill"}, status=201)
    assert (money(note["subtotal"]), money(note["tax"])) == (D("1.00"), D("0.19"))
    assert tokens(engine, cid)["balance"] == "334"
    assert _low(engine, cid) == ["334 tokens left."]  # the note took the wallet below the customer's level
    assert kinds(engine, cid)[-1] == ("reduced", "-333")
    found = entries(engine, {pack})
    assert balances({"r": found[f"credits:reduced:{note['id']}"]}) == {
        "deferred_revenue": D("1.00"), "credit_notes": D("-1.00")}
    assert _deferred(engine, cid, sold_in, pack) == D("1.00")
    redeliver(engine, cid, ("credit_note.issued", "credits.reduced"))
    assert tokens(engine, cid)["balance"] == "334" and entries(engine, {pack}) == found
    assert engine.check(cid, "llm")["allowed"]

    llm(engine, cid, 334)  # the rest: earned(1000) - earned(666) = 3.00 - 2.00
    assert tokens(engine, cid)["balance"] == "0"
    assert engine.check(cid, "llm")["reason"] == "credits_exhausted"
    found = entries(engine, {pack})
    assert burned(found) == [D("1.00"), D("1.00")]
    assert "deferred_revenue" not in balances(found)
    assert _deferred(engine, cid, sold_in, pack) == D("0.00")


def _deferred(engine: Engine, cid: str, first: str, pack: str) -> Decimal:
    """The revenue report's deferred on "credits" now, checked against the journal's
    deferred_revenue for the pack (`GET /v1/books/journal`)."""
    r = engine.admin.get("/v1/books/revenue", params={"from": first, "to": engine.now()[:7], "customer_id": cid})
    assert r.status_code == 200, r.text
    [*_, last] = [x for x in r.json()["items"] if x["plan"] == "credits"]
    journal_side = -balances(entries(engine, {pack})).get("deferred_revenue", D(0))
    assert money(last["deferred"]) == journal_side, (last, journal_side)
    return journal_side


def test_a_customers_own_token_low_balance_level_set_over_http(engine: Engine, tmp_path: Path) -> None:
    """The product sets the customer's own low-balance level for their token wallet (the catalog
    declares none): 0, -5 (422 on `low_balance`) and a unit that is not the catalog's (409 on
    `unit`) write nothing; 400 tokens is read back as the level in force. 1000 tokens bought, 500
    burned (500 left, above), 150 more (350): one `credits_balance_low` notification; 100 more
    (250): nothing more. The next pack (1250) re-arms it: 900 burned (350), a second one. Removed,
    the level is the catalog's (none)."""
    plan = publish(engine, tmp_path)
    cid = engine.customer("tokens_level")
    engine.subscribe(cid, plan, payment_method=card(CARD_OK))
    engine.advance("1h")
    path = f"/v1/customers/{cid}/wallet/low_balance"
    nothing = {"customer_id": cid, "unit": "tokens", "low_balance": None, "effective": None, "source": None}
    assert engine.product.get(path).json() == nothing
    for body, status, field in (({"low_balance": "0"}, 422, "low_balance"), ({"low_balance": "-5"}, 422, "low_balance"),
                                ({"low_balance": "10", "unit": "credits"}, 409, "unit")):
        r = engine.product.put(path, json=body)
        assert (r.status_code, r.json()["field"]) == (status, field), r.text
    assert engine.product.get(path).json() == nothing
    r = engine.product.put(path, json={"low_balance": "400"})
    assert r.status_code == 200, r.text
    assert r.json() == {**nothing, "low_balance": "400", "effective": "400", "source": "customer"}
    assert engine.product.get(path, params={"unit": "tokens"}).json() == r.json()

    buy(engine, cid)
    engine.advance("1h")
    assert tokens(engine, cid)["balance"] == "1000"
    for count, balance, said in ((500, "500", []), (150, "350", ["350 tokens left."]), (100, "250", ["350 tokens left."])):
        llm(engine, cid, count)
        assert tokens(engine, cid)["balance"] == balance
        assert _low(engine, cid) == said
    buy(engine, cid)
    engine.advance("1h")
    llm(engine, cid, 900)
    assert tokens(engine, cid)["balance"] == "350"
    assert _low(engine, cid) == ["350 tokens left."] * 2  # one more crossing, said once more

    assert engine.product.delete(path).status_code == 204
    assert engine.product.get(path).json() == nothing
    assert engine.product.delete(path).status_code == 404


def _low(engine: Engine, cid: str) -> list[str]:
    """The customer's low-credit notices in their in-app feed (the body names what is left)."""
    return [n["body"] for n in engine.notifications(cid) if n["template"] == "credits_balance_low"]


def test_an_operators_catalog_grant_in_a_token_catalog_is_in_tokens(engine: Engine, tmp_path: Path) -> None:
    """The catalog's `welcome` grant is 500 of its wallet's unit: an operator granting it over
    HTTP (no unit named) gives 500 tokens, spendable at once, and no dollars."""
    tag = secrets.token_hex(3)
    path = tmp_path / "tokens.yaml"
    path.write_text(CATALOG.format(tag=tag) + '  grants:\n    welcome: {amount: "500", rollover: all}\n')
    engine.publish(path)
    cid = engine.customer("tokens_welcome")
    engine.subscribe(cid, f"tokens-{tag}")
    r = engine.admin.post(f"/v1/customers/{cid}/wallet/grants", json={"grant": "welcome", "reason": "welcome"})
    assert r.status_code == 201, r.text
    assert (r.json()["unit"], money(r.json()["amount"])) == ("tokens", D(500))
    assert tokens(engine, cid)["balance"] == "500"
    assert [b["unit"] for b in wallet(engine, cid)["balances"]] == ["tokens"]
