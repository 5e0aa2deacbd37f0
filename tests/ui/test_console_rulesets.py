"""Rulesets in the console: drafts checked against the published catalogs (errors and lint by
line and field), the toggle form, the diff, publish through the rules runtime with who and
why, and rollback."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from engine import rules, sales
from engine.clock import SystemClock, TestClock
from engine.console import ConsoleError, publish, rollback, save_draft
from engine.console.yaml_edit import load
from engine.system.console_operations import console_operations
from engine.users import list_audit
from tests.ui.conftest import open_source, page, texts

ACCESS = Path("rules/access.yaml").read_text()
PUBLISHER = {"name": "publisher", "role": "publisher"}


def edit(at, text: str):  # type: ignore[no-untyped-def]
    at.text_area(key="editor_text").input(text).run()
    assert not at.exception, at.exception
    return at


def ruleset_editor(at, label: str = "file: access.yaml"):  # type: ignore[no-untyped-def]
    page(at, "Editor")
    at.radio(key="editor_kind").set_value("ruleset").run()
    return open_source(at, label)


def publish_page(at, comment: str):  # type: ignore[no-untyped-def]
    page(at, "Publish & history")
    at.radio(key="pub_kind").set_value("ruleset").run()
    at.selectbox(key="pub_draft").select("access").run()
    at.text_input(key="pub_comment").input(comment)
    if [c for c in at.checkbox if c.key == "pub_accept"]:
        at.checkbox(key="pub_accept").check()
    at.button(key="pub_go").click().run()
    assert not at.exception, at.exception
    return at


def live_rules(db) -> list[tuple[int, str, str, list[str]]]:  # type: ignore[no-untyped-def]
    with db.read_session() as s:
        return [(r.version, r.author, r.comment, r.rules) for r in rules.ruleset_history(s, "access")]


def test_ruleset_checks_by_line_and_field(app, console_db) -> None:  # type: ignore[no-untyped-def]
    with console_db.session() as s:
        sales.publish_catalog(s, "catalogs/saas.yaml", "test", clock=SystemClock())
    at = ruleset_editor(app("editor"))
    assert "Valid: ruleset access: 3 rules on 1 events" in texts(at, "success")
    lines = ACCESS.splitlines()
    # A feature the published catalogs do not have: an error with its line and field.
    bad = ACCESS.replace("{feature: beta_ai}", "{feature: teleport}")
    edit(at, bad)
    assert any("1 error(s)" in e for e in texts(at, "error"))
    # The line of partner-beta's `when:`, the field the problem names.
    rule = next(i for i, x in enumerate(lines) if "id: partner-beta" in x)
    line = next(i for i, x in enumerate(lines[rule:], rule + 1) if x.strip() == "when:")
    assert any(
        f"**line {line}** · rule 2 › when (`rules[1].when`) · Error: unknown feature 'teleport'" in m for m in texts(at, "markdown")
    )
    # Lint: a condition that can never hold is an error; comparing text with gt a warning.
    never = ACCESS.replace("- {feature: beta_ai}", "- {feature: beta_ai}\n        - {quantity: {gt: 5, lt: 3}}")
    edit(at, never)
    assert any("(`rules[1].when`) · Error: this condition can never hold" in m for m in texts(at, "markdown"))
    text_cmp = ACCESS.replace(
        "- {feature: data_export}\n", '- {feature: data_export}\n        - {quantity: {gt: "5"}}\n'
    )
    edit(at, text_cmp)
    assert any("1 lint warning(s)" in w for w in texts(at, "warning"))
    assert any("Warning: quantity gt '5' compares text" in m for m in texts(at, "markdown"))
    # The fix: valid again; a draft that does not parse is a message, not a stack trace.
    edit(at, "ruleset: access\nrules: [\n")
    assert any("malformed YAML" in m for m in texts(at, "markdown"))
    edit(at, ACCESS)
    assert "Valid: ruleset access: 3 rules on 1 events" in texts(at, "success")
    assert not at.exception


def test_publish_toggle_and_rollback(app, console_db) -> None:  # type: ignore[no-untyped-def]
    with console_db.session() as s:
        sales.publish_catalog(s, "catalogs/saas.yaml", "test", clock=SystemClock())
    at = ruleset_editor(app("publisher"))
    at.button(key="save_draft").click().run()
    assert "Saved draft access." in texts(at, "success")
    # No comment: nothing is published.
    publish_page(at, "")
    assert any("comment: say why" in e for e in texts(at, "error"))
    assert live_rules(console_db) == []
    publish_page(at, "access policies")
    assert "Published access v1." in texts(at, "success")
    assert live_rules(console_db) == [
        (1, "publisher", "access policies", ["suspended-read-only", "partner-beta", "export-while-suspended"])
    ]
    # Toggle a rule off in the form, save: the diff shows it, publishing makes it v2.
    ruleset_editor(at, "draft: access (saved by publisher)")
    at.selectbox(key="f_rule_id").select("partner-beta").run()
    at.button(key="f_rule_toggle").click().run()
    text = at.text_area(key="editor_text").value
    assert [r.get("enabled", True) for r in load(text)["rules"]] == [True, False, True]
    assert "Valid: ruleset access: 3 rules on 1 events, 1 disabled" in texts(at, "success")
    at.button(key="save_draft").click().run()
    publish_page(at, "partner beta paused")
    diff = next(c.value for c in at.code if "enabled: false" in c.value)
    assert "+    enabled: false" in diff
    assert "Published access v2." in texts(at, "success")
    with console_db.read_session() as s:
        live = rules.ruleset_version(s, "access")
        assert live.version == 2 and "enabled: false" in live.source
    # The same text again: nothing new.
    publish_page(at, "again")
    assert any("nothing to publish: version 2" in e for e in texts(at, "error"))
    # History lists both with their diffs; roll back to v1.
    at.selectbox(key="hist_ruleset").select("access").run()
    assert any("enabled: false" in c.value for c in at.code)
    at.selectbox(key="rb_version").select(1)
    at.text_input(key="rb_why").input("partners need the beta back")
    at.button(key="rb_go").click().run()
    assert not at.exception, at.exception
    assert "Rolled back: v3 now has the content of v1." in texts(at, "success")
    with console_db.read_session() as s:
        v1, v3 = rules.ruleset_version(s, "access", 1), rules.ruleset_version(s, "access", 3)
        assert (v3.source, v3.rollback_of, v3.author) == (v1.source, 1, "publisher")
        audit = [(a["action"], a["kind"], a["user"], a["version"], a["why"]) for a in list_audit(s, "access")]
    assert audit == [
        ("rollback", "ruleset", "publisher", 3, "partners need the beta back"),
        ("publish", "ruleset", "publisher", 2, "partner beta paused"),
        ("publish", "ruleset", "publisher", 1, "access policies"),
    ]


def test_roles_and_refusals(app, console_db) -> None:  # type: ignore[no-untyped-def]
    clock = TestClock(datetime(2026, 11, 1, tzinfo=UTC))
    with console_db.session() as s:
        sales.publish_catalog(s, "catalogs/saas.yaml", "test", clock=clock)
        save_draft(s, {"name": "editor", "role": "editor"}, "ruleset", "access", ACCESS, ops=console_operations(), clock=clock)
    at = app("editor")
    page(at, "Publish & history")
    at.radio(key="pub_kind").set_value("ruleset").run()
    assert any("Publishing needs the publisher role" in w for w in texts(at, "warning"))
    assert not [b for b in at.button if b.key == "pub_go"]
    with console_db.session() as s:
        bad = ACCESS.replace("{feature: beta_ai}", "{feature: teleport}")
        for text, message in ((bad, "1 error(s)"), (ACCESS.replace("ruleset: access", "ruleset: [x"), "error(s)")):
            try:
                publish(s, PUBLISHER, "ruleset", text, "why", ops=console_operations(), clock=clock)
            except ConsoleError as exc:
                assert message in str(exc)
            else:
                raise AssertionError("published a bad ruleset")
        try:
            rollback(s, PUBLISHER, "access", 1, "why", kind="ruleset", ops=console_operations(), clock=clock)
        except ConsoleError as exc:
            assert "no published version" in str(exc)
        else:
            raise AssertionError("rolled back nothing")
    assert live_rules(console_db) == []


def test_lifecycle_refuses_a_ruleset_draft_with_errors(app, console_db) -> None:  # type: ignore[no-untyped-def]
    broken = (
        Path("rules/dunning.yaml").read_text().replace("retry_payment: {after: 1d}", "retry_payment: {after: soon}")
    )
    with console_db.session() as s:
        save_draft(s, {"name": "editor", "role": "editor"}, "ruleset", "dunning", broken, ops=console_operations())
    at = open_source(app("editor"), "file: saas.yaml")
    page(at, "Simulate")
    at.radio(key="sim_source").set_value("CSV").run()
    at.text_area(key="sim_csv_text").input("customer_id,plan\na,pro\n")
    at.radio(key="sim_view").set_value("Lifecycle (collection, dunning)").run()
    assert any("Rulesets (files in" in m and "dunning" in m for m in texts(at, "markdown"))
    at.multiselect(key="life_rulesets").select("dunning")
    at.button(key="life_run").click().run()
    assert not at.exception, at.exception
    assert "Ruleset draft 'dunning' has errors: fix it in the Editor first." in texts(at, "error")
    assert "life_result" not in at.session_state
