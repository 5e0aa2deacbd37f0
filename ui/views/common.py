"""Shared pieces: the database, the clock, errors shown as messages (never stack traces)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

from engine.catalog import DocumentError
from engine.clock import Clock
from engine.config import get_settings
from engine.console import ConsoleError, engine_clock
from engine.console.yaml_edit import EditError
from engine.simulation import CohortError, SimulationError
from engine.store import Database
from engine.store.migrate import require_migrated
from engine.users import PermissionDenied, UserError, can

ROOT = Path(__file__).resolve().parents[2]
# The customer segments the forms offer (pricing rules by segment, a synthetic cohort's segment mix).
SEGMENTS = ["edu", "smb", "ent", "startup", "nonprofit"]
EXPECTED = (ConsoleError, EditError, CohortError, SimulationError, UserError, PermissionDenied)


@st.cache_resource(show_spinner=False)
def _database(url: str) -> Database:
    db = Database(url)
    require_migrated(db)
    return db


def database() -> Database:
    return _database(os.environ.get("BILLING_DATABASE_URL") or "sqlite:///./billing.db")


def guarded_database() -> Database | None:
    try:
        return database()
    except Exception as exc:
        st.error(f"The console cannot open its database: {type(exc).__name__}: {exc}")
        return None


def clock() -> Clock:
    """The engine's clock (its stored test clock when it runs on one), read at each call."""
    return engine_clock(database(), get_settings().test_clock)


def today() -> date:
    return clock().now().date()


def message(exc: BaseException) -> str:
    if isinstance(exc, DocumentError):
        return "\n".join(f"- line {p.line} · {p.path}: {p.message}" for p in exc.problems)
    if isinstance(exc, CohortError):
        return "\n".join(f"- {p}" for p in exc.problems)
    if isinstance(exc, KeyError):
        return str(exc.args[0]) if exc.args else "not found"
    return str(exc)


def guarded(fn: Callable[..., Any], *args: Any) -> None:
    """Run a page; show what went wrong as a message on the page, never a stack trace."""
    try:
        fn(*args)
    except ScriptControlException:  # st.rerun() / st.stop()
        raise
    except (*EXPECTED, DocumentError, KeyError) as exc:
        st.error(message(exc))
    except Exception as exc:
        st.error(f"Something went wrong: {type(exc).__name__}: {exc}")


def need(user: dict[str, Any], action: str, what: str) -> bool:
    """True when the user may; otherwise a clear message on the page."""
    if can(user["role"], action):
        return True
    roles = {"edit": "editor", "simulate": "editor", "publish": "publisher", "rollback": "publisher"}
    st.warning(f"{what} needs the {roles.get(action, action)} role; you are signed in as a {user['role']}.")
    return False


def money(v: Decimal | None, currency: str = "") -> str:
    if v is None:
        return "—"
    return f"{v:,.2f} {currency}".strip()


def example_files(kind: str) -> list[Path]:
    folder = get_settings().catalogs_dir if kind == "catalog" else get_settings().rules_dir
    path = Path(folder)
    if not path.is_absolute():
        path = (Path.cwd() / path) if (Path.cwd() / path).exists() else ROOT / path
    return sorted(path.glob("*.yaml")) if path.exists() else []
