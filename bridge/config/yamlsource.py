"""Read a YAML config into plain Python values, remembering where every value came from.

Why not `yaml.safe_load`: it forgets line numbers (every error must point into the file) and
silently keeps the last of two duplicate keys (a classic way to lose a rule). We compose the node
tree with PyYAML's safe loader, then build the values ourselves.

The document is measured before it is built, because a few hundred bytes of YAML can describe an
unbounded amount of data: aliases that repeat each other ("billion laughs": 400 bytes took 12 s
and 1.6 GB), merge keys that double at each level, an alias inside the node it names (a cycle),
or nesting deep enough to exhaust Python's stack. Each is refused as a located problem.

`${VAR}` and `${VAR:-default}` expand from the environment inside string scalars; `$${` stands for
a literal `${`. Expansion happens here, before validation, so the schema sees final values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from bridge.errors import Problem

PathKey = tuple[str | int, ...]

# A real config is nested a dozen levels at most and holds thousands of values, not millions.
# The limits leave generous room for that while keeping every check of a document in
# milliseconds and far from Python's recursion limit (each level costs several frames in the
# composer, the builder and the schema validator).
MAX_DEPTH = 64
MAX_VALUES = 250_000  # values after aliases and merges are expanded
MAX_BYTES = 4 * 1024 * 1024  # PyYAML reads a few MB a second: a larger file is not a config

_MERGE = "tag:yaml.org,2002:merge"
_ENV_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def format_path(path: PathKey) -> str:
    """("rules", 2, "targets", 0) -> "rules[2].targets[0]"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


@dataclass
class Document:
    """A loaded file: its values, and (line, column) for each value and each mapping key."""

    file: str
    data: Any
    value_pos: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    key_pos: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    # Values that used an unset ${VAR}: other complaints about them would only repeat that one.
    unresolved: set[PathKey] = field(default_factory=set)

    def problem(
        self, path: PathKey, message: str, hint: str | None = None, *, at_key: bool = False
    ) -> Problem:
        """A Problem located at `path`, or at its nearest ancestor that has a position."""
        table = self.key_pos if at_key else self.value_pos
        probe = path
        while probe and probe not in table and probe not in self.value_pos:
            probe = probe[:-1]
        line_col = table.get(probe) or self.value_pos.get(probe)
        line, col = line_col if line_col else (None, None)
        return Problem(self.file, line, col, format_path(path), message, hint)


def load_document(
    text: str, file: str, environ: Mapping[str, str]
) -> tuple[Document, list[Problem]]:
    """Parse `text`; on a syntax error return the error as the only problem."""
    doc = Document(file=file, data=None)
    if len(text) > MAX_BYTES:
        return doc, [
            Problem(
                file,
                None,
                None,
                "",
                f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB",
                "is this the config? Templates can live in files of their own",
            )
        ]
    try:
        root = yaml.compose(text, Loader=_BoundedLoader)
    except _TooLarge as exc:
        return doc, [exc.problem(file)]
    except yaml.MarkedYAMLError as exc:
        return doc, [_syntax_problem(file, exc)]
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML raises marked errors in practice
        return doc, [Problem(file, None, None, "", f"YAML error: {exc}")]
    if root is None:
        return doc, [Problem(file, None, None, "", "the file is empty", "see config.example.yaml")]
    try:
        _measure(root)
    except _TooLarge as exc:
        return doc, [exc.problem(file)]
    builder = _Builder(doc, environ)
    doc.data = builder.build(root, ())
    if doc.data is None and not builder.problems:
        return doc, [
            Problem(file, None, None, "", "the file has no settings", "see config.example.yaml")
        ]
    return doc, builder.problems


class _TooLarge(Exception):
    """The document is nested too deep, expands to too many values, or contains itself."""

    def __init__(self, mark: yaml.Mark | None, path: PathKey, message: str, hint: str) -> None:
        super().__init__(message)
        self.mark, self.path, self.message, self.hint = mark, path, message, hint

    def problem(self, file: str) -> Problem:
        line = self.mark.line + 1 if self.mark is not None else None
        col = self.mark.column + 1 if self.mark is not None else None
        return Problem(file, line, col, format_path(self.path), self.message, self.hint)


def _too_deep(mark: yaml.Mark | None, path: PathKey) -> _TooLarge:
    # The path of the deepest level would be as long as the nesting: show where it starts.
    return _TooLarge(
        mark,
        path[:8],
        f"nested deeper than {MAX_DEPTH} levels" + (" below this point" if len(path) > 8 else ""),
        "a config needs a dozen levels at most; are brackets or indentation unbalanced?",
    )


def _path_part(index: Any) -> str | int:
    if isinstance(index, int):
        return index
    if isinstance(index, yaml.ScalarNode):
        return str(index.value)[:60]
    return "?"


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer (recursive: a level costs two frames) stops at MAX_DEPTH,
    instead of failing with RecursionError in the middle of PyYAML at ~480 levels."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str | int] = []

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if parent is not None:
            self._path.append(_path_part(index))
        try:
            if len(self._path) > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise _too_deep(event.start_mark, tuple(self._path))
            return super().compose_node(parent, index)
        finally:
            if parent is not None:
                self._path.pop()


