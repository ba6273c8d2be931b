"""The tailer's required-literal reader (inputs/filetail/literals.py) is safe: every string a
pattern matches contains one of the literals it returns. Checked on generated patterns with
strings hypothesis builds to match them."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bridge.inputs.filetail.literals import required

ATOMS = ["a", "b", "c", "ab", "abc", "x", r"\.", "-", "[ab]", "[^a]", ".", r"\d", r"\s", "é", "错"]
QUANTIFIERS = ["", "", "", "?", "*", "+", "{2}", "{1,3}", "{0,2}", "+?", "*?"]


@st.composite
def patterns(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 5))):
        if depth < 2 and draw(st.integers(0, 4)) == 0:
            head = draw(st.sampled_from(["(", "(?:", "(?>", "(?=", "(?s:", "(?i:"]))
            body = "|".join(draw(st.lists(patterns(depth + 1), min_size=1, max_size=3)))
            atom = f"{head}{body})"
        else:
            atom = draw(st.sampled_from(ATOMS))
        quantifier = "" if atom.startswith("(?=") else draw(st.sampled_from(QUANTIFIERS))
        if quantifier and len(atom) > 1 and not atom.startswith(("(", "[", "\\")):
            atom = f"(?:{atom})"
        parts.append(atom + quantifier)
    if draw(st.booleans()) and depth == 0:
        return "|".join([*parts[:1], "".join(parts[1:]) or "abc"])
    return "".join(parts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), pattern=patterns())
def test_every_match_contains_a_required_literal(data: st.DataObject, pattern: str) -> None:
    regex = re.compile(pattern)
    found = required(pattern, regex.flags)
    if found is None:
        return
    # Text for a lookahead or an atomic group is drawn by filtering candidates, which can search
    # for minutes on some generated patterns: those are in the table below instead.
    assume("(?=" not in pattern and "(?>" not in pattern)
    # fullmatch: no padding around the match. Padding is drawn with a filter (it must not change
    # what the pattern matches), which could search for minutes on some generated patterns.
    text = data.draw(st.from_regex(regex, fullmatch=True), label="text")
    match = regex.search(text)
    assert match is not None
    assert any(literal in match.group(0) for literal in found), (pattern, text, found)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"a(?#a comment)bcd", {"abcd"}),
        (r"[]x]yzw", {"yzw"}),
        (r"\x41BCD", {"BCD"}),
        (r"(a)?(?(1)abc|def)ghij", {"ghij"}),
        (r"(a)\1bcd", {"bcd"}),
        (r"(?x) a b c", None),  # verbose: spaces do not count
        (r"ab\nc", {"ab\nc"}),
        (r"ab{0}cd", {"cd"}),
        (r"(?s:abc)d", {"abc"}),
        (r"x(?P<name>abc|abd)", {"abc", "abd"}),  # alternatives are not spliced
        (r"(?P<n>ab)(?P=n)cde", {"cde"}),
        # lookaheads and atomic groups (not in the generated patterns: see above)
        (r"(?=abc)abcd", {"abcd"}),
        (r"x(?=yz)yzw", {"yzw"}),
        (r"(?>abc|abd)efgh", {"efgh"}),
        (r"(?=ab)(?>abcd)+", {"abcd"}),
    ],
)
def test_syntax_table(pattern: str, expected: set[str] | None) -> None:
    re.compile(pattern)
    found = required(pattern, 0)
    assert (set(found) if found is not None else None) == expected
