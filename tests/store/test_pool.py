"""A process's PostgreSQL connections: the pool the settings give, and a `billing` command run
inside a long-lived process (the tests run it in theirs) handing its connections back to the
server when it ends (docs/events.md, *PostgreSQL connections*)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.config import Settings
from engine.store import database_of
from tests.cli.runner import invoke
from tests.conftest import create_pg_database, drop_pg_database

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh(pg_server: str) -> Iterator[str]:
    url = create_pg_database(pg_server)
    yield url
    drop_pg_database(pg_server, url)


def connections(admin_url: str, url: str) -> int:
    admin = sa.create_engine(admin_url, poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"), {"d": url.rsplit("/", 1)[1]}
                ).scalar_one()
            )
    finally:
        admin.dispose()


def test_the_pool_is_the_settings(fresh: str) -> None:
    db = database_of(Settings(database_url=fresh, database_pool_size=3, database_max_overflow=4))
    try:
        assert (db.engine.pool.size(), db.engine.pool._max_overflow) == (3, 4)  # type: ignore[attr-defined]
    finally:
        db.dispose()
    production = database_of(Settings(database_url=fresh))
    assert production.engine.pool.size() == 10  # the documented default (README, Configuration)
    production.dispose()


def test_commands_run_in_a_process_leave_no_connection_open(pg_server: str, fresh: str) -> None:
    env = {"BILLING_DATABASE_URL": fresh, "PATH": "/usr/bin:/bin"}
    for argv in (
        ["migrate"],
        ["publish", "catalogs/saas.yaml", "rules/"],
        ["apikey", "create", "--scope", "admin"],
        ["apikey", "list"],
        ["reconcile-lines"],
    ):
        done = invoke(*argv, env=env, cwd=ROOT)
        assert done.returncode == 0, (argv, done.stderr)
        assert connections(pg_server, fresh) == 0, argv
