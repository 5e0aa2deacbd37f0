"""Loading YAML documents with line numbers, and reporting problems as `file:line: path: message`.

Catalogs and rulesets share this: a document is rejected whole with every problem listed, and
each problem names the file, the line and the JSON path of the offending field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError, best_match

PathT = tuple[str | int, ...]


def format_path(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(document)"


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    path: str
    message: str
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else f"{self.severity}: "
        return f"{self.file}:{self.line}: {self.path}: {prefix}{self.message}"


class DocumentError(Exception):
    """A document was rejected; `problems` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class Document:
    file: str
    data: Any
    lines: dict[PathT, int] = field(default_factory=dict)
    text: str = ""

    def line_of(self, path: Sequence[str | int]) -> int:
        """The line of `path`, or of its nearest ancestor that we know."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), 1)

    def problem(self, path: Sequence[str | int], message: str, severity: str = "error") -> Problem:
        return Problem(self.file, self.line_of(path), format_path(path), message, severity)


class _TooDeep(yaml.MarkedYAMLError):
    pass


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps and dates as the strings the author wrote: the
    schema decides what a date is, and JSON Schema cannot check a `datetime` object.
    The one YAML loader of the engine: load_yaml_text adds its limits and duplicate keys."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        # pyyaml composes recursively: 3,000 '[' were a RecursionError traceback.
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _TooDeep(None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


for _tag in ("tag:yaml.org,2002:timestamp",):
    _Loader.add_constructor(_tag, lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]

# YAML 1.1 reads yes/no/on/off as booleans, so `country: NO` (Norway) became false and a
# rule's `on:` key became True. Only true/false are booleans here, as in YAML 1.2.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


# What any YAML the engine reads may cost (catalogs, rulesets, console drafts): a document is
# refused before it is built when its text is over MAX_YAML_BYTES, when it nests deeper than
# MAX_YAML_DEPTH, or when its aliases would expand it past MAX_YAML_NODES ("billion laughs": 1 KB
# of nested aliases made every walk over the data, the schema check included, never return).
# Real catalogs are a few thousand nodes, a few levels deep.
MAX_YAML_BYTES = 1_000_000
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 100_000


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.ScalarNode):
        return []
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value)


def _expanded_size(root: yaml.Node) -> tuple[int, int, yaml.Node | None]:
    """(nodes, depth) of the document with every alias expanded, and a node that contains
    itself (a recursive alias) if any. Iterative and memoised: linear in the composed nodes."""
    done: dict[int, tuple[int, int]] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        kids = _children(node)
        if children_done:
            active.discard(key)
            sizes = [done[id(k)] for k in kids]
            done[key] = (1 + sum(n for n, _ in sizes), 1 + max((d for _, d in sizes), default=0))
            continue
        if key in done:
            continue
        if key in active:
            return 0, 0, node
        active.add(key)
        stack.append((node, True))
        recursive = _push_kids(kids, stack, active, done)
        if recursive is not None:
            return 0, 0, recursive
    size, depth = done[id(root)]
    return size, depth, None


def _push_kids(kids: list[yaml.Node], stack: list[tuple[yaml.Node, bool]], active: set[int],
               done: dict[int, tuple[int, int]]) -> yaml.Node | None:
    """Stack the children not measured yet; a child being measured (an ancestor) is returned."""
    for kid in kids:
        if id(kid) in active:
            return kid
        if id(kid) not in done:
            stack.append((kid, False))
    return None


def _check_expansion(root: yaml.Node, file: str) -> None:
    size, depth, recursive = _expanded_size(root)
    if recursive is not None:
        raise DocumentError([Problem(file, recursive.start_mark.line + 1, "(document)",
                                     "an alias refers to the node that contains it (a recursive document)")])
    if size > MAX_YAML_NODES or depth > MAX_YAML_DEPTH:
        what = f"{size:,} values" if size > MAX_YAML_NODES else f"{depth} levels deep"
        raise DocumentError([Problem(file, 1, "(document)",
                                     f"its aliases expand it to {what}: at most {MAX_YAML_NODES:,} values "
                                     f"and {MAX_YAML_DEPTH} levels")])


def _record_lines(loader: _Loader, node: yaml.Node, path: PathT, lines: dict[PathT, int],
                  duplicates: dict[int, Problem], file: str) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            try:
                key = loader.construct_object(key_node, deep=True)
            except Exception:
                continue
            child = (*path, str(key))
            line = key_node.start_mark.line + 1
            if key_node.tag != "tag:yaml.org,2002:merge" and _hashable(key) in seen:
                # YAML says keys are unique; pyyaml let the last one win, silently.
                duplicates.setdefault(line, Problem(file, line, format_path(child),
                                                    f"duplicate key {key!r}: it is already defined above"))
            seen.add(_hashable(key))
            lines[child] = line
            _record_lines(loader, value_node, child, lines, duplicates, file)
            lines[child] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record_lines(loader, item, (*path, i), lines, duplicates, file)


def _hashable(key: Any) -> Any:
    try:
        hash(key)
        return (type(key) is bool, key)  # True and 1 are different keys in a document
    except TypeError:
        return repr(key)


# Errors pyyaml finds only on the line after the mistake ("could not find expected ':'" for a
# key without a colon, "unexpected end of stream" for an unclosed quote): the line to fix is
# where the key or the quote began.
_OPENED_ABOVE = ("while scanning a simple key", "while scanning a quoted scalar")


def _error_line(exc: yaml.MarkedYAMLError, text: str) -> int:
    """The line a user must fix for a YAML syntax error (1-based)."""
    mark = exc.problem_mark or exc.context_mark
    if exc.context in _OPENED_ABOVE and exc.context_mark is not None:
        return exc.context_mark.line + 1  # the key or quote that was never closed, not the line after
    if mark is None:
        return 1
    lines = text.splitlines()
    if mark.line >= len(lines):
        # The text ended too early (a bracket never closed): its last line with content, not
        # the empty line after it that no editor shows.
        return next((n + 1 for n in range(len(lines) - 1, -1, -1) if lines[n].strip()), 1)
    if (exc.context or "").startswith(_FLOW) and exc.context_mark is not None and mark.line > exc.context_mark.line:
        return _unclosed_flow_line(lines, mark.line, mark.column, exc.context_mark.line)
    return mark.line + 1


def _unclosed_flow_line(lines: list[str], line: int, column: int, opened: int) -> int:
    """A flow collection missing its `,` or closing bracket is noticed at a later token, on a
    later line; when nothing on that line before it belongs to the collection and the line
    above did not go on (`,`, `[`, `{`), the bracket is missing at the end of that line."""
    head = lines[line][:column]
    above = next((n for n in range(line - 1, opened - 1, -1) if lines[n].strip()), None)
    if above is not None and not set(head) & set(",[]{}") and not lines[above].rstrip().endswith((",", "[", "{")):
        return above + 1
    return line + 1


# A flow collection (`{...}`, `[...]`) that was not closed: pyyaml says so at the next token.
_FLOW = ("while parsing a flow mapping", "while parsing a flow sequence")


def load_yaml_text(text: str, file: str) -> Document:
    """Parse YAML keeping the line of every path. Raises DocumentError on malformed YAML, a
    repeated key, or a document over the limits above (checked before it is built)."""
    if len(text) > MAX_YAML_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise DocumentError([Problem(file, 1, "(document)", f"the document is over {MAX_YAML_BYTES:,} bytes")])
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise DocumentError([Problem(file, 1, "(document)", "the file is empty")])
        _check_expansion(node, file)
        data = loader.construct_document(node)
        lines: dict[PathT, int] = {}
        duplicates: dict[int, Problem] = {}
        _record_lines(loader, node, (), lines, duplicates, file)
        if duplicates:
            raise DocumentError([duplicates[line] for line in sorted(duplicates)])
    except yaml.MarkedYAMLError as exc:
        line = _error_line(exc, text)
        message = " ".join(x for x in (exc.context, exc.problem) if x) or str(exc)
        raise DocumentError([Problem(file, line, "(document)", f"malformed YAML: {message}")]) from None
    except yaml.YAMLError as exc:
        raise DocumentError([Problem(file, 1, "(document)", f"malformed YAML: {exc}")]) from None
    finally:
        loader.dispose()
    return Document(file=file, data=data, lines=lines, text=text)


def load_yaml_file(path: str | Path) -> Document:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DocumentError([Problem(str(path), 1, "(document)", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DocumentError([Problem(str(path), 1, "(document)", f"cannot read: {exc}")]) from None
    if p.suffix == ".json":
        if len(text) > MAX_YAML_BYTES:
            raise DocumentError([Problem(str(path), 1, "(document)", f"the document is over {MAX_YAML_BYTES:,} bytes")])
        try:
            data = json.loads(text)
        except RecursionError:
            raise DocumentError([Problem(str(path), 1, "(document)", "nested too deep")]) from None
        except json.JSONDecodeError as exc:
            raise DocumentError([Problem(str(path), exc.lineno, "(document)", f"malformed JSON: {exc.msg}")]) from None
        # JSON is YAML: parse again for the line numbers.
        doc = load_yaml_text(text, str(path))
        doc.data = data
        return doc
    return load_yaml_text(text, str(path))


@cache
def load_schema(package: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files(package).joinpath(name).read_text("utf-8"))
    return data


# JSON Schema counts 49.0 as an integer; in YAML it is a float, and a float is never money.
_StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)


@cache
def _validator(package: str, name: str) -> Any:
    schema = load_schema(package, name)
    Draft202012Validator.check_schema(schema)
    return _StrictValidator(schema, format_checker=FormatChecker())


def _leaf_errors(error: ValidationError) -> Iterable[ValidationError]:
    """anyOf/oneOf errors are reported by their most relevant branch, not as one blob."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        # Keep the branch errors that went deepest: they explain what was expected there.
        best = max(len(e.absolute_path) for e in error.context)
        deep = [e for e in error.context if len(e.absolute_path) == best]
        if best > len(error.absolute_path):
            for e in deep:
                yield from _leaf_errors(e)
            return
        if not _one_of_keys(error):
            # No branch went deeper (150 against "a number up to 100, or a text"): the branches
            # for another type of value are not what was meant; of the others jsonschema's
            # relevance picks the error that says what is wrong ("is greater than the maximum
            # of 100"), not "is not valid under any of the given schemas".
            meant = [e for e in error.context if e.validator != "type"] or error.context
            yield from _leaf_errors(best_match(meant))
            return
    yield error


