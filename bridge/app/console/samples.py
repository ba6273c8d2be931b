"""What the playground offers to try: the presets' real samples (examples/sources/*/samples),
the samples bundled here (samples/README.md says where each comes from), a log line for file
inputs, and the text of a rule's template."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bridge.config.presets import presets
from bridge.config.resources import data_dir
from bridge.config.rules import looks_like_file

BUNDLED = Path(__file__).parent / "samples"
MAX_SAMPLE_BYTES = 256 * 1024
_BY_KIND = {
    "alertmanager": ("alertmanager-firing.json", "alertmanager-resolved.json"),
    "prometheus": ("prometheus-alerts.json",),
}
_LOG_LINE = "2026-12-02 10:00:00 ERROR db.pool - connection refused: too many clients\n"


@dataclass(frozen=True)
class Sample:
    label: str
    text: str


def for_input(kind: str, preset: str | None) -> list[Sample]:
    """The samples for an input of `kind` (built from `preset`, if it names one)."""
    out = [Sample(name, _read(BUNDLED / name)) for name in _BY_KIND.get(kind, ())]
    if kind == "file":
        out.append(Sample("log line", _LOG_LINE))
    for found in presets().values():
        if preset == found.name or (preset is None and found.input.get("type") == kind):
            out += [Sample(f"{found.name}: {s.file.name}", _read(s.file)) for s in found.samples]
    return [s for s in out if s.text]


def template_text(config_dir: Path, template: object) -> str:
    """A rule's `template:` as text: inline text as is, a file's content (next to the config,
    else bundled); "" when the rule has none (its default body) or the file cannot be read."""
    if not isinstance(template, str):
        return ""
    if not looks_like_file(template):
        return template
    for folder in (config_dir, data_dir("templates")):
        path = (folder / template).resolve()
        if path.is_relative_to(folder.resolve()) and path.is_file():
            return _read(path)
    return ""


def _read(path: Path) -> str:
    try:
        raw = path.read_bytes()[: MAX_SAMPLE_BYTES + 1]
    except OSError:
        return ""
    return "" if len(raw) > MAX_SAMPLE_BYTES else raw.decode("utf-8", "replace")
