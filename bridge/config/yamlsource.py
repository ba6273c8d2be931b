"""Read a YAML config into plain Python values, remembering where every value came from.

Why not `yaml.safe_load`: it forgets line numbers (every error must point into the file) and
silently keeps the last of two duplicate keys (a classic way to lose a rule). We compose the node
tree with PyYAML's safe loader, then build the values ourselves.

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
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        what = exc.problem or exc.context or "invalid YAML"
        return doc, [Problem(file, line, col, "", f"YAML syntax error: {what}")]
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML raises marked errors in practice
        return doc, [Problem(file, None, None, "", f"YAML error: {exc}")]
    if root is None:
        return doc, [Problem(file, None, None, "", "the file is empty", "see config.example.yaml")]
    builder = _Builder(doc, environ)
    doc.data = builder.build(root, ())
    return doc, builder.problems


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
        except yaml.constructor.ConstructorError as exc:
            self.problems.append(self.doc.problem(path, f"cannot read value: {exc.problem}"))
            return None
        if isinstance(value, str):
            return self._expand(value, path)
        return value

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[str, Any]:
        self.constructor.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            child = (*path, key)
            key_at = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in out:
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
            if name in self.environ:
                return self.environ[name]
            if default is not None:
                return default
            self.problems.append(
                self.doc.problem(
                    path,
                    f"environment variable {name} is not set",
                    f"export {name}, or write ${{{name}:-default}}",
                )
            )
            return ""

        return _ENV_REF.sub(replace, value)
