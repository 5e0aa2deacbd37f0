"""The lifecycle what-if's two sides at once, one process each.

Baseline and draft share nothing (each has its own database, clock, card provider and
system), and one side is CPU-bound Python: run one after the other they use one core of
the two the what-if is meant for. Here each side runs in its own process (spawned, not
forked: the console's server has threads), and the caller's thread reports both sides'
progress. Figures are the same as in one process: a side's run depends on its inputs only.

When the engine cannot be handed to another process (a `build` that does not pickle, such
as a closure in a test) or the machine has a single core, the sides run in this process.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from engine.simulation import SimulationError

Progress = Callable[[float, str], None]
SideRun = Callable[..., dict[str, Any]]  # engine.system.lifecycle.run_side
POLL_SECONDS = 0.1


def run_sides(run: SideRun, sides: Sequence[Mapping[str, Any]], progress: Progress | None) -> list[dict[str, Any]]:
    """`run(**side)` for each side (their `share` of the progress bar included), in parallel
    when possible; the figures in the order of `sides`."""
    if not _parallel(sides):
        return [run(**side, progress=progress) for side in sides]
    ctx = multiprocessing.get_context("spawn")
    results: Any = ctx.Queue()
    done: list[Synchronized[float]] = [ctx.Value("d", 0.0) for _ in sides]
    procs = [
        ctx.Process(target=_side, args=(run, dict(side), i, done[i], results), name=f"whatif-{side['label']}")
        for i, side in enumerate(sides)
    ]
    for p in procs:
        p.start()
    try:
        return _collect(procs, results, done, sides, progress)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()


def _parallel(sides: Sequence[Mapping[str, Any]]) -> bool:
    if len(sides) < 2 or (os.cpu_count() or 1) < 2:
        return False
    try:
        pickle.dumps([dict(s) for s in sides])
    except Exception:  # a build (or anything else) that only lives in this process
        return False
    return True


def _side(run: SideRun, side: dict[str, Any], index: int, done: Synchronized[float], results: Any) -> None:
    """A side in its own process: its progress into `done` (0..1), its figures (or the error) into `results`."""
    start, width = side.pop("share", (0.0, 1.0))

    def moved(fraction: float, _text: str) -> None:
        done.value = min(max((fraction - start) / width, 0.0), 1.0) if width else 1.0

    try:
        results.put((index, run(**side, share=(start, width), progress=moved), None))
    except BaseException as exc:  # the caller raises it; a side must not die silently
        try:
            pickle.dumps(exc)
            results.put((index, None, exc))
        except Exception:
            results.put((index, None, SimulationError(f"the {side.get('label')} side failed: {exc}")))


def _collect(procs: Sequence[Any], results: Any, done: Sequence[Synchronized[float]],
             sides: Sequence[Mapping[str, Any]], progress: Progress | None) -> list[dict[str, Any]]:
    figures: dict[int, dict[str, Any]] = {}
    while len(figures) < len(procs):
        try:
            index, out, error = results.get(timeout=POLL_SECONDS)
        except queue.Empty:
            dead = [p.name for i, p in enumerate(procs) if i not in figures and p.exitcode is not None]
            if dead:
                raise SimulationError(f"the what-if's {dead[0]} process stopped without its figures") from None
        else:
            if error is not None:
                raise error
            figures[index] = out
        if progress is not None:
            _report(progress, done, sides, figures)
    return [figures[i] for i in range(len(procs))]


def _report(progress: Progress, done: Sequence[Synchronized[float]], sides: Sequence[Mapping[str, Any]],
            figures: Mapping[int, object]) -> None:
    """Both sides' progress as one bar: each side's share of it, filled as far as it ran."""
    parts = [1.0 if i in figures else float(d.value) for i, d in enumerate(done)]
    total = sum(side["share"][1] * part for side, part in zip(sides, parts, strict=True))
    text = ", ".join(f"{side['label']}: {part:.0%}" for side, part in zip(sides, parts, strict=True))
    progress(min(total, 1.0), text)
