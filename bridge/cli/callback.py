"""`dingtalk-bridge callback register|update|show|delete|failed`: the app's event-callback
registration with DingTalk (reference §4.1), made with the access token of an app from the config
(a work_notice target) and the token and aes_key of a `dingtalk_callback` input.

Registering makes DingTalk send the `check_url` event to the URL at once, so the daemon must be
running and reachable there first; DingTalk answers 71009 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any, TypeVar

from bridge.cli.common import load_or_report
from bridge.config.model import CallbackInput
from bridge.dingtalk.client import DingTalkClient
from bridge.dingtalk.session import make_session
from bridge.errors import DeliveryError

T = TypeVar("T")
PATHS = {
    "register": ("POST", "/call_back/register_call_back"),
    "update": ("POST", "/call_back/update_call_back"),
    "show": ("GET", "/call_back/get_call_back"),
    "delete": ("GET", "/call_back/delete_call_back"),
    "failed": ("GET", "/call_back/get_call_back_failed_result"),
}


def _choose(what: str, options: Mapping[str, T], name: str | None) -> T | None:
    """options[name], or the only option when no name is given; else say what there is."""
    if name is None and len(options) == 1:
        return next(iter(options.values()))
    if name is not None and name in options:
        return options[name]
    print(f"{what} ({', '.join(sorted(options)) or 'none in the config'})", file=sys.stderr)
    return None


def _masked(answer: dict[str, Any]) -> dict[str, Any]:
    """`show` prints the registration without its token and aes_key in full."""
    return {
        k: (f"{v[:3]}…" if k in ("token", "aes_key") and isinstance(v, str) else v)
        for k, v in answer.items()
    }


def cmd_callback(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return 1
    apps = config.app_targets()
    app = _choose("--app must name a work_notice target", apps, args.app)
    if app is None:
        return 2
    body: dict[str, Any] | None = None
    if args.action in ("register", "update"):
        inputs = {  # one listening on Stream has no URL to register
            n: i for n, i in config.inputs.items() if isinstance(i, CallbackInput) and not i.stream
        }
        spec = _choose(
            "--input must name a dingtalk_callback input (listen: http)", inputs, args.input
        )
        if spec is None:
            return 2
        if not args.url or not args.tags:
            print(f"callback {args.action} needs --url and --tags", file=sys.stderr)
            return 2
        tags = [t.strip() for group in args.tags for t in group.split(",") if t.strip()]
        body = {
            "call_back_tag": tags,
            "token": spec.token,
            "aes_key": spec.aes_key,
            "url": args.url,
        }
    method, path = PATHS[args.action]
    client = DingTalkClient(make_session())
    try:
        answer = client.app_call(app, method, path, body, f"callback {args.action}")
    except DeliveryError as exc:
        print(f"callback {args.action} failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(_masked(answer), ensure_ascii=False, indent=2))
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("callback", help="register the app's event callback URL with DingTalk")
    p.add_argument("action", choices=sorted(PATHS))
    p.add_argument("-c", "--config", required=True, help="the YAML config file")
    p.add_argument(
        "--app", help="the work_notice target whose app registers (default: the only one)"
    )
    p.add_argument("--input", help="the dingtalk_callback input (default: the only one)")
    p.add_argument("--url", help="register/update: the public URL of that input's path")
    p.add_argument(
        "--tags",
        action="append",
        help="register/update: event types, e.g. user_add_org,bpms_instance_change",
    )
    p.set_defaults(func=cmd_callback)
