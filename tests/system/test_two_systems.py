"""Two systems in one process (the demo seed's replay beside the live one, the lifecycle
what-if's throwaway engines): each owns its clock, payment service, rules engine and
templates, so nothing one does reaches the other."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine import sales
from engine.config import Settings
from engine.rules import publish_ruleset
from engine.system import SubsystemEffects, System, build_system

CATALOG = Path("catalogs/saas.yaml")


def settings(tmp_path: Path, name: str, start: datetime, templates: Path | str = "templates") -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path}/{name}.db", test_clock=start.isoformat(), psp_url=f"http://127.0.0.1:9/{name}",
        psp_api_key="sk_test", psp_webhook_secret=f"whsec_{name}", templates_dir=str(templates),
    )


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[System, System]]:
    own = tmp_path / "templates" / "in_app" / "en"
    own.mkdir(parents=True)
    (own / "only_b.txt").write_text("{% block title %}B's own{% endblock %}{% block body %}from B{% endblock %}")
    a = build_system(settings(tmp_path, "a", datetime(2027, 1, 1, tzinfo=UTC)), automation=True)
    b = build_system(settings(tmp_path, "b", datetime(2030, 6, 1, tzinfo=UTC), tmp_path / "templates"), automation=True)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_clocks_do_not_leak(two: tuple[System, System]) -> None:
    a, b = two
    b_now = b.clock.now()
    a.advance_to(a.clock.now() + timedelta(days=3))
    assert a.clock.now() == datetime(2027, 1, 4, tzinfo=UTC)
    assert b.clock.now() == b_now == datetime(2030, 6, 1, tzinfo=UTC)


def test_each_owns_its_payment_service(two: tuple[System, System]) -> None:
    a, b = two
    assert a.payments is not None and b.payments is not None
    assert a.payments is not b.payments
    # Each collects on its own clock, through the provider its settings name.
    assert a.payments.now() == a.clock.now() and b.payments.now() == b.clock.now()
    assert a.payments.now() != b.payments.now()
    # And hands it to whatever collects: its automation (retries) and its scheduler's job.
    for system in two:
        assert system.automation is not None
        effects = system.automation.owners.effects
        assert isinstance(effects, SubsystemEffects) and effects.payments is system.payments
    assert "payments" in a.jobs.jobs and "payments" in b.jobs.jobs


def test_rules_versions_and_engines_do_not_leak(two: tuple[System, System]) -> None:
    a, b = two
    assert a.rules.durable is not None and a.rules.durable is not b.rules.durable
    with a.db.session() as s:
        sales.publish_catalog(s, CATALOG, "test", clock=a.clock)
        publish_ruleset(s, "rules/promotions.yaml", "test", smoke=False, clock=a.clock)
    assert a.sync_rules() and not b.sync_rules()
    assert "promotions" in a.rules.versions() and b.rules.versions() == {}
    assert b.rules.durable is not None and b.rules.durable.registered == 0 < a.rules.durable.registered
    # Automation and the quotes of each system read their own runtime.
    assert a.automation is not None and a.automation.runtime is a.rules
    assert a.promotions.runtime is a.rules and b.promotions.runtime is b.rules


def test_rendered_templates_do_not_leak(two: tuple[System, System]) -> None:
    a, b = two
    assert b.renderer is not a.renderer
    rendered = b.renderer.render("only_b", "in_app", {}, "en")
    assert (rendered.title, rendered.body) == ("B's own", "from B")
    with pytest.raises(Exception, match="only_b"):
        a.renderer.render("only_b", "in_app", {}, "en")
    # What each system's rules send renders with that system's templates.
    for system in two:
        assert system.automation is not None
        effects = system.automation.owners.effects
        assert isinstance(effects, SubsystemEffects) and effects.renderer is system.renderer