def _measure(root: yaml.Node) -> None:
    """Raise _TooLarge when the value tree `root` describes (aliases and merge keys expanded)
    is deeper than MAX_DEPTH, holds more than MAX_VALUES values, or contains itself.

    Linear in the nodes of the document: each node's expanded size and height is computed once
    (an alias is the same node object as its anchor), so a bomb is measured, never expanded."""
    memo: dict[int, tuple[int, int]] = {}  # id(node) -> (values, height) once measured
    active: set[int] = set()  # the nodes on the current path: meeting one again is a cycle

    def walk(node: yaml.Node, path: PathKey) -> tuple[int, int]:
        key = id(node)
        known = memo.get(key)
        if known is not None:
            if len(path) + known[1] > MAX_DEPTH:
                raise _too_deep(node.start_mark, path)
            return known
        if key in active:
            raise _TooLarge(
                node.start_mark,
                path,
                "an alias refers to the node that contains it",
                "a config cannot contain itself; use a different anchor",
            )
        if len(path) > MAX_DEPTH:
            raise _too_deep(node.start_mark, path)
        children: list[tuple[str | int, yaml.Node]] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                children.append(("<key>", key_node))
                children.append((_path_part(key_node), value_node))
        active.add(key)
        size, height = 1, 0
        for part, child in children:
            child_path = path if part == "<key>" else (*path, part)
            child_size, child_height = walk(child, child_path)
            size += child_size
            height = max(height, child_height + (part != "<key>"))
            if size > MAX_VALUES:
                raise _TooLarge(  # at the value that tipped it over: an alias, usually
                    child.start_mark,
                    child_path,
                    f"the document expands to more than {MAX_VALUES:,} values",
                    "YAML aliases (*name) that repeat each other multiply; write the values out",
                )
        active.discard(key)
        memo[key] = (size, height)
        return size, height

    walk(root, ())


def _syntax_problem(file: str, exc: yaml.MarkedYAMLError) -> Problem:
    """Point at where the trouble starts (an unterminated quote's opening line), not where the
    parser noticed it (often the end of the file), and say both."""
    problem = exc.problem or "invalid YAML"
    mark, context = exc.problem_mark, exc.context
    started = exc.context_mark
    if started is not None and (mark is None or "end of stream" in problem):
        # Noticed at the end of the file: what matters is where the unclosed thing began.
        message = f"YAML syntax error {context}: {problem}"
        mark = started
    elif started is not None and context and started.line != (mark.line if mark else -1):
        message = f"YAML syntax error: {problem} ({context} that starts on line {started.line + 1})"
    else:
        message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    line = mark.line + 1 if mark is not None else None
    col = mark.column + 1 if mark is not None else None
    return Problem(file, line, col, "", message)


class _Builder:
    def __init__(self, doc: Document, environ: Mapping[str, str]) -> None:
        self.doc = doc
        self.environ = environ
        self.problems: list[Problem] = []
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.doc.value_pos[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        try:
            value = self.constructor.construct_object(node, deep=True)
        except Exception:  # a tag such as !!int on text that is not a number; never echo the value
            self.problems.append(
                self.doc.problem(
                    path,
                    f"cannot read this value as {node.tag.rsplit(':', 1)[-1]}",
                    "remove the !! tag, or quote the value",
                )
            )
            return None
        if isinstance(value, str):
            return self._expand(value, path)
        if isinstance(value, int) and value.bit_length() > 1024:
            # (A hex or binary literal can be longer than the 4,300 digits Python will print.)
            self.problems.append(
                self.doc.problem(
                    path,
                    "this number has more than 300 digits",
                    "no setting takes a number this large",
                )
            )
            return None
        return value

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[str, Any]:
        explicit = sum(1 for k, _ in node.value if k.tag != _MERGE)
        try:
            self.constructor.flatten_mapping(node)  # resolves `<<: *anchor`: merged pairs first
        except yaml.constructor.ConstructorError as exc:
            mark = exc.problem_mark or node.start_mark
            self.problems.append(
                Problem(
                    self.doc.file,
                    mark.line + 1,
                    mark.column + 1,
                    format_path(path),
                    "a merge key (<<) takes a mapping or a list of mappings",
                    "e.g. <<: *defaults",
                )
            )
            node.value = [(k, v) for k, v in node.value if k.tag != _MERGE]
        merged = len(node.value) - explicit
        out: dict[str, Any] = {}
        from_merge: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = self.constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            child = (*path, key)
            key_at = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if index < merged:
                # PyYAML lists merge sources last-first, so a later pair here overrides an
                # earlier one, which makes the first-listed source win, as YAML specifies.
                from_merge.add(key)
            elif key in from_merge:
                from_merge.discard(key)  # an explicit key overrides a merged one
            elif key in out:
                first = self.doc.key_pos[child]
                self.problems.append(
                    Problem(
                        self.doc.file,
                        key_at[0],
                        key_at[1],
                        format_path(child),
                        f'duplicate key "{key}"',
                        f"first defined on line {first[0]}",
                    )
                )
                continue
            self.doc.key_pos[child] = key_at
            out[key] = self.build(value_node, child)
        return out

    def _expand(self, value: str, path: PathKey) -> str:
        if "$" not in value:
            return value

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name, default = match.group(1), match.group(2)
            value = self.environ.get(name)
            if default is not None and not value:  # like sh: ":-" covers unset and empty
                return default
            if value is not None:
                return value
            self.doc.unresolved.add(path)
            self.problems.append(
                self.doc.problem(path, f"environment variable {name} is not set", _unset_hint(name))
            )
            return ""

        return _ENV_REF.sub(replace, value)


def _unset_hint(name: str) -> str:
    if name == "CREDENTIALS_DIRECTORY":
        return (
            "systemd sets it for a service with LoadCredential=; to check the config by hand,"
            " export it as a directory holding the same files"
        )
    return f"export {name}, or write ${{{name}:-default}}"
