"""`python -m bridge simulator` / `python -m bridge.simulator`: run a local DingTalk.

Prints `dingtalk simulator listening on http://HOST:PORT` once it accepts connections (tests
wait for that line, so it is flushed), then one line per delivered message / rejection on
stderr unless --quiet, and exits 0 on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from bridge.listen import parse_listen
from bridge.simulator.server import DEFAULT_THREADS, serve_in_thread
from bridge.simulator.spec import DEFAULT_RATE_PER_MINUTE, SimulatorSpec, SpecError, load_spec
from bridge.simulator.state import SimulatorState

DEFAULT_LISTEN = "127.0.0.1:8061"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dingtalk-bridge simulator",
        description="A local stand-in for DingTalk: robot webhooks, gettoken and work "
        "notifications, with a control API under /_sim/ and a live page at /.",
    )
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address to listen on (default {DEFAULT_LISTEN}; port 0 picks a free port)",
    )
    parser.add_argument(
        "--stream-port",
        type=_non_negative_int,
        default=0,
        metavar="PORT",
        help="the Stream gateway's WebSocket port, on the --listen host (default 0: a free "
        "port; POST /v1.0/gateway/connections/open hands out its address)",
    )
    parser.add_argument("--spec", metavar="FILE", help="YAML/JSON file with robots and apps")
    parser.add_argument(
        "--accept-unknown-robots",
        action="store_true",
        help="auto-register unknown robot tokens (no secret, no keywords) instead of 300001",
    )
    parser.add_argument(
        "--rate-per-minute",
        type=_non_negative_int,
        default=DEFAULT_RATE_PER_MINUTE,
        metavar="N",
        help="robot rate limit when the spec does not set one (default 20; 0 = unlimited)",
    )
    parser.add_argument(
        "--threads", type=_positive_int, default=DEFAULT_THREADS, help=argparse.SUPPRESS
    )
    parser.add_argument("--quiet", action="store_true", help="no per-message lines on stderr")
    return parser


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        listen = parse_listen(args.listen)
        spec = load_spec(args.spec) if args.spec else SimulatorSpec()
    except (ValueError, SpecError) as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    state = SimulatorState(
        spec,
        accept_unknown_robots=args.accept_unknown_robots,
        default_rate_per_minute=args.rate_per_minute,
        log=None if args.quiet else _to_stderr,
    )
    try:
        server = serve_in_thread(listen, state, threads=args.threads, stream_port=args.stream_port)
    except OSError as exc:
        print(f"simulator: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        return 1

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Signal handlers can only be installed from the main thread; when main() is called from
    # another thread (embedding, tests) the caller is responsible for stopping us.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
    print(f"dingtalk simulator listening on {server.url}", flush=True)
    print(f"dingtalk simulator stream gateway on {server.stream.url}/connect", flush=True)
    try:
        # A bounded wait, so the loop re-checks even if a signal arrives mid-wait.
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0
