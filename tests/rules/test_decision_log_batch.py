"""The denial writer's batch insert of decision-log rows (engine.rules.decisions.write_decisions)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from engine.rules import access_denial_row, write_decision, write_decisions
from engine.rules.models import DecisionRecord
from engine.store import Database

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _ids(db: Database) -> list[str]:
    with db.read_session() as s:
        return sorted(s.scalars(select(DecisionRecord.decision_id)))


def test_known_uses_go_in_together_and_a_clash_is_counted(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/d.db")
    DecisionRecord.__table__.create(db.engine)  # type: ignore[attr-defined]
    a = access_denial_row("dec_A", NOW, "cus_1", {"feature": "sso", "reason": "not_in_plan"})
    b = access_denial_row("dec_B", NOW, "cus_2", {"feature": "sso", "reason": "not_in_plan"})
    with db.session() as s:
        assert write_decisions(s, [(a, 0), (b, None)]) == [0, 0]
    with db.session() as s:
        assert write_decisions(s, [(a, 1), (b, 1)]) == [1, 1]
    with db.session() as s:  # the check's own transaction logged dec_A meanwhile
        assert write_decision(s, a) == 2
    with db.session() as s:  # a stale `n`: counted in the log instead
        assert write_decisions(s, [(a, 2), (b, 2)]) == [3, 2]
    assert _ids(db) == ["dec_A", "dec_A.1", "dec_A.2", "dec_A.3", "dec_B", "dec_B.1", "dec_B.2"]
    db.dispose()
