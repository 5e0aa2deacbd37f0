"""A Jinja2 sandbox that also bounds size and time.

`ImmutableSandboxedEnvironment` stops attribute escapes and mutation, but it limits neither
memory nor time: `{{ 'x' * 50000000 }}` renders 50 MB, and nested loops run for ever. This
environment checks, while a template renders:

- `*`, `**`, `+`, `%` and `~` on strings, sequences and integers: the result stays under the
  size limit, checked before the operation where it can be predicted;
- every call and filter: integer arguments (widths, counts, repetitions) stay under the
  value limit, string `replace`/`join` are estimated first, results are checked after;
- every loop step (checked every 64), call, filter and output chunk: the deadline has
  not passed;
- the output: its length stays under the output limit.

A limit that trips raises `RenderLimitError`; the caller fails that notification.

Sizes are *expanded* sizes: a list holding the same 100,000-item list 100,000 times counts
10**10, because that is what printing it, joining it or serialising it costs. Every filter
and call has its value and arguments measured before it runs, the operations that multiply
size (`*`, `+`, `~`, `%`, `join`, `indent`, `wordwrap`, `replace`, `expandtabs`, `sum`) have
their result predicted before it is allocated, `{{ }}` measures what it prints, and the
block captures (`{% set %}...{% endset %}`, macros, `{% filter %}`) join under the output
limit. Every render of the engine uses this: messages, invoice HTML and the console previews.
"""

from __future__ import annotations

import functools
import gc
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError


class RenderLimitError(SecurityError):
    """A template went over its size or time budget."""


@dataclass(frozen=True)
class RenderLimits:
    max_output: int = 256_000  # characters of one rendered part
    max_value: int = 100_000  # length of an intermediate string/list, or an integer argument
    max_int_bits: int = 4096  # size of an integer computed by a template
    max_seconds: float = 1.0  # CPU time of one render (time.thread_time, see _check_time)


class _Budget(threading.local):
    deadline: float | None = None
    limits: RenderLimits = RenderLimits()
    gc_started: float | None = None


_budget = _Budget()


def _exclude_collections(phase: str, info: dict[str, int]) -> None:
    """The garbage collector runs on whichever thread allocated when a threshold was crossed:
    its CPU is the process's housekeeping (in a long-lived worker with a large heap, a full
    collection takes seconds), not the template's, so a render's deadline moves by it. A cheap
    payment_failed email was refused as "longer than 1 s" in CI this way."""
    if _budget.deadline is None:
        return
    if phase == "start":
        _budget.gc_started = time.thread_time()
    elif _budget.gc_started is not None:
        _budget.deadline += time.thread_time() - _budget.gc_started
        _budget.gc_started = None


gc.callbacks.append(_exclude_collections)


def _check_time() -> None:
    deadline = _budget.deadline
    # The render's own thread's CPU time, not the wall: a template that multiplies burns CPU,
    # while a cheap one on a loaded machine (or beside other sending threads) only waits.
    if deadline is not None and time.thread_time() > deadline:
        raise RenderLimitError(
            f"template rendering took longer than {_budget.limits.max_seconds:g} s"
        )


_TEXT = (str, bytes)
_NESTED = frozenset({str, bytes, list, tuple, dict, set, frozenset})


def _length(value: Any) -> int | None:
    """The expanded size of a string or container (strings by characters, containers by
    their items, nested ones counted each time they appear), or None for anything else.
    Stops counting just past the value limit (the callers only compare), so measuring costs
    at most that many steps."""
    if isinstance(value, _TEXT):
        return len(value)
    if not isinstance(value, list | tuple | dict | set | frozenset):
        return None
    cap = _budget.limits.max_value
    total = 0
    stack: list[Any] = [value]
    while stack and total <= cap:
        item = stack.pop()
        if isinstance(item, _TEXT):
            total += len(item)
            continue
        total += len(item)
        if total > cap:
            break
        for x in (item.items() if isinstance(item, dict) else item):
            if type(x) in _NESTED or isinstance(x, tuple):
                stack.append(x)
    return total


