"""A DingTalk that says yes at once: for benchmarks where the senders must work as hard as the
intake (issue 13's saturation scenario), not for behaviour (the simulator is for that).

    python -m bench.fakedingtalk --port 18080

POST /robot/send answers {"errcode":0} immediately over keep-alive HTTP/1.1 and remembers the
benchmark markers (BM...) each message carries; GET /count says how many messages it has seen and
how many distinct markers of each phase (the letter after BM). No signature, keyword, size or
rate checks: everything is accepted.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MARKER = re.compile(rb"BM[A-Z]\d+x\d{7}")
OK = b'{"errcode":0,"errmsg":"ok"}'


class Seen:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages = 0
        self.markers: set[bytes] = set()

    def add(self, body: bytes) -> None:
        found = set(MARKER.findall(body))
        with self.lock:
            self.messages += 1
            self.markers |= found

    def count(self) -> dict[str, object]:
        """Messages seen, and distinct markers by phase (the letter after "BM")."""
        with self.lock:
            phases: dict[str, int] = {}
            for marker in self.markers:
                phase = chr(marker[2])
                phases[phase] = phases.get(phase, 0) + 1
            return {"messages": self.messages, "markers": phases}


def handler(seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as DingTalk's front end
        # The answer's head and body are two writes: with Nagle's algorithm on, the body
        # waited for the ACK of the head, which the bridge's side delays up to 40 ms. Every
        # call then took ~40 ms, and the senders waited on this fake, not on the bridge.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.add(body)
            self._answer(OK)

        def do_GET(self) -> None:
            self._answer(json.dumps(seen.count()).encode())

        def _answer(self, payload: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass  # silence: one line per message would cost more than the answer

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fakedingtalk", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(Seen()))
    server.daemon_threads = True
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
