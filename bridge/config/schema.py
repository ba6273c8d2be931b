"""Validate a loaded document against schemas/config.schema.json and explain what is wrong.

jsonschema's own messages quote the offending value (which may be a secret) and speak in schema
terms; these are rewritten into one sentence per problem, pointing at the line, with a
"did you mean" hint for misspelt keys and enum values.
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from typing import Any

import jsonschema

from bridge.config.resources import data_dir
from bridge.config.yamlsource import Document, PathKey
from bridge.errors import Problem

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


@cache
def schema() -> dict[str, Any]:
    """The published schema, shipped inside the package as `bridge.schemas/config.schema.json`."""
    text = (data_dir("schemas") / "config.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


def did_you_mean(word: str, choices: list[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f'did you mean "{close[0]}"?' if close else None


def validate(doc: Document) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[PathKey, str]] = set()
    for error in _leaf_errors(_validator().iter_errors(doc.data)):
        path: PathKey = tuple(error.absolute_path)
        for problem in _explain(doc, path, error):
            key = (path, problem.message)
            if key not in seen:
                seen.add(key)
                problems.append(problem)
    return problems


def _leaf_errors(errors: Any) -> list[jsonschema.ValidationError]:
    """Flatten if/then and oneOf wrappers down to the errors that name a concrete problem."""
    out: list[jsonschema.ValidationError] = []
    for error in errors:
        if error.validator in ("allOf", "if", "then") and error.context:
            out.extend(_leaf_errors(error.context))
        elif error.validator == "oneOf" and error.context and _is_duration(error.schema):
            out.append(error)  # one message for "not a duration" beats two alternatives
        elif error.validator in ("oneOf", "anyOf") and error.context:
            out.extend(_leaf_errors(error.context))
        else:
            out.append(error)
    return out


_NAMES_RULE = (
    "names may contain only letters, digits, '_', '.', '-' and start with a letter or digit"
)


def _is_duration(sub: Any) -> bool:
    return isinstance(sub, dict) and "A number of seconds" in str(sub.get("description", ""))


def _explain(doc: Document, path: PathKey, error: jsonschema.ValidationError) -> list[Problem]:
    v = error.validator
    sub = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    rule: Any = error.validator_value  # the schema keyword's value, e.g. the list of required keys
    if v == "additionalProperties" and isinstance(instance, dict):
        known = sorted(sub.get("properties", {}))
        extras = [k for k in instance if k not in sub.get("properties", {})]
        return [
            doc.problem((*path, k), f'unknown key "{k}"', did_you_mean(k, known), at_key=True)
            for k in extras
        ]
    if v == "required" and isinstance(instance, dict):
        missing = [k for k in rule if k not in instance]
        return [doc.problem(path, f'missing required key "{k}"') for k in missing]
    if v == "type":
        wants = [rule] if isinstance(rule, str) else list(rule)
        return [doc.problem(path, f"must be {' or '.join(_TYPE_NAMES.get(w, w) for w in wants)}")]
    if v in ("enum", "const"):
        choices = [str(c) for c in (rule if v == "enum" else [rule])]
        hint = did_you_mean(str(instance), choices) if isinstance(instance, str) else None
        return [doc.problem(path, f"must be one of: {', '.join(choices)}", hint)]
    if v == "oneOf" and _is_duration(sub):
        return [doc.problem(path, "must be a duration", 'e.g. 30, "500ms", "30s", "5m", "2h"')]
    if v == "pattern" and "propertyNames" in error.schema_path:  # (the name, not its value)
        return [doc.problem(path, f'"{str(instance)[:60]}": {_NAMES_RULE}')]
    if v == "pattern":
        if path and path[-1] in ("webhook", "api_base"):  # (or a ${VAR} to expand)
            return [doc.problem(path, "must be an http:// or https:// URL")]
        if path and path[-1] == "path":
            return [doc.problem(path, 'must start with "/"')]
        if path and path[-1] == "node_id":
            return [doc.problem(path, "must hold no white space")]
        return [doc.problem(path, f"does not have the expected form ({rule})")]
    if v == "propertyNames":
        return [doc.problem(path, _NAMES_RULE)]
    if v in ("minItems", "minProperties"):
        return [doc.problem(path, "must not be empty")]
    if v == "maxItems":
        return [doc.problem(path, f"may hold at most {rule} entries")]
    if v == "minLength":
        return [doc.problem(path, "must not be empty")]
    if v == "maxLength":
        return [doc.problem(path, f"may be at most {rule} characters long")]
    if v in ("minimum", "maximum"):
        side = "at least" if v == "minimum" else "at most"
        return [doc.problem(path, f"must be {side} {rule}")]
    # Anything else: jsonschema's message without the instance (which may be a secret).
    return [doc.problem(path, f"does not satisfy schema rule '{v}'")]
