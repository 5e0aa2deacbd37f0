from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.clock import SystemClock
from engine.console import seed_demo
from engine.store import Database

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")
PASSWORDS = {"viewer": "viewer-demo", "editor": "editor-demo", "publisher": "publisher-demo", "admin": "admin-demo"}


@pytest.fixture
def console_db(tmp_path, monkeypatch) -> Iterator[Database]:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/console.db"
    monkeypatch.setenv("BILLING_DATABASE_URL", url)
    db = Database(url)
    db.migrate()
    with db.session() as s:
        seed_demo(s, clock=SystemClock())
    yield db
    db.dispose()


@pytest.fixture
def app(console_db: Database) -> Callable[[str | None], AppTest]:
    def start(role: str | None = None) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=60).run()
        if role is not None:
            at.text_input(key="signin_name").input(role)
            at.text_input(key="signin_password").input(PASSWORDS[role])
            at.button[0].click().run()
            assert not at.exception, at.exception
            assert at.session_state["user"]["role"] == role
        return at

    return start


def texts(at: AppTest, kind: str) -> list[str]:
    return [e.value for e in getattr(at, kind)]


def page(at: AppTest, name: str) -> AppTest:
    at.radio(key="page").set_value(name).run()
    assert not at.exception, at.exception
    return at


def open_source(at: AppTest, label: str) -> AppTest:
    at.selectbox(key="editor_source").select(label)
    at.button(key="editor_open").click().run()
    assert not at.exception, at.exception
    return at
