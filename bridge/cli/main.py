"""Command line: dingtalk-bridge run | check | render | send-test | simulator | schema (and the
command groups route, outbox, silence, state, callback, oncall: one module each beside this)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from bridge import __version__
from bridge.cli.common import load_or_report
from bridge.errors import DeliveryError, InputError
from bridge.logs import REDACTOR, fmt_fields, setup

if TYPE_CHECKING:
    from bridge.dingtalk.channel import ResultChannel

log = logging.getLogger("bridge")


T = TypeVar("T")


def _pick(kind: str, name: str, choices: Mapping[str, T]) -> T | None:
    """choices[name], or None after saying which names there are."""
    if name in choices:
        return choices[name]
    print(f"unknown {kind} {name!r}; {kind}s: {', '.join(sorted(choices))}", file=sys.stderr)
    return None


def cmd_check(args: argparse.Namespace) -> int:
    from bridge.store.backend import verify
    from bridge.store.statedir import StateError

    config = load_or_report(args.config)
    if config is None:
        return 1
    # A config the daemon cannot run with is not OK: its state_dir (or database) must be usable
    # too. (Said only when it is not: the OK line stays one line, as scripts read it; a database
    # adds a line after it, on its reachability and schema.)
    try:
        found = verify(config)
    except StateError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 1
    print(
        f"{args.config}: OK: {len(config.inputs)} inputs, {len(config.rules)} rules, "
        f"{len(config.targets)} targets (sha256 {config.digest[:12]})"
    )
    if config.state_url is not None:
        print(f"{args.config}: {found}")
    if config.state_url is not None or config.node_id_configured:
        source = "state.node_id" if config.node_id_configured else "the host name"
        print(
            f"{args.config}: node id {config.node_id} ({source}): the file inputs' offsets are"
            " kept under it"
        )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    setup(args.log_level, fmt=args.log_format)
    simulator = None
    if args.simulator:
        from bridge.cli.simulator_embed import start_for_config

        simulator = start_for_config(args.config, args.simulator)
    config = load_or_report(args.config)
    if config is None:
        return 1
    from bridge.app.run import run
    from bridge.app.siblings import role_from_env
    from bridge.app.workers import supervise
    from bridge.store.statedir import StateError

    try:
        several = config.server.workers > 1 or config.server.background_worker
        if several and role_from_env() is None:
            # The workers run this command again, without the simulator (started here, once).
            worker_args = ["run", "-c", args.config, "--log-level", args.log_level]
            return supervise(config, [*worker_args, "--log-format", args.log_format])
        return run(config)
    except StateError as exc:  # said as it is: what, where, what to do (no traceback)
        log.error(f"cannot start: {exc}")
        return 1
    finally:
        if simulator is not None:
            simulator.stop()


def cmd_render(args: argparse.Namespace) -> int:
    from bridge.dingtalk.channels import bodies_for
    from bridge.inputs.registry import KINDS
    from bridge.pipeline.preview import narrate, preview

    config = load_or_report(args.config)
    if config is None:
        return 1
    spec = _pick("input", args.input, config.inputs)
    if spec is None:
        return 2
    now = datetime.now(UTC)
    kind = KINDS[spec.type]
    if kind.sample is None:
        print(f"input {spec.name} takes {kind.takes}, not alerts", file=sys.stderr)
        return 2
    try:
        path = Path(args.payload)
        events = kind.sample(spec, path.read_bytes(), str(path.absolute()), now)
    except (OSError, ValueError) as exc:
        print(f"{args.payload}: cannot read: {exc}", file=sys.stderr)
        return 2
    except InputError as exc:
        print(f"{args.payload}: the input would answer {exc.status}: {exc}", file=sys.stderr)
        return 1
    result = preview(config, events, now)
    if result.state_problem:
        print(f"# {result.state_problem}: as if the state were empty", file=sys.stderr)
    shown = 0
    for said in narrate(result, config.timezone, config.people):
        if isinstance(said, str):
            print(f"# {said}", file=sys.stderr)
            continue
        if args.target and said.target != args.target:
            continue
        target = config.targets[said.target]
        message = result.rendered[said.id].message
        bodies = bodies_for(target, message, [said.id], now.timestamp(), config.timezone)
        for index, body in enumerate(bodies, start=1):
            part = f", part {index} of {len(bodies)}" if len(bodies) > 1 else ""
            print(f"# rule {said.rule} -> target {said.target} ({target.type}{part})")
            print(json.dumps(body, ensure_ascii=False, indent=2))
        shown += 1
    return 0 if shown else 1


def cmd_send_test(args: argparse.Namespace) -> int:
    from bridge.clock import SYSTEM_CLOCK
    from bridge.delivery.oneoff import send_once
    from bridge.delivery.robots import RobotWindows
    from bridge.delivery.turns import StoredWindows
    from bridge.dingtalk.channel import ResultChannel
    from bridge.dingtalk.channels import channel_for
    from bridge.dingtalk.client import DingTalkClient
    from bridge.dingtalk.session import make_session
    from bridge.model import Message
    from bridge.pipeline.ids import new_id
    from bridge.store.backend import open_store
    from bridge.store.statedir import StateError

    setup("warning")
    config = load_or_report(args.config)
    if config is None:
        return 1
    target = _pick("target", args.target, config.targets)
    if target is None:
        return 2
    REDACTOR.set_secrets(config.secrets())
    now = datetime.now(UTC)
    text = args.text or (
        f"### dingtalk-bridge test\n\nTarget **{target.name}** is reachable: "
        f"this test message was sent at {now.astimezone(config.timezone):%Y-%m-%d %H:%M:%S}."
    )
    message = Message(msgtype="markdown", title="dingtalk-bridge test", text=text)
    client = DingTalkClient(make_session())
    clock = SYSTEM_CLOCK
    # The test's calls take turns in the robot's window the daemon keeps in the state store,
    # so a test never makes the call that locks the robot out (130101).
    try:
        store = open_store(config)
    except StateError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        hint = "send-test takes turns in the robot's rate window kept in the state store"
        print(f"hint: {hint}: run it where (and as whom) the daemon runs", file=sys.stderr)
        return 1
    try:
        windows = RobotWindows(StoredWindows(store, clock))
        task_id = send_once(
            windows, store, client, target, message, new_id(), clock, config.timezone
        )
    except DeliveryError as exc:
        print(
            REDACTOR.scrub(
                fmt_fields(
                    "failed",
                    target=target.name,
                    reason=exc.reason.value,
                    errcode=exc.errcode,
                    error=str(exc),
                )
            ),
            file=sys.stderr,
        )
        return 1
    finally:
        store.close()
    print(fmt_fields("sent", target=target.name, task_id=task_id))
    channel = channel_for(target, client)
    if isinstance(channel, ResultChannel) and task_id is not None:
        return _received(channel, task_id)
    return 0


def _received(channel: ResultChannel, task_id: int) -> int:
    """A work notice's errcode 0 only means DingTalk queued it: ask getsendresult who received
    it (for up to ~15 s); exit 1 if DingTalk says nobody did."""
    import time

    from bridge.delivery.noticepoll import POLL_DELAYS
    from bridge.dingtalk.sendresult import SendResult, is_final, parse_send_result, refusal_summary

    expected = channel.recipients()
    previous: SendResult | None = None
    for delay in POLL_DELAYS[:4]:
        time.sleep(delay)
        try:
            result = parse_send_result(channel.send_result(task_id))
        except (DeliveryError, ValueError) as exc:
            print(fmt_fields("result unknown", target=channel.name, error=str(exc)))
            return 0
        if is_final(result, expected, previous):
            print(
                fmt_fields(
                    "received" if result.got_it() else "nobody received it",
                    target=channel.name,
                    received=",".join(result.got_it()) or None,
                    refused=refusal_summary(result.refused) or None,
                )
            )
            return 0 if result.got_it() else 1
        previous = result
    print(fmt_fields("result unknown", target=channel.name, error="no final answer yet"))
    return 0


def cmd_schema(_args: argparse.Namespace) -> int:
    from bridge.config.schema import schema

    print(json.dumps(schema(), ensure_ascii=False, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dingtalk-bridge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dingtalk-bridge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("-c", "--config", required=True, help="the YAML config file")
        return p

    p = with_config(sub.add_parser("run", help="run the daemon in the foreground"))
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text (journald-style under systemd) or json, one object a line",
    )
    p.add_argument(
        "--simulator",
        metavar="HOST:PORT",
        help="also start the bundled DingTalk simulator there (it knows the config's robots/apps)",
    )
    p.set_defaults(func=cmd_run)
    p = with_config(sub.add_parser("check", help="validate the config and exit"))
    p.set_defaults(func=cmd_check)
    p = with_config(
        sub.add_parser("render", help="print the DingTalk bodies a payload would produce")
    )
    p.add_argument("--input", required=True, help="the input the payload arrives on")
    p.add_argument(
        "--payload",
        required=True,
        help="a JSON file with the request body (for a file input: lines of a log)",
    )
    p.add_argument("--target", help="only bodies for this target")
    p.set_defaults(func=cmd_render)
    p = with_config(sub.add_parser("send-test", help="send one test message to a target"))
    p.add_argument("--target", required=True)
    p.add_argument("--text", help="markdown text to send instead of the default")
    p.set_defaults(func=cmd_send_test)
    from bridge.cli import importpwd, oncall, outbox, route, silence, sources, state
    from bridge.cli.callback import add_parsers as callback_parsers

    route.add_parser(sub)
    outbox.add_parser(sub)
    silence.add_parser(sub)
    state.add_parser(sub)
    callback_parsers(sub)
    importpwd.add_parser(sub)
    sources.add_parser(sub)
    oncall.add_parser(sub)
    p = sub.add_parser("schema", help="print the config's JSON Schema")
    p.set_defaults(func=cmd_schema)
    sub.add_parser(
        "simulator", help="run a local DingTalk simulator (see simulator --help)", add_help=False
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulator"]:
        from bridge.simulator.cli import main as simulator_main

        return simulator_main(argv[1:])
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
