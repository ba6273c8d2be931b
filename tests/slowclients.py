"""Clients that hold connections without finishing a request: idle sockets and slow-drip bodies.

Used by the connection-exhaustion test (tests/test_e2e_connections.py) and its benchmark
(bench/connections.py). One thread drips a byte into every slow connection each `drip` seconds,
so 200 slow clients cost one thread, like an attacker's event loop would.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
from types import TracebackType


def raise_own_fd_limit(needed: int) -> None:
    """The test process holds the sockets too: make room for them (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


class HostileClients:
    """`idle` connections that never send a byte and `slow` ones that send a POST's headers
    announcing a large body, then drip it a byte at a time."""

    def __init__(
        self, host: str, port: int, path: str, idle: int, slow: int, drip: float = 1.0
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self.idle_count, self.slow_count, self.drip = idle, slow, drip
        self.idle: list[socket.socket] = []
        self.slow: list[socket.socket] = []
        self.closed_by_server = 0  # slow connections the server hung up on
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, name="drip", daemon=True)

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\0" * 8)
        return sock

    def __enter__(self) -> HostileClients:
        raise_own_fd_limit(self.idle_count + self.slow_count + 512)
        for _ in range(self.idle_count):
            self.idle.append(self._connect())
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
        ).encode()
        for _ in range(self.slow_count):
            sock = self._connect()
            sock.sendall(head)
            self.slow.append(sock)
        self._thread.start()
        return self

    def _drip(self) -> None:
        while not self._stop.wait(self.drip):
            for sock in list(self.slow):
                try:
                    sock.send(b" ")
                except OSError:
                    self.slow.remove(sock)
                    self.closed_by_server += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for sock in self.idle + self.slow:
            with contextlib.suppress(OSError):
                sock.close()
