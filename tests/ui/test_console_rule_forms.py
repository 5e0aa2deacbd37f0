"""The access-rule and notification-rule forms of the Promotions page (AppTest) on bad input:
each problem marked right under its field in plain words, the draft's YAML unchanged, nothing
saved or published."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Error, Widget

from engine.config import get_settings
from engine.console import rulesets as crules
from engine.console import store as cstore
from engine.store import Database
from tests.ui.conftest import page, texts
from tests.ui.test_builders import click, fill, open_file, yaml


def marked_under(at: AppTest, key: str) -> list[str]:
    """The messages drawn right after the field `key`: its problems, in place."""
    nodes = list(at.main)
    field = next(i for i, n in enumerate(nodes) if isinstance(n, Widget) and n.key == key)
    out = []
    for n in nodes[field + 1 :]:
        if not isinstance(n, Error):
            break
        out.append(n.value)
    return out


def published(db: Database) -> tuple[dict[str, int], list[dict[str, object]]]:
    with db.read_session() as s:
        return crules.published_rulesets(s), cstore.list_drafts(s, "ruleset")


def test_an_access_rule_without_a_tag_is_marked_and_not_written(app, console_db: Database) -> None:  # type: ignore[no-untyped-def]
    before = published(console_db)
    at = page(app("editor"), "Promotions")
    at.radio(key="pr_form").set_value("Access rule").run()
    open_file(at, "pr_source_ruleset", "file: access.yaml")
    original = yaml(at)
    at.selectbox(key="ac_feature").select("audit_log")
    fill(at, ac_id="edu-audit", ac_tag="   ")
    click(at, "ac_write")
    assert marked_under(at, "ac_tag") == ["give the customer tag that unlocks it"]
    assert marked_under(at, "ac_id") == [] and marked_under(at, "ac_feature") == []
    assert "Not written: 1 problem(s), marked above." in texts(at, "error")
    assert not texts(at, "success")
    assert yaml(at) == original
    assert published(console_db) == before
    # The tag given: written, and the mark is gone.
    fill(at, ac_tag="edu")
    click(at, "ac_write")
    assert "Access rule written to the draft's YAML." in texts(at, "success")
    assert marked_under(at, "ac_tag") == []
    assert "id: edu-audit" in yaml(at) and "{customer.tags: {contains: edu}}" in yaml(at)


def test_a_notification_rule_without_a_channel_is_marked_and_not_written(app, console_db: Database) -> None:  # type: ignore[no-untyped-def]
    before = published(console_db)
    at = page(app("editor"), "Promotions")
    at.radio(key="pr_form").set_value("Notification rule").run()
    open_file(at, "pr_source_ruleset", "file: notifications.yaml")
    original = yaml(at)
    at.selectbox(key="nt_event").select("invoice.paid")
    at.multiselect(key="nt_channels").unselect("email")
    fill(at, nt_id="thanks")
    click(at, "nt_write")
    assert marked_under(at, "nt_channels") == ["pick at least one channel"]
    assert marked_under(at, "nt_template") == []
    assert "Not written: 1 problem(s), marked above." in texts(at, "error")
    assert yaml(at) == original
    assert published(console_db) == before


@pytest.fixture
def no_templates(tmp_path, monkeypatch) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """A deployment whose templates directory holds none yet."""
    (tmp_path / "templates").mkdir()
    monkeypatch.setenv("BILLING_TEMPLATES_DIR", str(tmp_path / "templates"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_notification_rule_without_a_template_is_marked_and_not_written(  # type: ignore[no-untyped-def]
    app, console_db: Database, no_templates: None
) -> None:
    before = published(console_db)
    at = page(app("editor"), "Promotions")
    at.radio(key="pr_form").set_value("Notification rule").run()
    open_file(at, "pr_source_ruleset", "file: notifications.yaml")
    original = yaml(at)
    assert at.selectbox(key="nt_template").options == []
    at.multiselect(key="nt_channels").unselect("email")
    fill(at, nt_id="thanks")
    click(at, "nt_write")
    assert marked_under(at, "nt_template") == ["pick the message template"]
    assert marked_under(at, "nt_channels") == ["pick at least one channel"]
    assert "Not written: 2 problem(s), marked above." in texts(at, "error")
    assert yaml(at) == original
    assert published(console_db) == before
