"""The one place that talks to durable_rules 2.0.28, built around what it does (measured here):

* One owner at a time makes every call into the C extension. Two ways, same guarantees:
  `owner="lock"` (default): the calling thread becomes the owner for one evaluation under the
  engine's mutex (no hand-off: on 2 busy cores a thread hand-off cost more than the
  evaluation); `owner="thread"`: one dedicated owner thread fed by a queue, callers wait for
  their answer. Either way the Host's own timer threads are never started, so no action runs
  on another thread after a post, and durable's timers are never used (the scheduler owns
  time).
* Each ruleset version is registered under a unique name (`promotions.v3.17`): durable cannot
  register a name twice. Durable's Host never frees a ruleset (+0.2 MB per version of a
  shipped ruleset), so a replaced version is *retired*: its session states are deleted, then
  the ruleset itself (`delete_ruleset` alone leaves each session's memory behind).
  `delete_state` in 2.0.28 frees two pointers of the session (`context.messages`,
  `context.stateFact`) that are only initialised once an action has run in it: on a session
  where no rule ever fired it frees heap garbage and crashes, depending on the heap's layout.
  So every session is *primed* when it is created: a fact only the compiled `_prime` rule
  matches, its action loop run to the end, which leaves both pointers NULL; after that,
  deleting the session is safe. An evaluation that reaches a retired handle gets
  `RetiredHandle` before any C call and starts over on the live snapshot (see RulesRuntime),
  so no evaluation fails on a swap.
* An evaluation asserts ONE fact with a unique id into the ruleset's single session, runs every
  rule it fired (a fact, unlike an event, fires every matching rule), then retracts it: the
  session is empty again, so no session ids pile up (1,024 live sids crash durable) and memory
  stays flat. Measured: unique sid + delete_state per evaluation runs at a third of the speed
  (and crashes on unprimed sessions, below).
* The Host binds each rule's action name to a collector: actions are recorded, never executed
  inside durable's callbacks (an exception there would be swallowed into the state).
* Any failure inside an evaluation abandons that session id for a fresh (primed) one; the
  abandoned one is deleted with its version.
"""

from __future__ import annotations

import _thread
import itertools
import json
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import durable_rules_engine as dre
from durable.engine import Host, Ruleset

from engine.rules.compiler import CompiledRuleset

Collector = Callable[[list[int]], None]


class RulesEngineError(RuntimeError):
    pass


class RetiredHandle(RulesEngineError):
    """The version was replaced and its memory returned while this evaluation waited: start
    again on the live snapshot."""


class _BillingHost(Host):
    """A durable Host without its background dispatch threads, whose action names resolve to
    collectors of our own."""

    def __init__(self) -> None:
        self._bindings: dict[str, Collector] = {}
        super().__init__()

    def _run(self) -> None:  # no timer threads: the owner thread drives everything
        return None

    def bind(self, action_name: str, collector: Collector) -> None:
        self._bindings[action_name] = collector

    def get_action(self, action_name: str) -> Callable[..., Any]:
        try:
            return self._bindings[action_name]
        except KeyError:
            raise RulesEngineError(f"no handler bound for action {action_name!r}") from None


class _LeanRuleset(Ruleset):
    """A durable Ruleset created from our JSON text (durable's own json.dumps would write
    numbers with exponents, which its reader rejects), evaluated without the per-action
    Closure/state round trips of Ruleset._flush_actions."""

    def __init__(self, name: str, host: _BillingHost, compiled: CompiledRuleset) -> None:
        self._name = name
        self._host = host
        self._definition = compiled.definition
        self._actions = {}
        self.collectors: dict[str, Collector] = {}
        for rule_name, rule in compiled.definition.items():
            handler = host.get_action(rule["run"])
            self._actions[rule_name] = handler
            self.collectors[rule_name] = handler
        self._handle = dre.create_ruleset(name, compiled.text)
        self.sid_generation = 1
        self.prefix = '{"sid":"1","id":"'
        self.primed: list[str] = []  # the sessions delete_state may free
        self.prime("1")

    def prime(self, sid: str) -> None:
        """Create session `sid` and run one action in it, so that deleting it is safe."""
        fact = f'{{"sid":"{sid}","id":"_prime","_prime":1}}'
        code, state = dre.assert_fact(self._handle, fact)
        if code != 0:
            raise RulesEngineError(f"durable_rules did not fire the primer (code {code})")
        result = dre.start_action_for_state(self._handle, state)
        while result:
            result = dre.complete_and_start_action(self._handle, state)
        dre.retract_fact(self._handle, fact)
        self.primed.append(sid)


MEMO_SIZE = 4096  # answers remembered per ruleset version


@dataclass
class Handle:
    """A registered ruleset version."""

    name: str
    compiled: CompiledRuleset
    ruleset: _LeanRuleset | None = None
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # Fact body -> rules fired. A fact is asserted and retracted at once (no state between
    # facts), so the answer is a function of the body: a billing run prices thousands of
    # periods with the same few bodies (segment, plan, period start).
    memo: dict[str, tuple[int, ...]] = field(default_factory=dict)