def _check_args(args: Iterable[Any], what: str) -> None:
    """Values handed to a filter or call are measured first: a filter's work is at least
    proportional to what it reads (`string`, `tojson`, `pprint` print every nested item)."""
    for arg in args:
        n = _length(arg)
        if n is not None and n > _budget.limits.max_value:
            raise RenderLimitError(f"{what}: an argument of {n} items; the limit is {_budget.limits.max_value}")


def _check_size(value: Any, what: str) -> Any:
    limits = _budget.limits
    n = _length(value)
    if n is not None and n > limits.max_value:
        raise RenderLimitError(f"{what} would produce {n} items; the limit is {limits.max_value}")
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > limits.max_int_bits:
            raise RenderLimitError(f"{what} produced an integer over {limits.max_int_bits} bits")
    return value


def _check_int_args(args: Iterable[Any], what: str) -> None:
    limit = _budget.limits.max_value
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > limit:
            raise RenderLimitError(f"{what}: argument {arg} is over the limit of {limit}")


def _predict_replace(s: str, old: Any, new: Any) -> None:
    if isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
        count = s.count(old) if old else len(s) + 1
        _check_size_n(len(s) + count * (len(new) - len(old)), "replace")


def _predict_join(sep: Any, items: Any) -> None:
    if isinstance(sep, str) and isinstance(items, Sized):
        _check_size_n(len(sep) * max(len(items) - 1, 0) + (_length(items) or 0), "join")


def _predict_lines(s: Any, per_line: Any, what: str) -> None:
    """indent / wordwrap: every line of `s` gains up to `per_line` characters."""
    if isinstance(s, str):
        extra = len(per_line) if isinstance(per_line, str) else per_line if isinstance(per_line, int) else 0
        lines = s.count("\n") + 1 if what == "indent" else len(s) + 1
        _check_size_n(len(s) + lines * max(extra, 0), what)


def _check_size_n(n: int, what: str) -> None:
    limit = _budget.limits.max_value
    if n > limit:
        raise RenderLimitError(f"{what} would produce {n} characters; the limit is {limit}")


# A printf-style width or precision that would pad a string to megabytes.
_BIG_PRINTF = re.compile(r"%[-#0 +]*(\*|\d{6,})|\.(\*|\d{6,})")


def _guard_mul(left: Any, right: Any) -> None:
    for seq, n in ((left, right), (right, left)):
        size = _length(seq)
        if size is not None and isinstance(n, int):
            _check_size_n(size * max(n, 0), "repetition")
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > _budget.limits.max_int_bits:
            raise RenderLimitError("multiplication: integer too large")


def _guard_pow(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int) and right > 0:
        if max(left.bit_length(), 1) * right > _budget.limits.max_int_bits:
            raise RenderLimitError("power: integer too large")
    if isinstance(right, int | float) and abs(right) > _budget.limits.max_int_bits:
        raise RenderLimitError("power: exponent too large")


def _guard_concat(left: Any, right: Any) -> None:
    a, b = _length(left), _length(right)
    if a is not None and b is not None:
        _check_size_n(a + b, "concatenation")


def _guard_printf(left: Any, right: Any) -> None:
    if not isinstance(left, str):
        return
    if _BIG_PRINTF.search(left):
        raise RenderLimitError("string formatting with a huge or variable width")
    _check_size_n(len(left) + (_length(right) or 0) * 4, "string formatting")


# The operators whose result can outgrow their operands, each with its prediction.
_BINOP_GUARDS: dict[str, Callable[[Any, Any], None]] = {
    "*": _guard_mul, "**": _guard_pow, "+": _guard_concat, "%": _guard_printf,
}


def _guard_binop(op: str, left: Any, right: Any) -> None:
    guard = _BINOP_GUARDS.get(op)
    if guard is not None:
        guard(left, right)


