"""Checker findings in plain words: where, in the document's terms, and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.console.drafts import check_draft
from engine.console.plain import plain, where
from engine.documents import Problem

SAAS = (Path(__file__).resolve().parents[2] / "catalogs" / "saas.yaml").read_text()


def test_where_reads_as_the_catalog_is_organised() -> None:
    assert where("plans.pro.prices[2].tiers[0].up_to") == "plan pro › price 3 › tier 1 › up to"
    assert where("coupons.WELCOME20.expires") == "coupon WELCOME20 › expires"
    assert where("rules[1].then[0].notify.template") == "rule 2 › action 1 › notify › template"
    assert where("(document)") == "(document)"


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ("trial_days: 14", "trial_days: -3", "-3 is too small: the least allowed is 0"),
        (
            "interval: month",
            "interval: monthly",
            "'monthly' is not allowed here: choose one of day, week, month, year, once",
        ),
        (
            '{up_to: 10000, unit_amount: "0"}',
            '{up_to: ten, unit_amount: "0"}',
            "'ten' is not written as expected: a number such as 1000 (digits, maybe a decimal point)",
        ),
        ("name: Pro\n", "nme: Pro\n", "'nme' is not a field here: a typo, or in the wrong place?"),
        ("expires: 2027-01-31", "expires: 2027-13-31", "'2027-13-31' is not a valid date (write dates as YYYY-MM-DD)"),
        ("percent_off: 20", "percent_off: 120", "120 is too large: the most allowed is 100"),
    ],
)
def test_schema_errors_in_plain_words_at_their_line(old: str, new: str, said: str) -> None:
    text = SAAS.replace(old, new, 1)
    line = next(n for n, x in enumerate(text.splitlines(), 1) if new.strip() in x)
    found = [(p.line, p.message) for p in map(plain, check_draft("catalog", text).errors)]
    assert (line, said) in found
    assert not any("schema" in m for _, m in found)


def test_none_of_the_forms_gets_a_hint_for_its_field() -> None:
    p = Problem("x", 3, "plans.pro.entitlements.api", "{'lim': 3} is not valid under any of the given schemas")
    assert plain(p).message == (
        "this value has the wrong form: write true or false, a number, or {limit: N, period: month, overage: block}"
    )
    q = Problem("x", 3, "plans.pro.colour", "5 is not valid under any of the given schemas")
    assert plain(q).message == "this value has none of the forms allowed here"
    assert plain(Problem("x", 1, "catalog", "5 is not of type 'string'")).message == "5 should be text"


def test_a_wrongly_typed_entitlement_names_every_form_it_may_take() -> None:
    """The checker reports the first branch it tried (boolean): wrong for a quantity feature."""
    p = Problem("x", 57, "plans.pro.entitlements.projects", "2.5 is not of type 'boolean'")
    assert plain(p).message == (
        "this value has the wrong form: write true or false, a number, or {limit: N, period: month, overage: block}"
    )
    limit = Problem("x", 59, "plans.pro.entitlements.api.limit", "'x' is not of type 'integer'")
    assert plain(limit).message == "'x' should be a whole number"  # a field inside keeps its own words
