"""What the command-line tools share: the config loaded with every problem said, the state
store opened beside the daemon, and plain tables."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bridge.config.compile import load_config
from bridge.config.model import Config
from bridge.durations import format_time
from bridge.errors import ConfigError
from bridge.store.api import Store
from bridge.store.backend import open_store
from bridge.store.statedir import StateError

DEFAULT_CONFIG = "/etc/dingtalk-bridge/config.yaml"


def load_or_report(path: str) -> Config | None:
    """The compiled config, or None after printing every problem (for the commands)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        count = len(exc.problems)
        print(f"{path}: {count} problem{'s' if count != 1 else ''}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem.format()}", file=sys.stderr)
        return None


def when(stamp: float, tz: object) -> str:
    if isinstance(stamp, int | float) and stamp <= 0:
        return "always"
    return format_time(stamp, tz)  # type: ignore[arg-type]


def table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


Action = Callable[[argparse.Namespace, Config, Store], int]


def on_store(args: argparse.Namespace, actions: dict[str, Action]) -> int:
    """Run the chosen action with the config's state store open."""
    config = load_or_report(args.config)
    if config is None:
        return 1
    try:
        store = open_store(config)
    except StateError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 1
    try:
        return actions[args.action](args, config, store)
    finally:
        store.close()


def config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c",
        "--config",
        default=DEFAULT_CONFIG,
        help=f"the YAML config (for state_dir); default {DEFAULT_CONFIG}",
    )
