"""The catalog's credits: packs, grants, top-up, a plan's progressive billing and budget; bad
input named by file:line: path, nothing of the catalog taken."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.catalog import DocumentError, load_catalog_text

BASE = """\
catalog: t
currency: USD
plans:
  pro:
    name: Pro
    interval: month
    prices:
      - {id: base, model: flat, amount: "10.00"}
    credits: {on_exhausted: hard_stop}
    progressive_billing: {thresholds: ["100.00", "500.00"], then_every: "1000.00"}
    budget: {alerts: [80, 50, 100], hard_stop: true}
credits:
  packs:
    starter: {name: Starter, price: "45.00", credit: "50.00", priority: 5, expires_after: 1y}
  grants:
    welcome: {amount: "10.00", priority: 1, expires_after: 30d, rollover: all}
  top_up: {threshold: "10.00", pack: starter}
"""


def errors(text: str) -> list[str]:
    with pytest.raises(DocumentError) as info:
        load_catalog_text(text, "bad.yaml")
    return [str(p) for p in info.value.problems]


def test_credits_are_read_into_the_model() -> None:
    catalog = load_catalog_text(BASE, "ok.yaml")
    credits = catalog.credits
    assert credits is not None and credits.unit == "USD" and credits.rate == 1
    pack = credits.packs["starter"]
    assert (pack.price, pack.credit, pack.terms.priority, pack.terms.expires_after) == (
        Decimal("45.00"), Decimal("50.00"), 5, "1y")
    assert credits.grants["welcome"].terms.rollover == "all"
    assert credits.top_up is not None and credits.top_up.threshold == Decimal("10.00")
    plan = catalog.plans["pro"]
    assert plan.credits.on_exhausted == "hard_stop"
    assert plan.progressive_billing is not None
    assert plan.progressive_billing.thresholds == (Decimal(100), Decimal(500))
    assert plan.progressive_billing.then_every == Decimal(1000)
    assert plan.budget.alerts == (50, 80, 100) and plan.budget.hard_stop


def test_a_catalog_without_credits_has_none() -> None:
    start = BASE.index("    credits: {on")
    catalog = load_catalog_text(BASE[:start] + "credits: {}\n", "ok.yaml")
    assert catalog.credits is not None and catalog.credits.packs == {}
    assert catalog.plans["pro"].progressive_billing is None
    assert catalog.plans["pro"].credits.on_exhausted == "allow"


def test_a_zero_grant_is_refused() -> None:
    text = BASE.replace('welcome: {amount: "10.00"', 'welcome: {amount: "0"')
    assert errors(text) == ["bad.yaml:16: credits.grants.welcome.amount: '0' must be above zero"]


def test_a_pack_in_another_currency_is_refused() -> None:
    text = BASE.replace('price: "45.00",', 'price: "45.00", currency: EUR,')
    assert errors(text) == ["bad.yaml:14: credits.packs.starter.currency: EUR is not this catalog's currency (USD)"]


def test_a_top_up_threshold_above_the_pack_is_refused() -> None:
    text = BASE.replace('threshold: "10.00"', 'threshold: "60.00"')
    assert errors(text) == [
        "bad.yaml:17: credits.top_up.threshold: must be below the top-up's credit (50.00): "
        "one top-up must lift the balance above it"
    ]


def test_a_top_up_of_an_unknown_pack_is_refused() -> None:
    text = BASE.replace("pack: starter}", "pack: big}")
    assert errors(text) == ["bad.yaml:17: credits.top_up.pack: unknown pack 'big'; packs: starter"]


def test_a_custom_unit_needs_a_rate() -> None:
    text = BASE.replace("credits:\n  packs:", "credits:\n  unit: tokens\n  packs:")
    assert errors(text) == ["bad.yaml:12: credits: a custom unit (tokens) needs a rate: USD per tokens"]
    ok = load_catalog_text(text.replace("unit: tokens", 'unit: tokens\n  rate: "0.001"'), "ok.yaml")
    assert ok.credits is not None and ok.credits.rate == Decimal("0.001")


def test_progressive_thresholds_must_ascend() -> None:
    text = BASE.replace('["100.00", "500.00"]', '["500.00", "100.00"]')
    assert errors(text) == [
        "bad.yaml:10: plans.pro.progressive_billing.thresholds[1]: thresholds ascend above zero: 100.00 is not above 500.00"
    ]


def test_a_float_pack_price_is_refused() -> None:
    text = BASE.replace('price: "45.00"', "price: 45.5")
    assert errors(text) == [
        'bad.yaml:14: credits.packs.starter.price: 45.5 is a float; amounts are decimal strings, write it quoted, e.g. "45.50"'
    ]


TOKENS = BASE.replace("plans:", """metrics:
  llm: {event: llm.call, aggregation: sum, field: tokens}
  images: {event: image.made, aggregation: count}
  peak: {event: llm.call, aggregation: max, field: tokens}