class DurableEngine:
    """Owns one durable Host on one thread. Thread-safe: every method may be called from any
    thread; the work happens on the owner thread in arrival order. Each system owns one (no
    process-wide engine): the C extension never releases the GIL, so calls made through two
    engines never overlap either."""

    _names = itertools.count(1)

    def __init__(self, owner: str = "lock") -> None:
        if owner not in ("lock", "thread"):
            raise ValueError("owner is 'lock' or 'thread'")
        self.owner = owner
        self._mutex = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._host: _BillingHost | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.registered = 0  # live durable rulesets (registered, not retired)
        self.retired = 0
        self.abandoned_sids = 0
        self.closed = False

    # -- the owner thread -------------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                ready = threading.Event()
                t = threading.Thread(target=self._loop, args=(ready,), name="durable-rules-owner",
                                     daemon=True)
                t.start()
                ready.wait()
                self._thread = t

    def _loop(self, ready: threading.Event) -> None:
        self._host = _BillingHost()
        ready.set()
        while True:
            job = self._queue.get()
            if job is None:
                return
            fn, args, done, box = job
            try:
                box.append((True, fn(*args)))
            except BaseException as exc:  # handed back to the caller
                box.append((False, exc))
            done.release()

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.closed:
            raise RulesEngineError("the rules engine is closed")
        if self.owner == "lock":
            with self._mutex:
                if self._host is None:
                    self._host = _BillingHost()
                return fn(*args)
        self._ensure_started()
        if threading.current_thread() is self._thread:
            return fn(*args)
        done = _thread.allocate_lock()
        done.acquire()
        box: list[tuple[bool, Any]] = []
        self._queue.put((fn, args, done, box))
        done.acquire()
        ok, value = box[0]
        if not ok:
            raise value
        return value

    # -- public -----------------------------------------------------------------------------
    def register(self, compiled: CompiledRuleset) -> Handle:
        name = f"{compiled.name}.v{compiled.version}.{next(self._names)}"
        handle = Handle(name, compiled)
        self._call(self._register, handle)
        return handle

    def evaluate(self, handle: Handle, body: str) -> list[int]:
        """Post one fact and return the indexes of the compiled rules that fired. `body` is the
        fact's JSON without its braces; the engine adds the unique id and the session id.
        Raises RetiredHandle when the version was retired meanwhile."""
        hit = handle.memo.get(body)
        if hit is not None and handle.ruleset is not None:
            return list(hit)
        if self.owner == "lock":  # the hot path, without _call's indirection
            with self._mutex:
                if self.closed:
                    raise RulesEngineError("the rules engine is closed")
                return self._evaluate(handle, body)
        result: list[int] = self._call(self._evaluate, handle, body)
        return result

    def retire(self, handle: Handle) -> None:
        """Return a version's memory to the process: it must no longer be live (evaluations
        still holding it get RetiredHandle and start over). Idempotent."""
        if handle.ruleset is not None and not self.closed:
            self._call(self._retire, handle)

    def evaluate_many(self, jobs: Sequence[tuple[Handle, str]]) -> list[list[int]]:
        """Several evaluations in one hand-off to the owner thread."""
        result: list[list[int]] = self._call(lambda: [self._evaluate(h, f) for h, f in jobs])
        return result

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)

    # -- on the owner thread ----------------------------------------------------------------
    def _register(self, handle: Handle) -> None:
        host = self._host
        assert host is not None
        for i, rule in enumerate(handle.compiled.rules):
            action = f"{handle.compiled.name}/{rule.id}"

            def collect(out: list[int], _i: int = i) -> None:
                out.append(_i)

            host.bind(action, collect)
        rs = _LeanRuleset(handle.name, host, handle.compiled)
        host._ruleset_directory[handle.name] = rs
        host._ruleset_list.append(rs)
        handle.ruleset = rs
        self.registered += 1

    def _retire(self, handle: Handle) -> None:
        rs = handle.ruleset
        if rs is None:
            return
        handle.ruleset = None  # from here on, evaluations of this version start over
        for sid in rs.primed:  # never an unprimed session: delete_state would crash on it
            try:
                dre.delete_state(rs._handle, sid)
            except dre.error:
                pass  # durable no longer knows that session: nothing of it to free
        dre.delete_ruleset(rs._handle)
        host = self._host
        assert host is not None
        host._ruleset_directory.pop(handle.name, None)
        host._ruleset_list.remove(rs)
        self.registered -= 1
        self.retired += 1

    def _evaluate(self, handle: Handle, body: str) -> list[int]:
        rs = handle.ruleset
        if rs is None:
            raise RetiredHandle(f"ruleset {handle.name} was retired")
        h = rs._handle
        text = f"{rs.prefix}{next(handle.ids)}\",{body}}}"
        fired: list[int] = []
        try:
            code, state = dre.assert_fact(h, text)
            if code == 0:
                collectors = rs.collectors
                result = dre.start_action_for_state(h, state)
                while result:
                    message = result[1] if isinstance(result, tuple) else result
                    if message.startswith('{"r'):
                        name = message[2:message.index('"', 2)]
                    else:
                        name = next(iter(json.loads(message)))
                    collectors[name](fired)
                    result = dre.complete_and_start_action(h, state)
            elif code != 1:  # 1: no rule matched
                raise RulesEngineError(f"durable_rules refused the fact (code {code})")
            dre.retract_fact(h, text)
        except BaseException:
            # Leave that session behind: whatever it holds can no longer affect anyone.
            self.abandoned_sids += 1
            rs.sid_generation += 1
            rs.prefix = f'{{"sid":"{rs.sid_generation}","id":"'
            rs.prime(str(rs.sid_generation))
            raise
        # A rule whose condition has an `$or` fires once per branch that holds.
        if len(fired) > 1:
            fired = sorted(set(fired))
        memo = handle.memo
        if len(memo) >= MEMO_SIZE:
            memo.clear()  # bounded; refills with what is asked now
        memo[body] = tuple(fired)
        return fired
