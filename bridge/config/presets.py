"""Presets: a known alert source (Grafana, CloudMonitor, Zabbix, GitLab...) as one line of config.

A preset is a folder under `examples/sources/` (shipped in the package as `bridge/sources`):
`preset.yaml` holds the input settings that read the tool's body (format, items, labels,
status, identity, time), the default title of a rule fed only by it, and where its samples come
from; `message.md.j2` and `message.txt.j2` are its default bodies, in both locales; `samples/`
holds real payloads from the tool's documentation (golden renders in tests/test_presets.py).

`inputs: {grafana: {preset: grafana}}` is expanded before the schema sees the file: the preset's
settings, then the operator's keys over them (a mapping such as `labels` is merged key by key, so
one label can be added or replaced). The `preset` key stays, so the rules compiler knows which
title and bodies to default to.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bridge.config.resources import data_dir
from bridge.config.yamlsource import Document

# Settings merged key by key (the operator adds a label without restating the others).
_MERGED = frozenset({"labels", "annotations"})


@dataclass(frozen=True)
class Sample:
    file: Path
    source: str  # where it comes from (documentation page, constructed from...)


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    docs: str  # the tool's documentation of what it sends
    setup: str  # how to point the tool at the bridge
    input: Mapping[str, Any]  # the input's settings (type, path, format, templates...)
    title: str | None  # default rule title (a template); None: the input kind's
    samples: tuple[Sample, ...]
    # The default body's name for the template loader (without `.md.j2`): its own
    # `<name>/message`, or a bundled template (Grafana's preset uses the grafana kind's).
    body: str


def _preset(folder: Path) -> Preset:
    spec = yaml.safe_load((folder / "preset.yaml").read_text("utf-8"))
    return Preset(
        name=folder.name,
        description=str(spec["description"]),
        docs=str(spec["docs"]),
        setup=str(spec["setup"]).strip(),
        input=spec["input"],
        title=spec.get("title"),
        samples=tuple(Sample(folder / s["file"], str(s["source"])) for s in spec["samples"]),
        body=str(spec.get("body", f"{folder.name}/message")),
    )


@functools.cache
def presets() -> Mapping[str, Preset]:
    """Every bundled preset by name (read once: they ship with the package)."""
    root = data_dir("sources")
    return {p.name: _preset(p) for p in sorted(root.iterdir()) if (p / "preset.yaml").is_file()}


def expanded(preset: Preset, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The input definition `spec` (which names `preset`) over the preset's settings."""
    out = copy.deepcopy(dict(preset.input))
    for key, value in spec.items():
        if key in _MERGED and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def expand_presets(doc: Document) -> None:
    """Replace each input that names a known preset by its expansion, in place. An unknown name
    is left for the schema to report (its `preset` enum lists the known ones, and an input with
    a `preset` needs no `type`)."""
    inputs = doc.data.get("inputs") if isinstance(doc.data, dict) else None
    if not isinstance(inputs, dict):
        return
    known = presets()
    for name, spec in inputs.items():
        wanted = spec.get("preset") if isinstance(spec, dict) else None
        if isinstance(wanted, str) and wanted in known:
            inputs[name] = expanded(known[wanted], spec)