plans:""", 1).replace("credits:\n  packs:", """credits:
  unit: tokens
  rate: "0.001"
  burn: {llm: "1", images: "250"}
  packs:""")


def test_a_token_wallet_names_the_metrics_usage_burns_it_by() -> None:
    credits = load_catalog_text(TOKENS, "ok.yaml").credits
    assert credits is not None and credits.custom
    assert credits.burn == {"llm": Decimal(1), "images": Decimal(250)}
    money = load_catalog_text(BASE, "ok.yaml").credits
    assert money is not None and not money.custom and money.burn == {}


@pytest.mark.parametrize(("burn", "message"), [
    ('{llm: "0"}', "credits.burn.llm: '0' must be above zero"),
    ('{llm: "-2"}', "credits.burn.llm: '-2' is not an amount; write a decimal string such as \"49.00\""),
    ('{calls: "1"}', "credits.burn.calls: unknown metric 'calls'; metrics: images, llm, peak"),
    ('{peak: "1"}', "credits.burn.peak: a max metric cannot burn tokens: only count or sum add up event by event"),
])
def test_a_bad_burn_is_refused_naming_it(burn: str, message: str) -> None:
    [problem] = errors(TOKENS.replace('{llm: "1", images: "250"}', burn))
    assert problem.endswith(message), problem


def test_a_money_wallet_is_not_burned_by_usage() -> None:
    text = TOKENS.replace('  unit: tokens\n  rate: "0.001"\n', "")
    [problem] = errors(text)
    assert problem.endswith("credits.burn: only a custom unit is burned by usage; a USD wallet pays invoices "
                            "(the plan's prices bill the usage)"), problem


def test_a_token_wallet_s_low_balance_level_is_in_tokens() -> None:
    credits = load_catalog_text(TOKENS.replace("  rate: \"0.001\"\n", "  rate: \"0.001\"\n  low_balance: \"400\"\n"),
                                "ok.yaml").credits
    assert credits is not None and (credits.unit, credits.low_balance) == ("tokens", Decimal(400))
    assert load_catalog_text(TOKENS, "ok.yaml").credits.low_balance is None  # type: ignore[union-attr]
    [problem] = errors(TOKENS.replace("  rate: \"0.001\"\n", "  rate: \"0.001\"\n  low_balance: \"0\"\n"))
    assert problem.endswith("credits.low_balance: '0' must be above zero"), problem


def test_a_coupon_grants_a_catalog_grant_and_may_discount_nothing() -> None:
    text = BASE + ("coupons:\n  GIFT: {duration: once, grant_credit: {grant: welcome, reason: a gift}}\n"
                   "  BOTH: {percent_off: 10, duration: once, grant_credit: {grant: welcome}}\n")
    catalog = load_catalog_text(text, "ok.yaml")
    gift, both = catalog.coupons["GIFT"], catalog.coupons["BOTH"]
    assert (gift.grant_credit, gift.grant_reason, gift.discounts) == ("welcome", "a gift", False)
    assert (both.grant_credit, both.percent_off, both.discounts) == ("welcome", Decimal(10), True)


def test_a_coupon_naming_an_unknown_grant_or_nothing_is_refused() -> None:
    unknown = BASE + "coupons:\n  GIFT: {duration: once, grant_credit: {grant: nope}}\n"
    assert errors(unknown) == [
        "bad.yaml:19: coupons.GIFT.grant_credit.grant: unknown credit grant 'nope'; credits.grants has welcome"]
    two = BASE + "coupons:\n  GIFT: {percent_off: 5, amount_off: '1.00', duration: once, grant_credit: {grant: welcome}}\n"
    assert errors(two) == ["bad.yaml:19: coupons.GIFT: give at most one of amount_off, percent_off"]
    # Without a grant a coupon still discounts exactly one way (FORMATS §1 unchanged).
    assert errors(BASE + "coupons:\n  NONE: {duration: once}\n") == [
        "bad.yaml:19: coupons.NONE: give exactly one of amount_off, percent_off"]


def test_a_credit_only_coupon_prices_nothing_in_a_quote() -> None:
    """A quote (`POST /v1/quote`'s pricing) with a coupon that only grants credit: no discount
    line, the plan's price as it is (the credit is granted when the coupon is applied)."""
    from datetime import date

    from engine.pricing.quoting import quote

    catalog = load_catalog_text(BASE + "coupons:\n  GIFT: {duration: once, grant_credit: {grant: welcome}}\n", "ok.yaml")
    doc = quote(catalog, catalog.plans["pro"], today=date(2027, 1, 1), coupon="GIFT")
    plain = quote(catalog, catalog.plans["pro"], today=date(2027, 1, 1))
    assert (doc.discount, doc.total) == (plain.discount, plain.total) == (Decimal(0), Decimal("10.00"))
