"""The fixed text a regular expression cannot match without: our own small reading of Python's
pattern syntax, so the tailer does not lean on CPython's private `re._parser`.

It only has to be safe, not complete: whatever it does not understand requires nothing, and a
pattern that requires nothing is searched with the regex engine instead. Safe means: every string
the pattern matches contains one of the returned literals. The pattern has compiled already, so
the syntax is valid; only its structure is read here.

    sequence  := item*            a run of literal characters is required as one string
    item      := atom quantifier?
    atom      := literal | escape | class | '.' | group | anchor
    group     := '(' ['?' kind] branch ('|' branch)* ')'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Escapes that stand for one fixed character.
_CHAR_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "a": "\a"}
_QUANTIFIER = re.compile(r"\*|\+|\?|\{(\d*)(?:,(\d*))?\}")


@dataclass(frozen=True)
class _Char:
    char: str


@dataclass(frozen=True)
class _Other:
    """Anything that is not one fixed character: a class, '.', an anchor, a backreference, a
    lookaround, a group under flags we do not follow."""


@dataclass(frozen=True)
class _Group:
    branches: tuple[tuple[_Node, ...], ...]
    plain: bool  # (...) or (?:...) or (?P<name>...): splices into the sequence around it


@dataclass(frozen=True)
class _Repeat:
    node: _Node
    at_least: int


_Node = _Char | _Other | _Group | _Repeat
_OTHER = _Other()


class _Unsupported(Exception):
    """The pattern uses something that changes how all of it reads (verbose or case-insensitive
    mode): it requires nothing as far as we know."""


def required(pattern: str, flags: int) -> frozenset[str] | None:
    """The strings one of which every match of `pattern` contains, or None."""
    if flags & (re.IGNORECASE | re.VERBOSE):
        return None
    try:
        branches, end = _Reader(pattern).branches(0)
    except (_Unsupported, IndexError, ValueError):  # ValueError: str.index found no end
        return None
    if end != len(pattern):  # an unbalanced ')': cannot be in a compiled pattern; be safe
        return None
    return _union([_sequence(branch) for branch in branches])


def _union(alternatives: list[frozenset[str] | None]) -> frozenset[str] | None:
    if not alternatives or any(a is None for a in alternatives):
        return None
    return frozenset().union(*(a for a in alternatives if a is not None))


def _sequence(items: tuple[_Node, ...]) -> frozenset[str] | None:
    """The best requirement of a sequence: the longest run of literal characters, or the
    requirement of one of its parts, whichever has the longest shortest string."""
    options: list[frozenset[str]] = []
    run: list[str] = []

    def close_run() -> None:
        if run:
            options.append(frozenset({"".join(run)}))
            run.clear()

    for node in _spliced(items):
        if isinstance(node, _Char):
            run.append(node.char)
            continue
        close_run()
        part = _node(node)
        if part is not None:
            options.append(part)
    close_run()
    if not options:
        return None
    return max(options, key=lambda o: (min(len(s) for s in o), -len(o)))


def _spliced(items: tuple[_Node, ...]) -> list[_Node]:
    """Plain one-branch groups spliced into the sequence around them (a group is just
    concatenation), so `status=(?P<code>5..)` requires "status=5", not only "status="."""
    out: list[_Node] = []
    for node in items:
        if isinstance(node, _Group) and node.plain and len(node.branches) == 1:
            out += _spliced(node.branches[0])
        else:
            out.append(node)
    return out


def _node(node: _Node) -> frozenset[str] | None:
    if isinstance(node, _Group):
        return _union([_sequence(branch) for branch in node.branches])
    if isinstance(node, _Repeat):
        return _node_or_char(node.node) if node.at_least >= 1 else None
    return None


def _node_or_char(node: _Node) -> frozenset[str] | None:
    return frozenset({node.char}) if isinstance(node, _Char) else _node(node)


class _Reader:
    def __init__(self, pattern: str) -> None:
        self.p = pattern

    def branches(self, at: int) -> tuple[tuple[tuple[_Node, ...], ...], int]:
        """Alternatives from `at` up to an unmatched ')' or the end; returns them and where
        reading stopped (at the ')' or the end)."""
        branches: list[tuple[_Node, ...]] = []
        items: list[_Node] = []
        while at < len(self.p) and self.p[at] != ")":
            if self.p[at] == "|":
                branches.append(tuple(items))
                items = []
                at += 1
                continue
            node, at = self.atom(at)
            node, at = self.quantified(node, at)
            items.append(node)
        branches.append(tuple(items))
        return tuple(branches), at

    def quantified(self, node: _Node, at: int) -> tuple[_Node, int]:
        match = _QUANTIFIER.match(self.p, at)
        if match is None:
            return node, at
        text = match.group(0)
        at_least = {"*": 0, "?": 0, "+": 1}.get(text)
        if at_least is None:
            at_least = int(match.group(1) or 0)
        at = match.end()
        if at < len(self.p) and self.p[at] in "?+":  # lazy or possessive: same minimum
            at += 1
        return _Repeat(node, at_least), at

    def atom(self, at: int) -> tuple[_Node, int]:
        char = self.p[at]
        if char == "\\":
            return self.escape(at + 1)
        if char == "[":
            return _OTHER, self.class_end(at + 1)
        if char == "(":
            return self.group(at + 1)
        if char in ".^$":
            return _OTHER, at + 1
        return _Char(char), at + 1

    def escape(self, at: int) -> tuple[_Node, int]:
        char = self.p[at]
        if char in _CHAR_ESCAPES:
            return _Char(_CHAR_ESCAPES[char]), at + 1
        if char.isalnum() or char == "_":
            # classes (\d \w \s), anchors (\b \A \Z), backreferences, \x.. \u.. \N{..}: not
            # one literal we track; skip what belongs to the escape.
            if char in "xuU":
                return _OTHER, at + 1 + {"x": 2, "u": 4, "U": 8}[char]
            if char == "N" and self.p.startswith("{", at + 1):
                return _OTHER, self.p.index("}", at) + 1
            end = at + 1
            while char.isdigit() and end < len(self.p) and self.p[end].isdigit():
                end += 1
            return _OTHER, end
        return _Char(char), at + 1  # an escaped punctuation character stands for itself

    def class_end(self, at: int) -> int:
        """Just past the ']' closing a class that opened before `at`."""
        if self.p[at] == "^":
            at += 1
        if self.p[at] == "]":  # a ']' first in a class is a member
            at += 1
        while self.p[at] != "]":
            at += 2 if self.p[at] == "\\" else 1
        return at + 1

    def group(self, at: int) -> tuple[_Node, int]:
        plain = True
        if self.p[at] == "?":
            kind = self.p[at + 1]
            if kind == "#":  # a comment
                return _Char(""), self.p.index(")", at) + 1
            if kind == ":":
                at += 2
            elif kind == "P" and self.p[at + 2] == "<":
                at = self.p.index(">", at) + 1
            elif kind == "P" and self.p[at + 2] == "=":  # a named backreference
                return _OTHER, self.p.index(")", at) + 1
            elif kind == ">":  # atomic: matches what its body matches
                at += 2
                plain = False
            elif kind in "=!<(":  # lookarounds, conditionals: nothing consumed for sure
                _branches, end = self.branches(self._after_group_head(at))
                return _OTHER, end + 1
            else:
                return self.flags(at + 1)
        branches, end = self.branches(at)
        return _Group(branches, plain), end + 1

    def _after_group_head(self, at: int) -> int:
        if self.p[at + 1] == "(":  # (?(1)yes|no)
            return self.p.index(")", at + 2) + 1
        return at + (3 if self.p[at + 1] == "<" else 2)

    def flags(self, at: int) -> tuple[_Node, int]:
        """(?aiLmsux) for the whole pattern, or (?flags-flags:...) for a part."""
        end = at
        while self.p[end] not in ":)":
            end += 1
        letters = self.p[at:end]
        if self.p[end] == ")":
            if "i" in letters or "x" in letters:
                raise _Unsupported(letters)
            return _Char(""), end + 1
        branches, close = self.branches(end + 1)
        on = letters.split("-")[0]
        if "i" in on or "x" in on:
            return _OTHER, close + 1
        return _Group(branches, False), close + 1
