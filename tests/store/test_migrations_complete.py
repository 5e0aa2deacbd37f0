"""The migrations build exactly the schema the models declare: a table or column added to a
model without a migration fails here, not on a user's database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.store import Database
from engine.store.migrate import check, upgrade


def test_migrations_match_every_model(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/migrated.db"
    upgrade(url)
    check(url)  # raises when autogenerate would add anything


@pytest.mark.postgres
def test_migrations_run_on_postgres(pg_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    engine.dispose()
    upgrade(pg_url)
    check(pg_url)


def test_a_migrated_database_has_exactly_the_models_schema(tmp_path: Path) -> None:
    """`Database.migrate` (a copy of the migrations' result, on an empty SQLite database)
    gives the schema the models declare, at the latest migration; `drop_all` empties it."""
    import engine.models  # noqa: F401  (every table on the metadata)
    from engine.store import Base
    from engine.store.migrate import current, head

    url = f"sqlite:///{tmp_path}/copied.db"
    db = Database(url)
    db.migrate()
    check(url)
    assert current(url) == head()
    tables = set(sa_inspect(db).get_table_names())
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    db.drop_all()
    assert sa_inspect(db).get_table_names() == []
    db.migrate()  # starts over
    assert current(url) == head()
    db.dispose()


def test_a_database_that_is_not_migrated_names_billing_migrate(tmp_path: Path) -> None:
    from engine.config import Settings
    from engine.store.migrate import NotMigrated
    from engine.system import build_system

    url = f"sqlite:///{tmp_path}/empty.db"
    with pytest.raises(NotMigrated, match="billing migrate"):
        build_system(Settings(database_url=url), create_tables=False)


ROOT = Path(__file__).resolve().parents[2]
# Tables of their own, not the engine's: a benchmark's or a test's scratch metadata.
OWN_METADATA = {"tests/events/events_support.py", "benchmarks/events.py", "benchmarks/ingest.py"}


def test_only_the_migrations_create_tables() -> None:
    """Every table of the engine is made by the migrations (engine/store): nothing else in
    the engine, the console, the tests or the benchmarks calls `create_all`."""
    found = []
    for folder in ("engine", "ui", "tests", "benchmarks", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name.startswith("engine/store/") or name in OWN_METADATA or path == Path(__file__).resolve():
                continue
            text = path.read_text(encoding="utf-8")
            if "create_all(" in text or "ensure_tables(" in text or "create_tables(" in text:
                found.append(name)
    assert found == []


def sa_inspect(db: Database) -> Any:
    import sqlalchemy as sa

    return sa.inspect(db.engine)


def test_migrate_brings_an_older_database_to_the_latest_migration(tmp_path: Path) -> None:
    from engine.store.migrate import current, head

    url = f"sqlite:///{tmp_path}/older.db"
    upgrade(url, "0007_late_usage")
    db = Database(url)
    db.migrate()  # not empty: the migrations that are missing run on it
    assert current(url) == head()
    db.dispose()
    check(url)


def test_a_database_already_at_0012_upgrades_to_the_books(tmp_path: Path) -> None:
    """The books were reverted once and brought back as 0015: a database migrated while they
    were out (at 0012) gets their table on the next upgrade, one head, nothing else changed."""
    from engine.store.migrate import current, head

    url = f"sqlite:///{tmp_path}/at0012.db"
    upgrade(url, "0012_payment_method_last4")
    db = Database(url)
    assert "pay_revenue_schedule" not in sa_inspect(db).get_table_names()
    db.dispose()
    upgrade(url)
    assert current(url) == head() == "0019_wallet_levels"
    db = Database(url)
    assert "pay_revenue_schedule" in sa_inspect(db).get_table_names()
    db.dispose()
    check(url)
