"""`billing broker status` lists every queue the workers declare, automation's included."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_operations_cli import billing


def test_broker_status_lists_the_automation_queue(tmp_path: Path) -> None:
    assert billing("migrate", cwd=tmp_path).returncode == 0
    result = billing("broker", "status", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    queues = {q["subsystem"]: q for q in json.loads(result.stdout)["queues"]}
    assert set(queues) >= {"sales", "payments", "access", "messaging", "automation"}
    assert queues["automation"]["patterns"] == ["#"]
