"""Alembic environment: every subsystem's tables on `engine.store.Base`.

Model modules are imported from a list, defensively: a subsystem that is not installed (or
not written yet) is skipped, so migrations run in any assembly of the engine.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Literal

from alembic import context
from sqlalchemy import create_engine, pool

from engine.models import MODEL_MODULES  # the one list of every subsystem's tables
from engine.store.base import Base, DecimalString, UTCDateTime

log = logging.getLogger("alembic.env")



def import_models() -> list[str]:
    loaded = []
    for name in MODEL_MODULES:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise  # a real missing dependency inside an existing module
    return loaded


import_models()
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Render the store's portable column types by their import path."""
    if type_ == "type" and isinstance(obj, DecimalString | UTCDateTime):
        return f"engine.store.base.{type(obj).__name__}()"
    return False


def _url() -> str:
    from engine.store.urls import normalise_url

    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        from engine.config import get_settings

        url = get_settings().database_url
    return normalise_url(url)


def run_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_item=render_item,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connectable = context.config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=render_item,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
