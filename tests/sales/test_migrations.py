"""Alembic: the initial revision builds the schema the models describe, on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from engine.store import Base, Database
from engine.store.migrate import current, upgrade


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/migrated.db"
    from tests.conftest import create_pg_database, drop_pg_database

    admin = request.getfixturevalue("pg_server")
    url = create_pg_database(admin)
    request.addfinalizer(lambda: drop_pg_database(admin, url))
    return url


def test_upgrade_creates_the_sales_tables_and_is_idempotent(empty_url: str) -> None:
    import engine.sales.models  # noqa: F401  (registers the tables on Base)

    assert upgrade(empty_url) is not None
    head = upgrade(empty_url)  # again: nothing to do
    db = Database(empty_url)
    try:
        inspector = inspect(db.engine)
        tables = set(inspector.get_table_names())
        sales = {t for t in Base.metadata.tables if t.startswith("sales_")}
        assert sales and sales <= tables
        assert "outbox_events" in tables and "alembic_version" in tables
        for name in sales:
            migrated = {c["name"] for c in inspector.get_columns(name)}
            assert migrated == set(Base.metadata.tables[name].columns.keys()), name
        uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("sales_invoices")}
        assert ("subscription_id", "billing_key") in uniques
    finally:
        db.dispose()
    assert head == current(empty_url)
