"""The simulator's Stream WebSocket server: `websockets`' threaded server on its own port (the
HTTP side is WSGI on waitress, which speaks no WebSocket), feeding the gateway (stream.py).

The ticket is checked during the handshake, as DingTalk does (§2): a missing, used or expired
ticket is refused with HTTP 401 before the upgrade. A ticker thread sends what is due (frames
that waited for a connection or for their redelivery time on the simulator's clock).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from bridge.simulator.stream import StreamGateway, Ticket

_TICK = 0.1  # seconds between looks for frames due
MAX_FRAME = 1 << 20


class StreamServer:
    """`now` is the simulator's clock (it honours `/_sim/clock`)."""

    def __init__(
        self, gateway: StreamGateway, host: str, port: int, now: Callable[[], float]
    ) -> None:
        self.gateway = gateway
        self._now = now
        self._grants: dict[int, Ticket] = {}  # id(connection) -> its ticket's grant
        self._lock = threading.Lock()
        self._server: Server = serve(
            self._handle,
            host,
            port,
            process_request=self._check_ticket,
            max_size=MAX_FRAME,
            logger=logging.getLogger("bridge.simulator.stream"),
        )
        bound = self._server.socket.getsockname()
        self.host, self.port = str(bound[0]), int(bound[1])
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"ws://{shown}:{self.port}"
        gateway.endpoint = f"{self.url}/connect"
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="sim-stream", daemon=True),
            threading.Thread(target=self._tick, name="sim-stream-tick", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _check_ticket(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        ticket = parse_qs(url.query).get("ticket", [""])[0]
        grant = self.gateway.take_ticket(self._now(), ticket) if url.path == "/connect" else None
        if grant is None:
            body = b"invalid, used or expired ticket\n"
            headers = Headers([("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return Response(401, "Unauthorized", headers, body)
        with self._lock:
            self._grants[id(connection)] = grant
        return None

    def _handle(self, connection: ServerConnection) -> None:
        with self._lock:
            grant = self._grants.pop(id(connection))

        def close(drop: bool) -> None:
            if drop:  # the TCP connection ends without a close frame
                with contextlib.suppress(OSError):
                    connection.socket.shutdown(socket.SHUT_RDWR)
            else:
                connection.close()

        conn_id = self.gateway.connected(self._now(), grant, connection.send, close)
        try:
            for message in connection:
                self.gateway.received(self._now(), conn_id, message)
        except Exception:
            pass
        finally:
            self.gateway.disconnected(self._now(), conn_id)

    def _tick(self) -> None:
        while not self._stopping.wait(_TICK):
            self.gateway.tick(self._now())

    def stop(self) -> None:
        self._stopping.set()
        self.gateway.reset()  # drops every connection
        self._server.shutdown()
        for thread in self._threads:
            thread.join(5)
