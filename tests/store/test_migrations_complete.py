"""The migrations build exactly the schema the models declare: a table or column added to a
model without a migration fails here, not on a user's database."""

from __future__ import annotations

from pathlib import Path

import pytest

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