_STR_METHOD_NAMES = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus size and time limits (see the module docstring)."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["finalize"] = _printable(kwargs.get("finalize"))
        super().__init__(*args, **kwargs)
        self.code_generator_class = _GuardingCodeGenerator
        # lipsum(n) writes n paragraphs: an amplifier with no use in a bill.
        self.globals.pop("lipsum", None)
        self.filters = {name: guard_filter(name, f) for name, f in self.filters.items()}
        self.filters["__guard_iter"] = _guard_iter
        self.filters["__guard_operand"] = _guard_operand
        self.globals["__guard_value"] = _check_size
        self.globals["__buffer"] = _BoundedBuffer

    @staticmethod
    def concat(chunks: Iterable[str]) -> str:
        """What block captures, macros and `{% filter %}` bodies join: under the output limit,
        watching the clock (a loop of 100,000 chunks of 100 KB was 10 GB before a join)."""
        return collect(chunks, _budget.limits, "a captured block")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_time()
        _guard_binop(operator, left, right)
        return _check_size(super().call_binop(context, operator, left, right), operator)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_time()
        name = getattr(__obj, "__name__", type(__obj).__name__)
        _check_int_args(args, name)
        _check_int_args(kwargs.values(), name)
        _check_args(args, name)
        _check_args(kwargs.values(), name)
        # The sandbox hands out str.format wrapped; the bound method is under __wrapped__.
        owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        if isinstance(owner, str):
            if name in ("format", "format_map", "translate", "maketrans"):
                raise SecurityError(f"str.{name} is not available in templates; use filters")
            if name == "replace" and len(args) >= 2:
                _predict_replace(owner, args[0], args[1])
            elif name == "join" and args:
                _predict_join(owner, args[0])
            elif name == "expandtabs":
                size = args[0] if args else kwargs.get("tabsize", 8)
                _check_size_n(len(owner) + owner.count("\t") * (size if isinstance(size, int) else 8), name)
        return _check_size(super().call(__context, __obj, *args, **kwargs), name)


def guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    pass_arg = getattr(func, "jinja_pass_arg", None)
    skip = 1 if pass_arg is not None else 0  # context / eval context / environment first

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_time()
        # args[skip] is the filtered value; what follows are the filter's own arguments.
        _check_int_args(args[skip + 1 :], f"filter {name}")
        _check_int_args(kwargs.values(), f"filter {name}")
        if name == "format" and len(args) > skip and isinstance(args[skip], str):
            if _BIG_PRINTF.search(args[skip]):
                raise RenderLimitError("format filter with a huge or variable width")
        _check_args(args[skip:], f"filter {name}")
        _check_args(kwargs.values(), f"filter {name}")
        _predict_filter(name, args[skip:], kwargs)
        return _check_size(func(*args, **kwargs), f"filter {name}")

    return guarded


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    """A filter's argument, given by position (`args` starts with the filtered value) or by name."""
    return args[index] if len(args) > index else kwargs.get(name, default)