def _one_of_keys(error: ValidationError) -> list[str]:
    """The keys of a "give exactly one of" choice (each branch requires its own), or []."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    branches = [b for b in schema.get("oneOf", []) if isinstance(b, dict)]
    if error.validator not in ("anyOf", "oneOf") or not any("required" in b for b in branches):
        return []
    return sorted({k for b in branches for k in b.get("required", [])})


# Validators whose jsonschema message only needs plainer words.
_REWORDED = {
    "additionalProperties": ("Additional properties are not allowed", "unknown field(s)"),
    "required": ("is a required property", "is required"),
}


def _is_money(error: ValidationError) -> bool:
    """The value is an amount (x-money), or a branch of one."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    parent = error.parent.schema if error.parent is not None and isinstance(error.parent.schema, dict) else {}
    return bool(schema.get("x-money") or parent.get("x-money"))


def _describe(error: ValidationError) -> str:
    instance = error.instance
    if _is_money(error):
        if isinstance(instance, float):
            return f'{instance!r} is a float; amounts are decimal strings, write it quoted, e.g. "{instance:.2f}"'
        return f'{instance!r} is not an amount; write a decimal string such as "49.00"'
    if error.validator in _REWORDED:
        return error.message.replace(*_REWORDED[str(error.validator)])
    keys = _one_of_keys(error)
    if keys:
        return f"give exactly one of {', '.join(keys)}"
    if error.validator == "enum":
        return f"{instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    if error.validator == "pattern" and isinstance(instance, str):
        return f"{instance!r} does not match the expected form ({error.validator_value})"
    return error.message


def schema_problems(doc: Document, package: str, schema_name: str) -> list[Problem]:
    validator = _validator(package, schema_name)
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for error in validator.iter_errors(doc.data):
        for leaf in _leaf_errors(error):
            path = list(leaf.absolute_path)
            message = _describe(leaf)
            if leaf.validator == "additionalProperties" and isinstance(leaf.instance, dict):
                allowed = set(leaf.schema.get("properties", {})) if isinstance(leaf.schema, dict) else set()
                for key in leaf.instance:
                    if key not in allowed:
                        key_path = [*path, key]
                        sig = (format_path(key_path), "unknown field")
                        if sig not in seen:
                            seen.add(sig)
                            problems.append(doc.problem(key_path, f"unknown field {key!r}"))
                continue
            sig = (format_path(path), message)
            if sig in seen:
                continue
            seen.add(sig)
            problems.append(doc.problem(path, message))
    problems.sort(key=lambda p: (p.line, p.path))
    return problems
