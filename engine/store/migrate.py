"""Database migrations (Alembic): `billing migrate` calls `upgrade`.

    from engine.store.migrate import upgrade
    upgrade("sqlite:///./billing.db")

The scripts live in engine/store/migrations/; `revision` autogenerates a new one from the
models of every subsystem present (see MODEL_MODULES in migrations/env.py).
"""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine

from engine.store.urls import normalise_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Migratable(Protocol):
    """What migrating needs of a database (engine.store.Database): its engine and URL.
    Named here rather than imported, since Database.migrate calls this module."""

    url: str

    @property
    def engine(self) -> Engine: ...


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> str | None:
    """Bring the database to `revision` (default: the latest). Returns the revision now
    current. Safe to run again: an up-to-date database is left as it is."""
    command.upgrade(alembic_config(database_url), revision)
    return current(database_url)


def migrate(db: Migratable) -> None:
    """Bring `db` to the latest migration: the one way the engine's tables are made.

    An empty SQLite database (a test's, a seed's, the console's what-if) gets a copy of a
    template the migrations built once in this process (running them takes ~1 s, the copy
    a few ms); any other database (PostgreSQL, an older SQLite file) runs the migrations.
    A database already at the latest migration is left as it is."""
    with db.engine.connect() as conn:
        if _revision(conn) == head():
            return
        if conn.dialect.name == "sqlite" and _sqlite_empty(conn):
            conn.rollback()  # the copy needs the connection outside a transaction
            _copy_template(conn)
            return
    with db.engine.begin() as conn:
        cfg = alembic_config(db.url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def require_migrated(db: Migratable) -> None:
    """Raise NotMigrated, saying to run `billing migrate`, unless `db` is at the latest
    migration: a process that only uses the tables stops with that, not with the driver's
    "no such table" at its first query."""
    with db.engine.connect() as conn:
        at = _revision(conn)
    if at == head():
        return
    shown = db.engine.url.render_as_string(hide_password=True)
    migrate = "run `billing migrate` first (with the same BILLING_DATABASE_URL)"
    if at is None:
        raise NotMigrated(f"the database {shown} is not migrated: {migrate}")
    raise NotMigrated(f"the database {shown} is at migration {at}, this engine needs {head()}: {migrate}")


_head: str | None = None


def head() -> str | None:
    """The latest migration's revision (read once per process)."""
    global _head
    if _head is None:
        from alembic.script import ScriptDirectory

        _head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    return _head


def _revision(conn: Any) -> str | None:
    from alembic.runtime.migration import MigrationContext

    try:
        return MigrationContext.configure(conn).get_current_revision()
    finally:
        conn.rollback()


class NotMigrated(RuntimeError):
    """The database is missing the engine's tables or is behind its migrations."""


_template: Path | None = None
_template_lock = threading.Lock()


def _sqlite_empty(conn: Any) -> bool:
    return conn.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE type = 'table'").scalar() == 0


def template() -> Path:
    """A SQLite file the migrations built, once per process (removed at exit)."""
    global _template
    with _template_lock:
        if _template is None:
            folder = Path(tempfile.mkdtemp(prefix="billing-schema-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            path = folder / "migrated.db"
            command.upgrade(alembic_config(f"sqlite:///{path}"), "head")
            _template = path
        return _template


def _copy_template(conn: Any) -> None:
    target = conn.connection.dbapi_connection
    source = sqlite3.connect(template())
    try:
        source.backup(target)
    finally:
        source.close()


def current(database_url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def not_migrated(database_url: str) -> str | None:
    """Why `database_url` is not at the latest migration, with what to do, in words for an
    operator; None when it is. A command that only reads the tables (a worker, `billing
    broker status`) would otherwise stop at the first missing table with the database
    driver's traceback. A SQLite file that does not exist is not created by asking."""
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    url = make_url(normalise_url(database_url))
    shown = make_url(database_url).render_as_string(hide_password=True)
    migrate = "run `billing migrate` first (with the same BILLING_DATABASE_URL)"
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not Path(url.database).exists():
            return f"the database {shown} does not exist: {migrate}"
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    try:
        at = current(database_url)
    except SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return f"the database {shown} cannot be read ({cause}): check BILLING_DATABASE_URL"
    if at is None:
        return f"the database {shown} is not migrated: {migrate}"
    if at != head:
        return f"the database {shown} is at migration {at}, this engine needs {head}: {migrate}"
    return None


def revision(database_url: str, message: str, rev_id: str | None = None) -> None:
    """Autogenerate a revision against `database_url` (an up-to-date scratch database):
    the difference between it and the models of every subsystem present."""
    command.revision(alembic_config(database_url), message=message, autogenerate=True, rev_id=rev_id)


def check(database_url: str) -> None:
    """Raise if the models have changes that no revision covers (`alembic check`)."""
    command.check(alembic_config(database_url))
