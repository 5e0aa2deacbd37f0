"""Bad catalogs are rejected whole, every error naming file:line: path."""

from __future__ import annotations

import pytest

from engine.catalog import DocumentError, load_catalog, load_catalog_text

BASE = """\
catalog: t
currency: USD
metrics:
  calls: {event: api.request, aggregation: count}
features:
  api: {type: metered, metric: calls}
plans:
  free:
    name: Free
    interval: month
    prices:
      - {id: base, model: flat, amount: "1.00"}
"""


def errors(text: str) -> list[str]:
    with pytest.raises(DocumentError) as info:
        load_catalog_text(text, "bad.yaml")
    return [str(p) for p in info.value.problems]


def test_the_base_is_valid() -> None:
    assert load_catalog_text(BASE, "ok.yaml").plans["free"].prices[0].amount == 1


def test_float_amount_is_refused_with_its_line() -> None:
    text = BASE.replace('amount: "1.00"', "amount: 49.99")
    assert errors(text) == [
        "bad.yaml:12: plans.free.prices[0].amount: 49.99 is a float; amounts are decimal strings, "
        'write it quoted, e.g. "49.99"'
    ]


def test_unknown_metric_on_a_price() -> None:
    text = BASE + '      - {id: c, model: per_unit, metric: clicks, unit_amount: "0.1"}\n'
    assert errors(text) == ["bad.yaml:13: plans.free.prices[1].metric: unknown metric 'clicks'"]


def test_unknown_metric_on_a_feature() -> None:
    text = BASE.replace("metric: calls}", "metric: clickz}")
    assert errors(text) == ["bad.yaml:6: features.api.metric: unknown metric 'clickz'"]


def test_coupon_for_an_unknown_plan() -> None:
    text = BASE + "coupons:\n  X: {percent_off: 10, duration: once, applies_to: [free, gold]}\n"
    assert errors(text) == ["bad.yaml:14: coupons.X.applies_to[1]: unknown plan 'gold'"]


def test_duplicate_price_ids() -> None:
    text = BASE + '      - {id: base, model: flat, amount: "2.00"}\n'
    assert errors(text) == ["bad.yaml:13: plans.free.prices[1].id: duplicate price id 'base' (also prices[0])"]


TIERS = """\
      - id: g
        model: graduated
        metric: calls
        tiers:
          - {up_to: 100, unit_amount: "1"}
          - {up_to: UP2, unit_amount: "0.5"}
          - {up_to: UP3, unit_amount: "0.1"}
"""


def test_tiers_must_ascend() -> None:
    text = BASE + TIERS.replace("UP2", "50").replace("UP3", "null")
    assert errors(text) == [
        "bad.yaml:18: plans.free.prices[1].tiers[1].up_to: tiers must ascend: 50 is not above the previous bound 100"
    ]


def test_exactly_one_open_tier() -> None:
    none_open = BASE + TIERS.replace("UP2", "200").replace("UP3", "300")
    assert errors(none_open) == [
        "bad.yaml:16: plans.free.prices[1].tiers: exactly one tier must be open (up_to: null), the last one; found none"
    ]
    two_open = BASE + TIERS.replace("UP2", "null").replace("UP3", "null")
    assert errors(two_open) == [
        "bad.yaml:19: plans.free.prices[1].tiers[2].up_to: exactly one tier must be open (up_to: null), "
        "the last one; found 2"
    ]


def test_wrong_types_and_unknown_fields_are_all_listed() -> None:
    text = BASE.replace("interval: month", "interval: fortnight\n    trial_days: soon\n    colour: red")
    assert errors(text) == [
        "bad.yaml:10: plans.free.interval: 'fortnight' is not one of day, week, month, year, once",
        "bad.yaml:11: plans.free.trial_days: 'soon' is not of type 'integer'",
        "bad.yaml:12: plans.free.colour: unknown field 'colour'",
    ]


def test_missing_required_field() -> None:
    text = BASE.replace('      - {id: base, model: flat, amount: "1.00"}', "      - {id: base, model: flat}")
    assert errors(text) == ["bad.yaml:12: plans.free.prices[0]: 'amount' is required"]


def test_field_that_the_model_ignores() -> None:
    text = BASE.replace('model: flat, amount: "1.00"', 'model: per_unit, unit_amount: "1", amount: "3"')
    assert errors(text) == ["bad.yaml:12: plans.free.prices[0].amount: 'amount' has no meaning for a per_unit price"]


def test_malformed_yaml_names_the_line() -> None:
    text = BASE + '      - {id: broken, model: flat, amount: "1"\n'
    (message,) = errors(text)
    # Line 13, the unclosed one: the parser notices at the end of the text, a line no editor shows.
    assert message.startswith("bad.yaml:13: (document): malformed YAML")


def test_not_a_mapping() -> None:
    assert errors("- a\n- b\n") == ["bad.yaml:1: (document): a catalog is a mapping with catalog, currency and plans"]


def test_unknown_currency() -> None:
    assert errors(BASE.replace("USD", "USB")) == ["bad.yaml:2: currency: 'USB' is not an ISO 4217 currency we know"]


def test_missing_file() -> None:
    with pytest.raises(DocumentError, match="nope.yaml:1: .*no such file"):
        load_catalog("nope.yaml")


@pytest.mark.parametrize("path", ["catalogs/saas.yaml", "catalogs/content.yaml", "catalogs/payments.yaml"])
def test_shipped_catalogs_validate(path: str) -> None:
    catalog = load_catalog(path)
    assert catalog.plans


def test_yaml_booleans_are_only_true_and_false() -> None:
    # Norway's code must stay a string (YAML 1.1 would read NO as false).
    text = BASE.replace("catalog: t", "catalog: t\ntaxes: {NO: 25, ON: 13}")
    catalog = load_catalog_text(text, "ok.yaml")
    assert catalog.taxes == {"NO": 25, "ON": 13}
    assert load_catalog_text(BASE + "    trial_days: 0\n", "ok.yaml").plans["free"].trial_days == 0
