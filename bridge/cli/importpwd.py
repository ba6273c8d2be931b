"""dingtalk-bridge import-pwd: a prometheus-webhook-dingtalk config in, ours out.

The conversion is pure (bridge/config/pwd/); this module does its effects: it reads the old
config and the template files its `templates:` globs match (relative ones against the old
bridge's working directory, by default the old config's directory), writes the new config and,
with --secrets-to-env, the secrets' env file (mode 0600, never over an existing file unless
--force), compiles what it wrote as `check` would, and reports on stderr. No secret is printed:
the report names robots by host, and the env file is the only other place their values go.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bridge.config.compile import load_config
from bridge.config.pwd.convert import (
    ConversionError,
    Converted,
    Robot,
    TemplateFile,
    TemplateGlob,
    convert,
    template_patterns,
)
from bridge.config.pwd.render import render
from bridge.errors import ConfigError

MAX_READ_BYTES = 4 * 1024 * 1024  # an old config or template file larger than this is not one
PRIVATE = 0o600
SHARED = 0o644

DESCRIPTION = """\
Convert a prometheus-webhook-dingtalk (timonwong/prometheus-webhook-dingtalk v2) config.yml
into a dingtalk-bridge config that serves the same /dingtalk/<target>/send URLs: Alertmanager's
config does not change. Go templates are not converted: the bundled markdown template is used,
and the output lists which of your templates to port (their files and the names they define)."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "import-pwd",
        help="convert a prometheus-webhook-dingtalk config",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("old_config", metavar="CONFIG.yml", help="the old bridge's --config.file")
    p.add_argument("-o", "--output", help="write the new config there (default: stdout)")
    p.add_argument(
        "--web.listen-address",
        "--listen",
        dest="listen",
        metavar="ADDR",
        help='the old bridge\'s --web.listen-address, if it had one (its default ":8060")',
    )
    p.add_argument(
        "--secrets-to-env",
        metavar="ENV_FILE",
        help="read access tokens and signing secrets from ${DINGTALK_<TARGET>_...} variables,"
        " and write their values to ENV_FILE (KEY=value lines, mode 0600) instead of into the"
        " config",
    )
    p.add_argument(
        "--workdir",
        metavar="DIR",
        help="the old bridge's working directory, which relative `templates:` paths were read"
        " against (default: the old config's directory)",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.set_defaults(func=cmd_import_pwd)


def cmd_import_pwd(args: argparse.Namespace) -> int:
    source = Path(args.old_config)
    old = _read_old_config(source)
    if old is None:
        return 2
    outputs = [p for p in (args.output, args.secrets_to_env) if p]
    for path in outputs:
        if Path(path).exists() and not args.force:
            _say(f"{path} exists; --force to overwrite it")
            return 2
    workdir = Path(args.workdir) if args.workdir else source.parent
    templates = [_resolve(pattern, workdir) for pattern in template_patterns(old)]
    try:
        converted = convert(old, templates, args.listen, bool(args.secrets_to_env))
    except ConversionError as exc:
        _say(f"{source}: {exc}")
        return 1
    except ValueError as exc:  # the listen address
        _say(f"--web.listen-address: {exc}")
        return 2
    text = render(converted, str(source), args.secrets_to_env)
    if args.secrets_to_env:
        _write(Path(args.secrets_to_env), _env_file(converted, source), PRIVATE)
    if args.output:
        inline = not args.secrets_to_env and any(_has_secret(r) for r in converted.robots)
        _write(Path(args.output), text, PRIVATE if inline else SHARED)
    else:
        sys.stdout.write(text)
    _report(converted, source, args)
    return 0 if _compiles(text, args.output, converted) else 1


def _read_old_config(source: Path) -> Any:
    """The old config parsed, or None after saying why. A YAML error is reported by position
    only: the snippet PyYAML would quote may hold a secret."""
    try:
        raw = source.read_bytes()[: MAX_READ_BYTES + 1]
    except OSError as exc:
        _say(f"{source}: cannot read: {exc.strerror}")
        return None
    if len(raw) > MAX_READ_BYTES:
        _say(f"{source}: over {MAX_READ_BYTES // (1024 * 1024)} MiB: not a config")
        return None
    try:
        return yaml.safe_load(raw.decode("utf-8", errors="replace")) or {}
    except RecursionError:
        _say(f"{source}: nested too deeply: not a config")
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        _say(f"{source}{where}: not valid YAML: {getattr(exc, 'problem', None) or 'syntax error'}")
        return None


def _resolve(pattern: str, workdir: Path) -> TemplateGlob:
    """What the glob `pattern` matches, as the old bridge saw it (relative to its workdir)."""
    path = Path(pattern)
    full = path if path.is_absolute() else workdir / path
    files = []
    for match in sorted(glob.glob(str(full))):
        if not os.path.isfile(match):  # a directory, a device or a FIFO is no template
            continue
        try:
            with open(match, "rb") as handle:
                text = handle.read(MAX_READ_BYTES).decode("utf-8", errors="replace")
        except OSError:
            continue  # unreadable: reported as not found when nothing else is
        # Shown as the old config named it: relative to the old workdir when it was relative.
        shown = match if path.is_absolute() else os.path.relpath(match, workdir)
        files.append(TemplateFile(shown, text))
    return TemplateGlob(pattern, tuple(files))


def _has_secret(robot: Robot) -> bool:
    return robot.secret is not None or "access_token=" in robot.webhook


def _env_file(converted: Converted, source: Path) -> str:
    lines = [
        f"# Secrets of the robots converted from {source} by dingtalk-bridge import-pwd.",
        "# KEY=value lines: systemd EnvironmentFile=, docker --env-file, kubectl create secret"
        " generic --from-env-file.",
    ]
    lines += [f"{name}={value}" for name, value in sorted(converted.env.items())]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str, mode: int) -> None:
    """Write `text` to `path` with `mode` (set even on a file that existed: --force)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(text)


def _compiles(text: str, output: str | None, converted: Converted) -> bool:
    """Whether the written config compiles (what `check` checks but its state directory), with
    the env file's variables set; else say what is wrong."""
    environ = {**os.environ, **converted.env}
    try:
        if output:
            load_config(output, environ)
        else:
            with tempfile.TemporaryDirectory(prefix="import-pwd-") as scratch:
                path = Path(scratch) / "config.yaml"
                path.write_text(text, "utf-8")
                load_config(path, environ)
    except ConfigError as exc:
        _say(f"the new config does not pass check ({len(exc.problems)} problems):")
        for problem in exc.problems:
            _say(f"  {problem.format()}")
        return False
    return True


