"""schemas/config.schema.json: a valid, documented, closed draft 2020-12 schema that the example
config satisfies, and that `dingtalk-bridge schema` prints as is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import yaml

from bridge.config.compile import load_config
from bridge.config.schema import validate
from bridge.config.yamlsource import load_document
from tests.harness import ROOT, bridge_cli

SCHEMA_FILE = ROOT / "schemas" / "config.schema.json"
EXAMPLE = ROOT / "config.example.yaml"

# Objects that dispatch on "type" through allOf/if/then to a closed schema, so cannot be closed.
DISPATCHERS = frozenset({"$defs.target", "$defs.input"})
# Optional top-level keys config.example.yaml may leave out. None today: it shows every section.
# `state` puts the state in a PostgreSQL database, which the example (run as the README's demo,
# without one) cannot name; it shows the key in a comment instead (see the test below).
OPTIONAL_TOP_LEVEL_KEYS_NOT_IN_EXAMPLE: frozenset[str] = frozenset({"state"})


def load_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text("utf-8"))
    return loaded


def subschemas(node: Any, path: str = "") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, role, schema) for every schema under `node`.

    role is "property" (an entry of `properties`), "def" (an entry of `$defs`), "values" (a
    schema-valued additionalProperties), "items" or "other" (then, allOf/oneOf/anyOf branches).
    `if` conditions are skipped: they are predicates ({"properties": {"type": {"const": ...}}}),
    not places a document's keys are described, and closing them would break the dispatch.
    """
    if not isinstance(node, dict):
        return
    for name, sub in node.get("properties", {}).items():
        at = f"{path}.{name}" if path else name
        yield at, "property", sub
        yield from subschemas(sub, at)
    for name, sub in node.get("$defs", {}).items():
        at = f"$defs.{name}"
        yield at, "def", sub
        yield from subschemas(sub, at)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        yield f"{path}.*", "values", extra
        yield from subschemas(extra, f"{path}.*")
    items = node.get("items")
    if isinstance(items, dict):
        yield f"{path}[]", "items", items
        yield from subschemas(items, f"{path}[]")
    if isinstance(node.get("then"), dict):
        yield f"{path}.then", "other", node["then"]
        yield from subschemas(node["then"], f"{path}.then")
    for keyword in ("allOf", "oneOf", "anyOf"):
        for i, sub in enumerate(node.get(keyword, [])):
            yield f"{path}.{keyword}[{i}]", "other", sub
            yield from subschemas(sub, f"{path}.{keyword}[{i}]")


def test_schema_is_valid_draft_2020_12() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_walk_reaches_every_level() -> None:
    """Guard for the two tests below: the walk must see nested properties, not just the top."""
    paths = {path for path, _, _ in subschemas(load_schema())}
    for expected in (
        "server.listen",
        "$defs.robot.webhook",
        "$defs.work_notice.agent_id",
        "$defs.webhook_input.labels.*",
        "$defs.rule.buttons[].url",
        "$defs.rule.mention.mobiles",
        "$defs.target.allOf[0].then",
    ):
        assert expected in paths


def test_every_property_has_a_description() -> None:
    missing = []
    for path, role, sub in subschemas(load_schema()):
        if role == "other" or set(sub) == {"$ref"}:
            continue  # branches and references: described where they lead
        if role == "items" and sub.get("type") != "object":
            continue  # the element type of a described list ("keywords[]" is a string)
        description = sub.get("description")
        if not (isinstance(description, str) and description.strip()):
            missing.append(path)
    assert missing == []


def test_objects_with_properties_are_closed() -> None:
    schema = load_schema()
    open_objects = [
        path
        for path, _, sub in [("", "root", schema), *subschemas(schema)]
        if "properties" in sub
        and path not in DISPATCHERS
        and sub.get("additionalProperties") is not False
    ]
    assert open_objects == []


@pytest.mark.parametrize("name", sorted(DISPATCHERS))
def test_dispatchers_lead_only_to_closed_schemas(name: str) -> None:
    schema = load_schema()
    dispatcher = schema["$defs"][name.removeprefix("$defs.")]
    assert "additionalProperties" not in dispatcher
    kinds = dispatcher["properties"]["type"]["enum"]
    branches = dispatcher["allOf"]
    assert [b["if"]["properties"]["type"]["const"] for b in branches] == kinds
    for branch in branches:
        target = branch["then"]["$ref"].removeprefix("#/$defs/")
        closed = schema["$defs"][target]
        assert closed["additionalProperties"] is False
        assert closed["properties"]["type"]["const"] == branch["if"]["properties"]["type"]["const"]


def test_example_as_written_validates() -> None:
    """What an editor (yaml-language-server, see the example's first line) validates."""
    data = yaml.safe_load(EXAMPLE.read_text("utf-8"))
    errors = [
        (list(e.absolute_path), e.validator)
        for e in jsonschema.Draft202012Validator(load_schema()).iter_errors(data)
    ]
    assert errors == []


def test_example_validates_after_expansion() -> None:
    doc, problems = load_document(EXAMPLE.read_text("utf-8"), str(EXAMPLE), {})
    assert problems == []
    assert validate(doc) == []
    assert list(jsonschema.Draft202012Validator(load_schema()).iter_errors(doc.data)) == []


def test_example_loads() -> None:
    config = load_config(EXAMPLE, environ={})
    assert set(config.targets) == {"ops", "oncall"}
    assert set(config.inputs) == {"am", "ci", "grafana", "app-log", "dingtalk-events", "chat"}
    assert getattr(config.inputs["grafana"], "preset", None) == "grafana"
    assert [r.name for r in config.rules] == [
        "critical",
        "ci-main",
        "app-errors",
        "grafana",
        "people-join",
        "everything-else",
    ]


def test_example_uses_every_top_level_key() -> None:
    schema = load_schema()
    example = yaml.safe_load(EXAMPLE.read_text("utf-8"))
    defined = set(schema["properties"])
    assert defined - set(schema["required"]) >= OPTIONAL_TOP_LEVEL_KEYS_NOT_IN_EXAMPLE
    assert defined - set(example) == OPTIONAL_TOP_LEVEL_KEYS_NOT_IN_EXAMPLE
    text = EXAMPLE.read_text("utf-8")
    for key in OPTIONAL_TOP_LEVEL_KEYS_NOT_IN_EXAMPLE:
        assert f"\n# {key}:" in text, f"{key} is not even shown in a comment"


def test_schema_command_prints_the_file() -> None:
    result = bridge_cli("schema")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == load_schema()