def _predict_replace_filter(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    if len(args) >= 3 and isinstance(value, str):
        _predict_replace(value, args[1], args[2])


def _predict_join_filter(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    sep = _arg(args, kwargs, 1, "d", "")
    _predict_join(sep if isinstance(sep, str) else "", value)


def _predict_indent(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    _predict_lines(value, _arg(args, kwargs, 1, "width", 4), "indent")


def _predict_wordwrap(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    _predict_lines(value, _arg(args, kwargs, 3, "wrapstring", "\n"), "wordwrap")


def _predict_sum(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    start = _arg(args, kwargs, 2, "start", 0)
    if not isinstance(start, int | float | Decimal) or isinstance(start, bool):
        # sum(start=[]) concatenates: quadratic time in C, where no clock is read.
        raise RenderLimitError("filter sum adds numbers; its start must be a number")


# The filters whose result can be far larger than what they read, each with its prediction.
_FILTER_PREDICTIONS: dict[str, Callable[[Any, tuple[Any, ...], Mapping[str, Any]], None]] = {
    "replace": _predict_replace_filter, "join": _predict_join_filter, "indent": _predict_indent,
    "wordwrap": _predict_wordwrap, "sum": _predict_sum,
}


def _predict_filter(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """The filters whose result can be far larger than what they read, predicted first."""
    predict = _FILTER_PREDICTIONS.get(name)
    if predict is not None:
        predict(args[0] if args else None, args, kwargs)


def _printable(finalize: Callable[..., Any] | None) -> Callable[[Any], Any]:
    """`{{ value }}` measures the value before it is turned into text (a list of one list,
    100,000 times, printed towards 2 GB before the output limit saw it)."""

    def check(value: Any) -> Any:
        n = _length(value)
        if n is not None and n > _budget.limits.max_value:
            raise RenderLimitError(f"printing a value of {n} items; the limit is {_budget.limits.max_value}")
        return finalize(value) if finalize is not None else value

    return check


def _guard_operand(value: Any) -> Any:
    """Each operand of `~` is measured before it is turned into text and joined."""
    n = _length(value)
    if n is not None and n > _budget.limits.max_value:
        raise RenderLimitError(f"~ on a value of {n} items; the limit is {_budget.limits.max_value}")
    return value


def _guard_iter(value: Any) -> Iterator[Any]:
    """Wraps every `{% for %}` iterable: a loop checks the deadline on each step."""
    for n, item in enumerate(value):
        if n & 63 == 0:
            _check_time()
        yield item


class _BoundedBuffer(list):
    """The list a block capture, macro or `{% filter %}` body writes its output into: the
    output limit and the clock apply while it fills, not only when it is joined (a loop of
    100 KB chunks held 300 MB a second before)."""

    __slots__ = ("_size",)

    def __init__(self) -> None:
        super().__init__()
        self._size = 0

    def append(self, chunk: Any) -> None:
        self._size += len(chunk) if isinstance(chunk, str) else 0
        if self._size > _budget.limits.max_output:
            raise RenderLimitError(f"a captured block is longer than the limit of {_budget.limits.max_output} characters")
        if len(self) & 63 == 0:
            _check_time()
        super().append(chunk)

    def extend(self, chunks: Iterable[Any]) -> None:
        for chunk in chunks:
            self.append(chunk)


class _GuardingCodeGenerator(CodeGenerator):
    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.globals['__buffer']()")

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for loop in node.find_all(nodes.For):
            loop.iter = nodes.Filter(
                loop.iter, "__guard_iter", [], [], None, None, lineno=loop.iter.lineno
            )
        for concat in node.find_all(nodes.Concat):
            concat.nodes = [nodes.Filter(n, "__guard_operand", [], [], None, None, lineno=n.lineno)
                            for n in concat.nodes]
        super().visit_Template(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.globals['__guard_value'](")
        super().visit_Concat(node, frame)
        self.write(", '~')")


class RenderBudget:
    """Context manager that arms the deadline for one render on this thread."""

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self._saved: tuple[float | None, RenderLimits] | None = None

    def __enter__(self) -> RenderBudget:
        self._saved = (_budget.deadline, _budget.limits)
        _budget.limits = self.limits
        _budget.deadline = time.thread_time() + self.limits.max_seconds
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._saved is not None
        _budget.deadline, _budget.limits = self._saved


def collect(chunks: Iterable[str], limits: RenderLimits, what: str) -> str:
    """Join a template's output stream, stopping as soon as it is too long or too slow."""
    out: list[str] = []
    total = 0
    for n, chunk in enumerate(chunks):
        total += len(chunk)
        if total > limits.max_output:
            raise RenderLimitError(
                f"{what}: output is longer than the limit of {limits.max_output} characters"
            )
        # Every 16th chunk is enough: whatever makes a chunk slow (a loop, call, filter or
        # operator) checks the clock itself; this only bounds long runs of cheap chunks.
        if n & 15 == 0:
            _check_time()
        out.append(chunk)
    return "".join(out)


_SCALARS = frozenset({str, bool, int, float, Decimal, datetime, date, dtime, type(None)})


def plain_data(value: Any, path: str = "data") -> Any:
    """Templates see plain data only: dicts, lists and scalars. An ORM object would hand
    the template its public methods (the sandbox lets a template call them)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if isinstance(value, Mapping):  # a dict too
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"{path}: keys must be strings, got {type(key).__name__}")
            out[key] = item if type(item) in _SCALARS else plain_data(item, f"{path}.{key}")
        return out
    if kind in (list, tuple):
        return [item if type(item) in _SCALARS else plain_data(item, f"{path}[{i}]")
                for i, item in enumerate(value)]
    if isinstance(value, str | int | float | Decimal | date | dtime):  # subclasses
        return value
    raise TypeError(
        f"{path}: templates take plain dicts, lists and scalars, not {type(value).__name__}"
    )
