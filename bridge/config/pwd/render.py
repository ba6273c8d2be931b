"""The converted config as YAML with comments that explain each part (a pure function).

PyYAML writes no comments, and an operator leaving the old bridge reads this file more than
once: so the text is written here, section by section, with every value quoted as JSON (a
subset of YAML's double-quoted style) so no value is read back as something else. The tests
check that it loads back as exactly Converted.config().
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import yaml

from bridge.config.pwd.convert import Converted, Robot

WIDTH = 98


def render(converted: Converted, source: str, env_file: str | None = None) -> str:
    """The YAML text of `converted`, converted from the old config at `source`; `env_file` is
    where the secrets' values went (with --secrets-to-env)."""
    lines = _header(converted, source, env_file)
    lines += ["", "server:"]
    given = "given" if converted.listen_given else 'default ":8060", every interface'
    lines += _comment(
        f"The old bridge's --web.listen-address ({given}): Alertmanager reaches this bridge"
        " where it reached the old one. 127.0.0.1:PORT keeps it to this host.",
        "  ",
    )
    lines += [f"  listen: {_scalar(converted.listen)}", ""]
    lines += _comment(
        "state_dir: the outbox, dead letters and silences (default $STATE_DIRECTORY under"
        " systemd, else /var/lib/dingtalk-bridge). timezone: times in messages"
        " (default Asia/Shanghai)."
    )
    lines += ["", "targets:"]
    lines += _comment(
        "One robot per old target, with its webhook and its 加签 secret. If a robot checks"
        ' keywords (自定义关键词), list them (keywords: ["告警"]): the bridge makes sure one'
        " appears in every message.",
        "  ",
    )
    for robot in converted.robots:
        lines += _target(robot)
    lines += ["", "inputs:"]
    lines += _comment(
        "One per old target, at its old path: Alertmanager's webhook url"
        " http://HOST:PORT/dingtalk/<target>/send stays as it is. No token is needed, as before;"
        " add `token:` here and `http_config: {authorization: {credentials: ...}}` in"
        " Alertmanager to require one.",
        "  ",
    )
    for robot in converted.robots:
        lines += [f"  {_key(robot.name)}:", "    type: alertmanager", f"    path: {robot.path}"]
    lines += ["", "rules:"]
    lines += _comment(
        "What Alertmanager posts to an old target's path goes to its robot: one markdown message"
        " per notification, as before (Alertmanager still groups and repeats), with the old"
        " target's @-mentions (written into the text too, so DingTalk highlights them).",
        "  ",
    )
    for robot in converted.robots:
        lines += _rule(robot)
    text = "\n".join(lines) + "\n"
    return text


def _header(converted: Converted, source: str, env_file: str | None) -> list[str]:
    out = _comment(
        "dingtalk-bridge config, converted by `dingtalk-bridge import-pwd` from the"
        f" prometheus-webhook-dingtalk config {source}."
    )
    out += ["#"]
    out += _comment(
        "Alertmanager needs no change: each old target's URL, http://HOST:PORT/dingtalk/<target>"
        "/send, is served here by an `alertmanager` input at the same path, whose rule sends to"
        " the same robot, signed with the same secret, with the same @-mentions. New here:"
        " Alertmanager gets its 200 only once the message is stored, DingTalk's limit of 20"
        " messages a minute per robot is kept (a storm becomes digests), and a refusal from"
        " DingTalk (an errcode in an HTTP 200) is retried or kept as a dead letter."
    )
    out += [
        "#",
        "#   dingtalk-bridge check -c FILE                      validate it",
        "#   dingtalk-bridge send-test -c FILE --target NAME    send a robot one test message",
        "#   dingtalk-bridge run -c FILE                        run it",
        "#",
    ]
    to_port = [*converted.port]
    to_port += [f"target {r.name}: {line}" for r in converted.robots for line in r.port]
    if to_port:
        out += _comment(
            "Messages: Go templates cannot be converted, so every rule uses the bundled markdown"
            " template (alertmanager.md.j2). To keep your own look, port these to a Jinja"
            " template (a file next to this one, named by the rule's `template:`; see the"
            " README's template variables):"
        )
        for line in to_port:
            out += _comment(line, first="#   - ", rest="#     ")
    else:
        out += _comment(
            "Messages: every target used the old bridge's own look; the bundled markdown"
            " template (alertmanager.md.j2) takes its place."
        )
    out += ["#"]
    if converted.env:
        out += _comment(
            "Secrets: the robots' access tokens and signing secrets are read from the"
            f" environment ({', '.join(sorted(converted.env))}); {env_file or 'the env file'}"
            " holds their values, as KEY=value lines for systemd's EnvironmentFile= or"
            " docker's --env-file."
        )
    elif any(r.secret or "access_token=" in r.webhook for r in converted.robots):
        out += _comment(
            "Secrets: the robots' access tokens and signing secrets are written here as the old"
            " config held them: keep this file as private as that one, or convert again with"
            " --secrets-to-env FILE to read them from the environment (${VAR}; a secret may"
            " also come from a file: webhook_file, secret_file)."
        )
    if converted.warnings:
        out += ["#"]
        out += _comment("Warnings from the conversion:")
        for warning in converted.warnings:
            out += _comment(warning, first="#   - ", rest="#     ")
    return out


def _target(robot: Robot) -> list[str]:
    out = [f"  {_key(robot.name)}:", "    type: robot", f"    webhook: {_scalar(robot.webhook)}"]
    if robot.secret is not None:
        out.append(f"    secret: {_scalar(robot.secret)}")
    if robot.timeout is not None:
        out.append(f"    timeout: {robot.timeout}    # the old `timeout`: one call to DingTalk")
    return out


def _rule(robot: Robot) -> list[str]:
    out: list[str] = []
    for line in robot.port:
        out += _comment(f"to port: {line}", "  ")
    out += [
        f"  - name: {_key(robot.name)}",
        f"    inputs: [{_key(robot.name)}]",
        f"    targets: [{_key(robot.name)}]",
        "    msgtype: markdown",
    ]
    mention: list[str] = []
    if robot.mobiles:
        mention.append(f"mobiles: {_scalar(list(robot.mobiles))}")
    if robot.mention_all:
        mention.append("all: true")
    if mention:
        out.append(f"    mention: {{{', '.join(mention)}}}")
    return out


def _comment(text: str, indent: str = "", *, first: str = "", rest: str = "") -> list[str]:
    first = first or f"{indent}# "
    rest = rest or f"{indent}# "
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first.rstrip()]


def _scalar(value: Any) -> str:
    """`value` as JSON, which YAML reads back unchanged (strings double-quoted)."""
    return json.dumps(value, ensure_ascii=False)


def _key(name: str) -> str:
    """A name (a key, or an item of a flow list) as written: plain when YAML reads it back as
    the same string, else quoted."""
    return name if yaml.safe_load(f"{name}: 0") == {name: 0} else _scalar(name)
