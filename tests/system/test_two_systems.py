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
        database_url=f"sqlite:///{tmp_path}/{name}.db",
        test_clock=start.isoformat(),
        psp_url=f"http://127.0.0.1:9/{name}",
        psp_api_key="sk_test",
        psp_webhook_secret=f"whsec_{name}",
        templates_dir=str(templates),
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


def test_the_same_version_number_of_different_catalogs_prices_apart(two: tuple[System, System], tmp_path: Path) -> None:
    """Each database holds its own version 1 of the catalog (pro at 49 in one, 59 in the
    other): each system prices with its own, though both built a catalog in this process
    (the process keeps built catalogs by content, not by version)."""
    dearer = tmp_path / "saas.yaml"
    dearer.write_text(CATALOG.read_text().replace('amount: "49.00"', 'amount: "59.00"', 1))
    totals = []
    for system, catalog in zip(two, (CATALOG, dearer), strict=True):
        with system.db.session() as s:
            assert sales.publish_catalog(s, catalog, "test", clock=system.clock).version == 1
            sales.create_customer(s, {"id": "cus_1", "email": "a@example.com", "name": "A"}, clock=system.clock)
            totals.append(sales.create_subscription(s, "cus_1", "pro", clock=system.clock, trial_days=0))
    assert [t["document"]["total"] for t in totals] == ["59.00", "69.00"]  # base fee and one seat
    for system, base in zip(two, ("49.00", "59.00"), strict=True):
        with system.db.read_session() as s:  # a new session: the catalog comes from the process
            version_id = totals[0]["catalog_version_id"]
            assert version_id == totals[1]["catalog_version_id"]
            assert str(sales.catalog_for_version(s, version_id).plan("pro").prices[0].amount) == base
