"""Shared fixtures. Services (PostgreSQL, RabbitMQ) are real; when one is missing the test
skips, unless BILLING_REQUIRE_SERVICES=1 (CI), where it fails."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from engine.clock import TestClock
from engine.store import Database

REQUIRE_SERVICES = os.environ.get("BILLING_REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get("BILLING_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
RABBIT_URL = os.environ.get("BILLING_TEST_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/")


def service_missing(what: str, why: str) -> None:
    """Skip locally, fail in CI: a green CI must never hide an untested integration."""
    message = f"{what} is not reachable ({why})"
    if REQUIRE_SERVICES:
        pytest.fail(message + " and BILLING_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_server() -> str:
    if not _port_open("127.0.0.1", 5432):
        service_missing("PostgreSQL at 127.0.0.1:5432", "connection refused")
    return PG_ADMIN_URL


def create_pg_database(admin_url: str) -> str:
    """A fresh database per test session: parallel runs and helpers never share tables."""
    import sqlalchemy as sa

    name = f"billing_test_{secrets.token_hex(4)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(admin_url: str, url: str) -> None:
    import sqlalchemy as sa

    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def pg_url(pg_server: str) -> Iterator[str]:
    url = create_pg_database(pg_server)
    yield url
    drop_pg_database(pg_server, url)


@pytest.fixture
def sqlite_db(tmp_path) -> Iterator[Database]:  # type: ignore[no-untyped-def]
    db = Database(f"sqlite:///{tmp_path}/billing.db")
    db.migrate()
    yield db
    db.dispose()


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    db = Database(pg_url)
    db.migrate()  # the migrations run once per database: at the latest one, nothing to do
    empty_tables(db)
    yield db
    db.dispose()


def empty_tables(db: Database) -> None:
    """Every row of every table gone, the migrated schema kept (a test starts empty)."""
    import sqlalchemy as sa

    names = [n for n in sa.inspect(db.engine).get_table_names() if n != "alembic_version"]
    if names:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE " + ", ".join(f'"{n}"' for n in names) + " RESTART IDENTITY CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> Database:
    """The same test on both backends: SQLite always, PostgreSQL where it runs."""
    name = "sqlite_db" if request.param == "sqlite" else "pg_db"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def rabbit_url() -> str:
    if not _port_open("127.0.0.1", 5672):
        service_missing("RabbitMQ at 127.0.0.1:5672", "connection refused")
    return RABBIT_URL


@pytest.fixture
def clock() -> TestClock:
    return TestClock(datetime(2026, 1, 1, tzinfo=UTC))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order the files run in. Under `--dist loadfile` each file runs whole on one of
    the two workers, in this order (pyproject turns xdist's own reordering off): xdist puts
    the files with most tests first, which leaves the one-test files of several minutes
    (the browser runs, schemathesis) for last, where one keeps a worker busy alone while the
    other has nothing left. So the files marked slow start first, in the order collected;
    then the others, most tests first, as xdist would order them."""
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)

    def weight(tests: list[pytest.Item]) -> tuple[bool, int]:
        slow = tests[0].get_closest_marker("slow") is not None
        return (not slow, 0 if slow else -len(tests))

    items[:] = [item for tests in sorted(files.values(), key=weight) for item in tests]