def _report(converted: Converted, source: Path, args: argparse.Namespace) -> None:
    where = args.output or "stdout"
    count = len(converted.robots)
    _say(f"{source}: {count} target{'s' if count != 1 else ''} converted into {where}")
    for robot in converted.robots:
        _say(f"  {robot.path} -> {_describe(robot)}")
    to_port = [*converted.port]
    to_port += [f"target {r.name}: {line}" for r in converted.robots for line in r.port]
    if to_port:
        _say("templates to port (Go templates are not converted; alertmanager.md.j2 is used):")
        for line in to_port:
            _say(f"  {line}")
    for warning in converted.warnings:
        _say(f"warning: {warning}")
    if args.secrets_to_env:
        names = ", ".join(sorted(converted.env)) or "none"
        _say(f"secrets: read from the environment ({names}); values in {args.secrets_to_env}")
    elif any(_has_secret(r) for r in converted.robots):
        mode = " (mode 0600)" if args.output else ""
        _say(f"secrets: written into {where} as the old config held them{mode}")
    if args.output:
        _say(f"next: dingtalk-bridge check -c {args.output}")


def _describe(robot: Robot) -> str:
    """The robot as the report shows it: its host, never its token or secret."""
    host = urlsplit(robot.webhook).hostname or "?"
    parts = [f"robot {robot.name} at {host}", "signed" if robot.secret else "unsigned"]
    if robot.mobiles:
        parts.append(f"@{len(robot.mobiles)} mobile{'s' if len(robot.mobiles) != 1 else ''}")
    if robot.mention_all:
        parts.append("@all")
    return ", ".join(parts)


def _say(line: str) -> None:
    print(line, file=sys.stderr)
