"""Rule windows follow the engine's clock, never the day a benchmark runs: the rules
benchmark's workload does the same work on its two sides at any fixed instant (it failed on
2026-12-03 only because a shipped rule had changed, see benchmarks/rules.py's history)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from benchmarks import rules as bench

INSIDE = datetime(2026, 11, 15, tzinfo=UTC)  # launch-2026 runs 2026-11-01..2026-12-31
OUTSIDE = datetime(2027, 3, 15, tzinfo=UTC)


def fired_both_sides(at: datetime) -> tuple[int, int]:
    messages = [bench.message(i, (i * 7919) % 1000) for i in range(2000)]
    runtime = bench.build_runtime(at)
    try:
        _, ours, _ = bench.run_ours(runtime, messages)
    finally:
        runtime.close()
    _, baseline, _ = bench.run_baseline(messages, at)
    return ours, baseline


@pytest.mark.parametrize("at", [INSIDE, OUTSIDE])
def test_the_rules_benchmark_does_the_same_work_at_any_fixed_date(at: datetime) -> None:
    ours, baseline = fired_both_sides(at)
    assert ours == baseline


def test_the_launch_window_is_read_from_the_clock_given() -> None:
    inside, _ = fired_both_sides(INSIDE)
    outside, _ = fired_both_sides(OUTSIDE)
    # 2000 messages: 6 in 20 are price.calculate, half of those on Pro -> 300 launch discounts.
    assert inside - outside == 300
