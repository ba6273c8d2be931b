"""Run the simulator's WSGI app on waitress in a background thread.

    server = serve_in_thread("127.0.0.1:0", SimulatorState(spec))
    ... requests.post(f"{server.url}/robot/send?access_token=…", json=…) ...
    server.stop()

We drive waitress's event loop ourselves (rather than `server.run()`, which only returns on
KeyboardInterrupt) so that `stop()` can end it from another thread and close every socket.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from bridge.listen import parse_listen
from bridge.simulator.state import SimulatorState
from bridge.simulator.streamserver import StreamServer
from bridge.simulator.wsgi import SimulatorApp

DEFAULT_THREADS = 8
_LOOP_TIMEOUT = 0.2  # seconds; bounds how long stop() waits for the loop to notice


class SimulatorServer:
    """A running simulator. `url` is its base URL; `stop()` shuts it down (idempotent)."""

    def __init__(
        self,
        waitress_server: Any,
        socket_map: dict[int, Any],
        app: SimulatorApp,
        stream_port: int = 0,
    ) -> None:
        """`stream_port`: the Stream gateway's WebSocket port (0: a free one); its address is
        `stream.url`, and connections/open hands it out."""
        self._server = waitress_server
        self._map = socket_map
        self.app = app
        self.state: SimulatorState = app.state
        # One listen address → TcpWSGIServer (effective_host/port); a host name that resolves
        # to several addresses → MultiSocketServer (effective_listen); we report the first.
        if hasattr(waitress_server, "effective_port"):
            host, port = waitress_server.effective_host, waitress_server.effective_port
        else:
            host, port = waitress_server.effective_listen[0][:2]
        self.host: str = str(host)
        self.port: int = int(port)
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{shown}:{self.port}"
        self.stream = StreamServer(app.stream, self.host, stream_port, app.now)
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"dingtalk-simulator:{self.port}", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            wasyncore.loop(timeout=_LOOP_TIMEOUT, map=self._map, use_poll=True, count=1)

    def stop(self, timeout: float = 5.0) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.stream.stop()
        # Wake the loop from its poll() instead of waiting out _LOOP_TIMEOUT.
        wake = getattr(self._server, "pull_trigger", None)
        if wake is not None:
            wake()
        self._thread.join(timeout)
        # Let in-flight requests finish (delay faults may be sleeping), then close all sockets.
        self._server.task_dispatcher.shutdown(timeout=timeout)
        wasyncore.close_all(self._map, ignore_all=True)

    def __enter__(self) -> SimulatorServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_in_thread(
    listen: str | tuple[str, int] = "127.0.0.1:0",
    state: SimulatorState | None = None,
    *,
    threads: int = DEFAULT_THREADS,
    clock: Callable[[], float] = time.time,
    stream_port: int = 0,
) -> SimulatorServer:
    """Start a simulator on `listen` ("HOST:PORT", port 0 = free port) and return at once.

    Raises OSError if the address cannot be bound.
    """
    host, port = parse_listen(listen) if isinstance(listen, str) else listen
    # With a burst of requests waitress warns "Task queue depth is N" for every queued one;
    # queuing is expected here (benchmarks, delay faults), so keep it quiet.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    app = SimulatorApp(state or SimulatorState(), clock=clock)
    socket_map: dict[int, Any] = {}
    server = create_server(
        app,
        map=socket_map,
        host=host,
        port=port,
        threads=max(threads, 4),
        ident="dingtalk-simulator",
    )
    return SimulatorServer(server, socket_map, app, stream_port)
