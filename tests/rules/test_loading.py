"""The rules format: schema and cross-check errors read `file:line: path: message`, a ruleset
with any error is rejected whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.documents import DocumentError
from engine.rules import References, load_ruleset, load_ruleset_text

ROOT = Path(__file__).resolve().parents[2]


def problems(text: str, refs: References | None = None) -> list[str]:
    with pytest.raises(DocumentError) as exc:
        load_ruleset_text(text, "r.yaml", refs)
    return [str(p) for p in exc.value.problems]


GOOD = """\
ruleset: t
rules:
  - id: a
    on: invoice.payment_failed
    when: {invoice.attempt: 1}
    then:
      - retry_payment: {after: 3d}
"""


def test_a_valid_ruleset_loads_with_on_read_as_a_field() -> None:
    rs = load_ruleset_text(GOOD, "r.yaml")
    assert rs.name == "t"
    assert rs.rules[0].on == ("invoice.payment_failed",)
    assert rs.rules[0].then[0].params == {"after": "3d"}
    assert len(rs.checksum) == 64


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("      - frobnicate: {x: 1}\n", "r.yaml:8: rules[0].then[1].frobnicate: unknown action 'frobnicate'"),
        ("      - retry_payment: {after: 3days}\n", "r.yaml:8: rules[0].then[1].retry_payment.after: '3days' does not match"),
        ("      - discount: {percent: 10, amount: '5.00'}\n", "r.yaml:8: rules[0].then[1].discount: give exactly one of amount, percent"),
        ("      - charge: {amount: 4.5}\n", "r.yaml:8: rules[0].then[1].charge.amount: 4.5 is a float"),
        ("      - notify: {template: x, channels: [fax]}\n", "r.yaml:8: rules[0].then[1].notify.channels[0]: 'fax' is not one of"),
    ],
)
def test_bad_actions_are_reported_with_file_line_and_path(snippet: str, expected: str) -> None:
    found = problems(GOOD + snippet)
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("{foo.bar: 1}", "unknown context path 'foo.bar'"),
        ("{customer.email: {matches: '(a'}}", "does not compile"),
        ("{customer.email: {matches: '\\\\d+'}}", "backslash escapes"),
        ("{customer.email: {matches: '^a'}}", "^ and $ are not needed"),
        ("{customer.n: {between: [1, 2]}}", "rules[0].when.customer.n"),
        ("{customer.n: {gt: true}}", "rules[0].when.customer.n"),
        ("{customer.n: {gt: 1.0e+20}}", "out of range"),
        ("{all: []}", "rules[0].when.all"),
    ],
)
def test_bad_conditions_are_reported(when: str, expected: str) -> None:
    text = GOOD.replace("{invoice.attempt: 1}", when)
    found = problems(text)
    assert any(expected in p for p in found), found
    assert all(p.startswith("r.yaml:") for p in found)


def test_malformed_cron_and_schedule_rules() -> None:
    text = """\
ruleset: t
rules:
  - id: a
    schedule: "61 6 * * *"
    for_each: invoice
    then: [{set_dunning_state: {state: warning}}]
  - id: b
    on: invoice.paid
    schedule: "0 6 * * *"
    for_each: invoice
    then: [{set_dunning_state: {state: active}}]
  - id: c
    schedule: "0 6 * * *"
    then: [{set_dunning_state: {state: limbo}}]
  - id: a
    then: [{allow: {}}]
"""
    found = problems(text)
    joined = "\n".join(found)
    assert "r.yaml:4: rules[0].schedule: '61 6 * * *' is not a cron expression" in joined
    assert "r.yaml:9: rules[1].schedule: a rule has either `on`" in joined
    assert "rules[2].schedule: a scheduled rule needs `for_each`" in joined
    assert "rules[2].then[0].set_dunning_state.state: unknown dunning state 'limbo'" in joined
    assert "r.yaml:15: rules[3].id: duplicate rule id 'a' (also rules[0])" in joined
    assert "rules[3]: a rule needs `on`" in joined


def test_states_named_by_the_ruleset_are_known() -> None:
    text = GOOD.replace("ruleset: t\n", "ruleset: t\nstates: [limbo]\n").replace(
        "retry_payment: {after: 3d}", "set_dunning_state: {state: limbo}")
    assert load_ruleset_text(text).rules[0].then[0].params["state"] == "limbo"


def test_a_file_that_is_not_a_mapping_or_not_yaml() -> None:
    assert problems("- just\n- a list\n") == ["r.yaml:1: (document): a ruleset is a mapping with ruleset and rules"]
    assert "malformed YAML" in problems("ruleset: [\n")[0]
    assert problems("ruleset: t\nrules: []\n")[0].startswith("r.yaml:2: rules:")


def test_references_are_checked_against_catalog_and_templates(refs: References) -> None:
    text = """\
ruleset: t
rules:
  - id: a
    on: price.calculate
    when: {all: [{plan: platinum}, {usage.gpu_minutes: {gt: 5}}, {feature: teleport}]}
    then:
      - discount: {percent: 10, prices: [nope]}
      - apply_coupon: {code: FREEBIE}
      - notify: {template: no_such_template}
      - deny: {offer: {plan: gold, coupon: WELCOME20}}
"""
    joined = "\n".join(problems(text, refs))
    for expected in ("unknown plan 'platinum'", "unknown metric 'gpu_minutes'", "unknown feature 'teleport'",
                     "rules[0].then[0].discount.prices[0]: unknown price 'nope'",
                     "rules[0].then[1].apply_coupon.code: unknown coupon 'FREEBIE'",
                     "rules[0].then[2].notify.template: unknown template 'no_such_template'",
                     "rules[0].then[3].deny.offer.plan: unknown plan 'gold'"):
        assert expected in joined, joined
    assert "unknown coupon 'WELCOME20'" not in joined  # a known coupon is fine
    assert "'en'" not in joined  # locale directories are not templates


def test_valid_dates_and_their_order() -> None:
    text = GOOD.replace("    on: invoice", "    valid_from: 2026-12-01\n    valid_until: 2026-11-01\n    on: invoice")
    assert any("valid_until: ends before it starts" in p for p in problems(text))


def test_shipped_rulesets_load_against_the_shipped_catalogs(refs: References) -> None:
    for name in ("promotions", "access", "dunning", "notifications"):
        rs = load_ruleset(ROOT / "rules" / f"{name}.yaml", refs)
        assert rs.name == name and rs.rules
