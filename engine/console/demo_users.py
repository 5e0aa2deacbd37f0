"""The console's demo sign-ins (`billing up`, `run_console(seed_demo=True)`): users' own
seeding, here so the console's launch and the tests find it where they start the console."""

from __future__ import annotations

from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.users import seed_demo_users


def seed_demo(session: Session, *, clock: Clock) -> list[tuple[str, str, str]]:
    """The demo sign-ins (name, role, password), created when missing."""
    return seed_demo_users(session, clock=clock)
