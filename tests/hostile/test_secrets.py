"""Known secrets: no public default webhook secret, a missing one refuses to start, and demo
sign-ins only in the database the demo seeded."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from engine.clock import SystemClock
from engine.config import Settings
from engine.system import payment_service
from tests.hostile.bounds import run_cli


def test_there_is_no_default_webhook_secret() -> None:
    assert Settings().psp_webhook_secret == ""
    with pytest.raises(ValueError, match="BILLING_PSP_WEBHOOK_SECRET is not"):
        payment_service(Settings(psp_url="http://127.0.0.1:9"), SystemClock())


def test_serve_with_a_provider_and_no_secret_refuses_to_start(tmp_path: Path) -> None:
    env = {"BILLING_DATABASE_URL": f"sqlite:///{tmp_path}/b.db", "BILLING_PSP_URL": "http://127.0.0.1:9",
           "BILLING_PSP_WEBHOOK_SECRET": "", "BILLING_API_PORT": "1"}
    result = run_cli(["serve", "--no-workers"], env=env, seconds=60, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BILLING_PSP_WEBHOOK_SECRET is not" in result.stderr and "Traceback" not in result.stderr
    assert "is up" not in result.stdout


def test_the_standalone_sandbox_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    result = run_cli(["psp-sandbox"], env={"BILLING_PSP_WEBHOOK_SECRET": ""}, seconds=30, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BILLING_PSP_WEBHOOK_SECRET is not set" in result.stderr


def test_demo_users_exist_only_where_the_demo_seeds(tmp_path: Path) -> None:
    from engine.cli.commands.up import seed_console_users
    from engine.config import Settings
    from engine.system import build_system
    from engine.users import ConsoleUser

    settings = Settings(database_url=f"sqlite:///{tmp_path}/b.db", psp_url="")
    system = build_system(settings, create_tables=True)
    try:
        assert seed_console_users(system, seeding=False) == []  # not seeded by this run: nobody
        with system.db.session() as s:
            assert list(s.scalars(select(ConsoleUser))) == []
        created = seed_console_users(system, seeding=True)
        assert [name for name, _, _ in created] == ["viewer", "operator", "editor", "publisher", "admin"]
        with system.db.session() as s:
            s.delete(s.scalars(select(ConsoleUser).where(ConsoleUser.name == "publisher")).one())
        seed_console_users(system, seeding=False)  # the next start: a removed demo user stays removed
        with system.db.session() as s:
            assert sorted(u.name for u in s.scalars(select(ConsoleUser))) == ["admin", "editor", "operator", "viewer"]
    finally:
        system.db.dispose()


def test_an_unknown_worker_subsystem_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(["worker", "--subsystem", "nope"], env={"BILLING_DATABASE_URL": f"sqlite:///{tmp_path}/b.db"},
                     seconds=30, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "invalid choice: 'nope'" in result.stderr and "Traceback" not in result.stderr
