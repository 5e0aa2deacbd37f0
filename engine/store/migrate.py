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
from sqlalchemy import inspect

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


def revision(database_url: str, message: str, rev_id: str | None = None) -> None:
    """Autogenerate a revision against `database_url` (an up-to-date scratch database):
    the difference between it and the models of every subsystem present."""
    command.revision(alembic_config(database_url), message=message, autogenerate=True, rev_id=rev_id)


def check(database_url: str) -> None:
    """Raise if the models have changes that no revision covers (`alembic check`)."""
    command.check(alembic_config(database_url))


def has_tables(database_url: str) -> bool:
    db = Database(database_url)
    try:
        return bool(inspect(db.engine).get_table_names())
    finally:
        db.dispose()
