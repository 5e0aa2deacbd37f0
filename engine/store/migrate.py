"""Database migrations (Alembic): `billing migrate` calls `upgrade`.

    from engine.store.migrate import upgrade
    upgrade("sqlite:///./billing.db")

The scripts live in engine/store/migrations/; `revision` autogenerates a new one from the
models of every subsystem present (see MODEL_MODULES in migrations/env.py).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from engine.store.database import Database, _normalise_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", _normalise_url(database_url).replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> str | None:
    """Bring the database to `revision` (default: the latest). Returns the revision now
    current. Safe to run again: an up-to-date database is left as it is."""
    command.upgrade(alembic_config(database_url), revision)
    return current(database_url)


def current(database_url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    db = Database(database_url)
    try:
        with db.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        db.dispose()


def not_migrated(database_url: str) -> str | None:
    """Why `database_url` is not at the latest migration, with what to do, in words for an
    operator; None when it is. A command that only reads the tables (a worker, `billing
    broker status`) would otherwise stop at the first missing table with the database
    driver's traceback. A SQLite file that does not exist is not created by asking."""
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    url = make_url(_normalise_url(database_url))
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
