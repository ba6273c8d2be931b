"""`dingtalk-bridge sources [NAME]`: the bundled presets, and how to use one.

    dingtalk-bridge sources                 # every preset: name, what it reads, its default path
    dingtalk-bridge sources grafana         # how to point the tool at the bridge, the one line of
                                            # config, what it expands to, the samples

The presets themselves are data (examples/sources/, bridge/config/presets.py).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from bridge.cli.common import table
from bridge.config.presets import Preset, presets


def _listing() -> None:
    rows = [
        [p.name, str(p.input.get("type", "")), str(p.input.get("path", "")), p.description]
        for p in presets().values()
    ]
    table(rows, ["preset", "type", "path", "what it reads"])


def _shown(preset: Preset) -> str:
    one_line = {"inputs": {preset.name.replace("-", "_"): {"preset": preset.name}}}
    expanded = {"inputs": {preset.name.replace("-", "_"): dict(preset.input)}}
    samples = "\n".join(f"  {s.file}\n    ({s.source})" for s in preset.samples)
    return "\n".join(
        [
            f"# {preset.name}: {preset.description}",
            f"# what it sends: {preset.docs}",
            "",
            "## Set it up",
            preset.setup,
            "",
            "## In the config (keys beside `preset` go over the preset's)",
            yaml.safe_dump(one_line, allow_unicode=True, sort_keys=False).rstrip(),
            "",
            "## What that stands for",
            yaml.safe_dump(expanded, allow_unicode=True, sort_keys=False, width=100).rstrip(),
            "",
            f"## Rules fed only by it default to {preset.body}.md.j2 / .txt.j2"
            + (" and this title:" if preset.title else ""),
            *([f"  {preset.title}"] if preset.title else []),
            "",
            "## Samples (try one: dingtalk-bridge render -c FILE --input NAME --payload FILE)",
            samples,
        ]
    )


def cmd_sources(args: argparse.Namespace) -> int:
    known = presets()
    if args.name is None:
        _listing()
        return 0
    preset = known.get(args.name)
    if preset is None:
        print(
            f"error: no preset {args.name!r}; known: {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    print(_shown(preset))
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "sources",
        help="the bundled presets for known alert sources (Grafana, CloudMonitor, Zabbix...)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", nargs="?", help="show how to use this preset")
    p.set_defaults(func=cmd_sources)
