"""`billing lint`: each kind of mistake is found; the shipped files are clean."""

from __future__ import annotations

from pathlib import Path

from engine.rules import lint_paths

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_rules_and_catalogs_are_clean() -> None:
    assert [str(p) for p in lint_paths([ROOT / "rules", ROOT / "catalogs"], ROOT / "templates")] == []


def lint(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "r.yaml").write_text(text)
    return [str(p) for p in lint_paths([tmp_path / "r.yaml", ROOT / "catalogs" / "saas.yaml"], ROOT / "templates")]


def test_conditions_that_can_never_hold(tmp_path: Path) -> None:
    found = lint(tmp_path, """\
ruleset: t
rules:
  - {id: range, on: a.b, when: {all: [{usage.api_calls: {gt: 5}}, {usage.api_calls: {lt: 3}}]}, then: [{allow: {}}]}
  - {id: two-values, on: a.b, when: {customer.segment: edu, all: [{customer.segment: gov}]}, then: [{allow: {}}]}
  - {id: in-vs-eq, on: a.b, when: {all: [{plan: {in: [pro, free]}}, {plan: {not_in: [pro, free]}}]}, then: [{allow: {}}]}
  - {id: gone, on: a.b, when: {all: [{customer.x: {exists: false}}, {customer.x: {gte: 1}}]}, then: [{allow: {}}]}
  - {id: types, on: a.b, when: {customer.x: {gt: 1, matches: "a+"}}, then: [{allow: {}}]}
  - {id: any-dead, on: a.b, when: {any: [{customer.n: {gt: 2, lte: 2}}, {customer.n: {gte: 9, lt: 9}}]}, then: [{allow: {}}]}
  - {id: fine, on: a.b, when: {any: [{customer.n: {gt: 2, lte: 2}}, {customer.n: 9}]}, then: [{allow: {}}]}
""")
    never = [p for p in found if "can never hold" in p]
    assert [p.split(":")[2].strip() for p in never] == [f"rules[{i}].when" for i in range(6)]


def test_duplicates_unknown_references_schedules_with_on_and_shadowed_allows(tmp_path: Path) -> None:
    found = "\n".join(lint(tmp_path, """\
ruleset: t
rules:
  - {id: deny-all-beta, on: access.check, priority: 5, when: {feature: beta_ai}, then: [{deny: {}}]}
  - {id: partner-beta, on: access.check, when: {all: [{feature: beta_ai}, {customer.tags: {contains: partner}}]}, then: [{allow: {}}]}
  - {id: partner-beta, on: access.check, then: [{notify: {template: nope}}]}
  - {id: sched, on: a.b, schedule: "0 6 * * *", for_each: invoice, then: [{apply_coupon: {code: NOPE}}]}
  - {id: cmp, on: a.b, when: {invoice.total: {gt: "100"}}, then: [{allow: {}}]}
"""))
    assert "r.yaml:5: rules[2].id: duplicate rule id 'partner-beta'" in found
    assert "unknown template 'nope'" in found
    assert "unknown coupon 'NOPE'" in found
    assert "rules[3].schedule: a rule has either `on` (an event) or `schedule` + `for_each`, not both" in found
    fixed = "\n".join(lint(tmp_path, """\
ruleset: t
rules:
  - {id: deny-all-beta, on: access.check, priority: 5, when: {feature: beta_ai}, then: [{deny: {}}]}
  - {id: partner-beta, on: access.check, when: {all: [{feature: beta_ai}, {customer.tags: {contains: partner}}]}, then: [{allow: {}}]}
  - {id: other, on: access.check, when: {feature: sso}, then: [{allow: {}}]}
  - {id: cmp, on: a.b, when: {invoice.total: {gt: "100"}}, then: [{allow: {}}]}
"""))
    assert "rules[1]: rule 'partner-beta' never takes effect: the earlier rule 'deny-all-beta' denies" in fixed
    assert "'other' never" not in fixed
    assert "warning: invoice.total gt '100' compares text" in fixed


def test_duplicate_ruleset_names_and_missing_catalog(tmp_path: Path) -> None:
    text = "ruleset: t\nrules:\n  - {id: a, on: a.b, then: [{allow: {}}]}\n"
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    found = [str(p) for p in lint_paths([tmp_path], None)]
    assert any("b.yaml:1: ruleset: duplicate ruleset name 't'" in p for p in found)
    assert any("warning: no catalog given" in p for p in found)
