"""Run one hostile case under a time and a memory bound, so a regression fails the case
instead of hanging the suite or taking the machine's memory.

`bounded(fn, ...)` forks: the child lowers its address-space limit to what it already maps
plus the case's budget, runs `fn`, and sends back the result (or the exception's type and
text). The parent waits `seconds` and kills the child past that. A fork costs milliseconds,
and the child inherits the imported engine, so the bound measures the case, not the start-up.
`run_cli(...)` does the same for the `billing` command's entry point.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class Outcome:
    value: Any = None
    error: str | None = None  # "TypeName: message" when the case raised
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the child's own CPU: what a case cost, whatever the machine's load


def _mapped_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def _limit_memory(budget_mb: int) -> None:
    limit = _mapped_bytes() + budget_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _child(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...], budget_mb: int) -> None:
    _limit_memory(budget_mb)
    start, cpu = time.perf_counter(), time.process_time()
    try:
        value = fn(*args)
        conn.send(Outcome(value=value, seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu))
    except BaseException as exc:  # the case's answer, whatever it is, goes to the parent
        conn.send(Outcome(error=f"{type(exc).__name__}: {exc}"[:2000], seconds=time.perf_counter() - start,
                          cpu_seconds=time.process_time() - cpu))
    finally:
        conn.close()


def bounded(fn: Callable[..., Any], *args: Any, seconds: float = 5.0, memory_mb: int = 256) -> Outcome:
    """fn(*args) in a forked child; fails the test when it runs past `seconds`, dies (e.g. of
    MemoryError past `memory_mb` more than the parent maps) or sends nothing back."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args, memory_mb), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(seconds):
            pytest.fail(f"{getattr(fn, '__name__', fn)} ran past its {seconds} s bound", pytrace=False)
        outcome: Outcome = parent.recv()
    except EOFError:
        pytest.fail(f"{getattr(fn, '__name__', fn)} died (exit {proc.exitcode}) within {memory_mb} MB", pytrace=False)
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        parent.close()
    if outcome.error is not None and outcome.error.startswith("MemoryError"):
        pytest.fail(f"{getattr(fn, '__name__', fn)} ran out of its {memory_mb} MB budget", pytrace=False)
    return outcome


def _invoke(args: list[str], env: dict[str, str], cwd: str | Path | None,
            stdin: str | None) -> subprocess.CompletedProcess[str]:
    from tests.cli.runner import invoke

    return invoke(*args, env=env, cwd=Path(cwd) if cwd is not None else None, stdin=stdin)


def run_cli(args: Sequence[str], *, seconds: float = 30.0, memory_mb: int = 1024, cwd: str | Path | None = None,
            env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`billing ARGS` (its entry point, in a forked child: see `bounded`) with a time bound and
    `memory_mb` more address space than the test process maps; a hang, a blow-up or an
    exception escaping the command (a traceback a user would see) fails the test."""
    full_env = {**os.environ, **(env or {})}
    outcome = bounded(_invoke, list(args), full_env, cwd, stdin, seconds=seconds, memory_mb=memory_mb)
    if outcome.error is not None:
        pytest.fail(f"billing {' '.join(args)} raised {outcome.error}", pytrace=False)
    return outcome.value  # type: ignore[no-any-return]
