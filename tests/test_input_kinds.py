"""The input-kind registries: the config half (bridge/config/inputs/registry.py), the runtime half
(bridge/inputs/registry.py) and the schema's dispatch on `type` name the same kinds and agree on
what each does; and the one bearer check."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config.inputs.registry import KINDS as CONFIG_KINDS
from bridge.config.inputs.registry import rule_variables, single
from bridge.config.resources import data_dir
from bridge.config.schema import schema
from bridge.config.templating import ALERTMANAGER_VARIABLES, GRAFANA_VARIABLES
from bridge.inputs.bearer import bearer_refusal, header_token_refusal
from bridge.inputs.registry import KINDS as RUNTIME_KINDS


def _dispatch() -> dict[str, str]:
    """type -> the $defs entry the schema's input dispatcher sends it to."""
    out = {}
    for branch in schema()["$defs"]["input"]["allOf"]:
        kind: Any = branch["if"]["properties"]["type"]["const"]
        out[kind] = branch["then"]["$ref"].removeprefix("#/$defs/")
    return out


def test_both_registries_and_the_schema_name_the_same_kinds() -> None:
    names = set(CONFIG_KINDS)
    assert set(RUNTIME_KINDS) == names
    assert set(schema()["$defs"]["input"]["properties"]["type"]["enum"]) == names
    assert set(_dispatch()) == names


def test_each_kind_is_described_by_its_own_schema_fragment() -> None:
    defs = schema()["$defs"]
    for kind, fragment in _dispatch().items():
        assert fragment in defs
        assert defs[fragment]["properties"]["type"]["const"] == kind


@pytest.mark.parametrize("kind", sorted(CONFIG_KINDS))
def test_routed_kinds_and_only_they_answer_requests(kind: str) -> None:
    routed = CONFIG_KINDS[kind].routed
    assert (RUNTIME_KINDS[kind].serve is not None) is routed
    # A routed kind's schema requires the path it listens on: always, or (a DingTalk kind that
    # may listen on Stream instead) whenever it listens on HTTP.
    fragment = schema()["$defs"][_dispatch()[kind]]
    over_http = fragment["required"] + fragment.get("else", {}).get("required", [])
    assert ("path" in over_http) is routed
    if "else" in fragment:
        assert fragment["if"] == {
            "properties": {"listen": {"const": "stream"}},
            "required": ["listen"],
        }
        assert "path" not in fragment["then"].get("required", [])


@pytest.mark.parametrize("kind", sorted(CONFIG_KINDS))
def test_default_bodies_are_bundled(kind: str) -> None:
    for suffix in ("md", "txt"):
        assert (data_dir("templates") / f"{CONFIG_KINDS[kind].default_body}.{suffix}.j2").is_file()


def test_render_says_what_a_kind_takes_when_it_takes_no_alerts() -> None:
    assert RUNTIME_KINDS["dingtalk_robot"].sample is None
    assert RUNTIME_KINDS["dingtalk_robot"].takes == "chat commands"
    assert all(k.sample is not None for t, k in RUNTIME_KINDS.items() if t != "dingtalk_robot")


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        ({"alertmanager"}, ALERTMANAGER_VARIABLES),
        ({"alertmanager", "webhook"}, frozenset()),  # only what every one of them offers
        ({"grafana"}, GRAFANA_VARIABLES),
        ({"alertmanager", "grafana"}, ALERTMANAGER_VARIABLES),  # Grafana's is Alertmanager's, +
        ({"webhook"}, frozenset()),
        (set(), frozenset()),  # no inputs known: the common variables only
    ],
)
def test_rule_variables_are_what_every_kind_of_the_rule_offers(
    kinds: set[str], expected: frozenset[str]
) -> None:
    assert rule_variables(kinds) == expected


def test_a_rule_fed_by_one_kind_takes_its_defaults() -> None:
    assert single({"file"}) is CONFIG_KINDS["file"]
    assert single({"file", "webhook"}) is None
    assert single(set()) is None
    # Sources whose own routes decide repeats (Alertmanager's, Grafana's notification policies).
    repeating = sorted(t for t, k in CONFIG_KINDS.items() if k.repeats_itself)
    assert repeating == ["alertmanager", "grafana"]


@pytest.mark.parametrize(
    ("header", "token", "refusal"),
    [
        ("", None, None),  # no token configured: anyone
        ("Bearer anything", None, None),
        ("Bearer s3cret", "s3cret", None),
        ("bearer s3cret", "s3cret", None),  # the scheme is case-insensitive
        ("Bearer  s3cret ", "s3cret", None),  # surrounding blanks are not part of it
        ("", "s3cret", "missing bearer token (Authorization: Bearer …)"),
        ("Bearer", "s3cret", "missing bearer token (Authorization: Bearer …)"),
        ("Basic s3cret", "s3cret", "missing bearer token (Authorization: Bearer …)"),
        ("Bearer wrong", "s3cret", "wrong bearer token"),
        ("Bearer s3cret2", "s3cret", "wrong bearer token"),
    ],
)
def test_bearer_refusal(header: str, token: str | None, refusal: str | None) -> None:
    assert bearer_refusal(header, token) == refusal


HEADER_TOKENS = [
    # (header value, configured token, refusal or None)
    ("s3cret", "s3cret", None),
    (" s3cret ", "s3cret", None),
    ("", "s3cret", "missing token (X-Gitlab-Token: …)"),
    ("Bearer s3cret", "s3cret", "wrong token in X-Gitlab-Token"),
    ("other", "s3cret", "wrong token in X-Gitlab-Token"),
    ("", None, None),  # no token configured: nothing to check
]


@pytest.mark.parametrize(("value", "token", "refusal"), HEADER_TOKENS)
def test_a_token_in_its_own_header(value: str, token: str | None, refusal: str | None) -> None:
    assert header_token_refusal(value, token, "X-Gitlab-Token") == refusal
