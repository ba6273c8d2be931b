"""The HTTP/1.1 server in front of the WSGI app (bridge/inputs/http.py).

Why our own and not waitress: waitress's I/O loop visits every connection on every pass and is
woken for every finished request; with the senders busy it was over half of the daemon's CPU,
and it grew with the number of connections (bench/README.md, issue 13). Here one asyncio loop
(uvloop's when installed) does the I/O and only touches connections the kernel says are ready,
httptools (llhttp, Node.js's parser) parses, and `threads` application threads run the WSGI
app, as waitress's did, except for the requests `inline` picks: those run on the loop's own
thread, one at a time, as gunicorn's sync workers run theirs. Handing a request to another
thread and its answer back costs two wake-ups and two passes of the GIL; for a request that
only computes and commits to a local SQLite file (an alert posted to an input) that was a third
of its CPU, and serving inputs inline took a process from ~950 to ~1,300 requests/s (bench/
README.md, issue 13). A request that may wait (a call to another service, a database across
the network, the console) must stay on the threads, where its wait holds up nobody.

What it must hold against hostile clients, each bounded:
- connections: at most `connection_limit` open; beyond it the listener stops accepting, and
  clients wait in the kernel's backlog (as waitress did), never an unbounded table;
- time: a connection that sends nothing for `idle_timeout` is closed, whatever state it is in,
  unless the application holds its request;
- bytes: a request head (request line and headers) over `max_head_bytes` or with more than
  MAX_HEADERS fields gets 431; a body is buffered up to `max_body_bytes + 1` and no further: a
  declared length over that, or a chunked body that grows past it, is handed to the app
  unread or cut (it answers 413 with its reason) and the connection is closed after the answer;
- memory per connection: one request is with the app at a time, and reading pauses until it
  is answered, so a pipelining client cannot queue more than one read's worth of requests, and
  one that does not read its answers stops being read (write flow control).

Malformed requests get 400 (or 431, 505) with a JSON body naming the problem, then the
connection closes: after a framing error nothing later on it can be trusted.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import queue
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, cast
from urllib.parse import unquote_to_bytes

import httptools

from bridge.logs import fmt_fields

log = logging.getLogger("bridge.http")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

MAX_HEADERS = 100  # fields in one request head (nginx and Go allow about as many)
BACKLOG = 1024  # the kernel's queue of connections not yet accepted (waitress's default)
ACCEPT_BATCH = 64  # connections accepted per wake-up, so a flood cannot starve the loop
LINGER = 2.0  # seconds a connection is drained after an answer to a request not read in full
STOP_GRACE = 5.0  # seconds `close()` lets requests held by the app finish
BATCH_MAX = 64  # inline requests served in one batch (one commit) at most


@dataclass(frozen=True)
class Limits:
    connection_limit: int
    idle_timeout: float  # seconds without a byte from the client
    max_body_bytes: int  # the largest body the app accepts; one more byte is read to tell
    max_head_bytes: int = 64 * 1024  # request line and headers


class _Stop(Exception):
    """Raised in a parser callback to stop reading this connection (the reason is already
    recorded on the connection)."""


def _error_body(status: int, reason: str, message: str) -> bytes:
    return json.dumps({"status": "error", "reason": reason, "error": message}).encode()


_STATUS = {
    400: "400 Bad Request",
    413: "413 Payload Too Large",
    431: "431 Request Header Fields Too Large",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
    505: "505 HTTP Version Not Supported",
}

_date: tuple[int, bytes] = (0, b"")


def _date_header() -> bytes:
    """The Date header of every answer (RFC 9110 asks a server with a clock to send it),
    formatted once a second, not per response: per response it was 3% of a request."""
    global _date
    second = int(time.time())
    if _date[0] != second:
        _date = (second, formatdate(second, usegmt=True).encode())  # one assignment: thread-safe
    return _date[1]


@dataclass(slots=True)
class _Request:
    environ: dict[str, Any]
    keep_alive: bool
    head: bool  # a HEAD request: the answer has no body
    linger: bool = False  # the client may still be sending: half-close, then drain a while


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, hands them to the app one at a time, writes the
    answers in order."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.last_active = 0.0
        self.pending: deque[_Request] = deque()  # parsed, waiting for the one in flight
        self.busy = False  # the app holds one of our requests
        self.closing = False  # answer what is in flight, then close; read nothing more
        self.write_paused = False
        # The request being parsed:
        self.in_head = False
        self.head_begun_here = False  # its head began in the chunk being fed
        self.head_bytes = 0
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.cut = False  # the body went past the limit and was cut
        self.environ: dict[str, Any] = {}
        self.draining = False  # answered and half-closed: reading only to discard (linger)

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = (str(peer[0]), int(peer[1]))
        self.last_active = self.server.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.pending.clear()
        self.server.closed(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._next()

    def data_received(self, data: bytes) -> None:
        if self.draining or self.closing:
            return  # lingering after an answer, or a refusal is queued: nothing more is read
        self.last_active = self.server.loop.time()
        self.head_begun_here = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _Stop):  # our bug, met by this input: say so
                log.error(
                    fmt_fields("request parsing failed", error=repr(exc.__context__)),
                    exc_info=exc.__context__,
                )
                self._fail(500, "internal", "internal error; see the bridge's log")
        except httptools.HttpParserUpgrade:
            # Upgrade is ignored, as RFC 9110 allows: the request is answered, but what follows
            # it may be another protocol, so the connection closes after the answer.
            if self.pending:
                self.pending[-1].keep_alive = False
            self.closing = True
        except httptools.HttpParserInvalidMethodError:
            self._fail(400, "bad_request", "malformed request: unknown method")
        except httptools.HttpParserError as exc:
            self._fail(400, "bad_request", f"malformed request: {_parser_message(exc)}")
        else:
            # A head still open after this chunk: count the bytes it took. When the head began
            # in this very chunk its share is unknown (at most one read) and the callbacks
            # count what was complete; from the next chunk on, every byte until it ends is head.
            if self.in_head and not self.head_begun_here:
                self.head_bytes += len(data)
            if self.in_head and self.head_bytes > self.server.limits.max_head_bytes:
                self._fail(431, "headers_too_large", self._head_too_large())
        self._next()

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_head = True
        self.head_begun_here = True
        self.head_bytes = 0
        self.url = b""
        self.headers = []
        self.body = []
        self.body_size = 0
        self.cut = False

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        if len(self.headers) > MAX_HEADERS:
            self._fail(431, "headers_too_large", f"more than {MAX_HEADERS} header fields")
            raise _Stop
        self._count_head(len(name) + len(value) + 4)

    def on_headers_complete(self) -> None:
        self.in_head = False
        environ = self._environ()
        if environ is None:
            raise _Stop
        declared = environ.get("CONTENT_LENGTH", "")
        limit = self.server.limits.max_body_bytes
        if declared and declared.isdigit() and int(declared) > limit:
            # Too large to read: the app answers 413 from the declared length alone.
            environ["wsgi.input"] = io.BytesIO(b"")
            self._queue(environ, keep_alive=False, linger=True)
            self.closing = True
            raise _Stop
        if environ.get("HTTP_EXPECT", "").lower() == "100-continue":
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ

    def on_body(self, body: bytes) -> None:
        room = self.server.limits.max_body_bytes + 1 - self.body_size
        if len(body) > room:
            # Past the limit (a chunked body): keep one byte too many, so the app sees it is
            # too large and answers 413, and read nothing more on this connection.
            self.body.append(body[:room])
            self.body_size += room
            self.cut = True
            self.on_message_complete()
            self.closing = True
            raise _Stop
        self.body.append(body)
        self.body_size += len(body)

    def on_message_complete(self) -> None:
        environ = self.environ
        body = b"".join(self.body)
        self.body = []
        environ["wsgi.input"] = io.BytesIO(body)
        if "CONTENT_LENGTH" not in environ or self.cut:
            environ["CONTENT_LENGTH"] = str(len(body))  # chunked: what arrived, as waitress did
        if self.cut:
            self._queue(environ, keep_alive=False, linger=True)
        else:
            self._queue(environ, keep_alive=self.parser.should_keep_alive())

    # -- requests and answers ----------------------------------------------------------------

    def _count_head(self, size: int) -> None:
        if self.head_begun_here:  # the chunk counting cannot see this head's share yet
            self.head_bytes += size
        if self.head_bytes > self.server.limits.max_head_bytes:
            self._fail(431, "headers_too_large", self._head_too_large())
            raise _Stop

    def _head_too_large(self) -> str:
        limit = self.server.limits.max_head_bytes
        return f"the request line and headers are larger than {limit} bytes"

    def _environ(self) -> dict[str, Any] | None:
        version = self.parser.get_http_version()
        if version not in ("1.1", "1.0"):
            self._fail(505, "bad_request", f"HTTP/{version} is not supported: use HTTP/1.1")
            return None
        try:
            url = httptools.parse_url(self.url)
        except httptools.HttpParserInvalidURLError:
            self._fail(400, "bad_request", "malformed request target")
            return None
        method = self.parser.get_method().decode("ascii", "replace")
        server = self.server
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            # WSGI (PEP 3333): the path percent-decoded, its bytes as latin-1 characters.
            "PATH_INFO": unquote_to_bytes(url.path or b"/").decode("latin-1"),
            "QUERY_STRING": (url.query or b"").decode("latin-1"),
            "SERVER_NAME": server.host,
            "SERVER_PORT": server.port_text,
            "SERVER_PROTOCOL": f"HTTP/{version}",
            "REMOTE_ADDR": self.peer[0],
            "REMOTE_PORT": str(self.peer[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": server.threads > 1,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for raw_name, raw_value in self.headers:
            name = raw_name.decode("latin-1").upper().replace("-", "_")
            value = raw_value.decode("latin-1").strip()
            if name == "CONTENT_LENGTH" or name == "CONTENT_TYPE":
                key = name
            elif name.startswith("X_FORWARDED") or name == "FORWARDED":
                continue  # no proxy is trusted: a client must not pose as another address
            else:
                key = "HTTP_" + name
            if key in environ:
                if key == "CONTENT_LENGTH":  # llhttp refuses differing duplicates already
                    continue
                environ[key] = f"{environ[key]}, {value}"
            else:
                environ[key] = value
        return environ

    def _queue(self, environ: dict[str, Any], keep_alive: bool, linger: bool = False) -> None:
        head = environ.get("REQUEST_METHOD") == "HEAD"
        self.pending.append(_Request(environ, keep_alive, head, linger))
        assert self.transport is not None
        self.transport.pause_reading()  # until the app has answered: see the module doc

    def _next(self) -> None:
        """Hand the next parsed request to the app, or read on."""
        if self.busy or self.write_paused or self.transport is None:
            return
        if self.transport.is_closing() or self.draining:
            return
        if self.pending:
            self.busy = True
            self.server.submit(self, self.pending.popleft())
        elif self.closing:
            self.transport.close()
        else:
            self.transport.resume_reading()

    def answered(self, response: bytes, request: _Request) -> None:
        """In the loop: the answer to the request in flight."""
        self.busy = False
        self.last_active = self.server.loop.time()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(response)
        if request.linger:
            self._linger()
        elif not request.keep_alive:
            self.closing = True
            self.pending.clear()
            transport.close()
        else:
            self._next()

    def _linger(self) -> None:
        """Close after an answer the client may not have finished sending for: closing with
        its bytes unread would reset the connection and could destroy the answer before it is
        read (nginx's lingering close). Half-close, discard what still comes, close after
        LINGER seconds at most."""
        assert self.transport is not None
        self.closing = True
        self.draining = True
        self.pending.clear()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.transport.resume_reading()
        self.server.loop.call_later(LINGER, self.transport.close)

    def _fail(self, status: int, reason: str, message: str) -> None:
        """Refuse the request being read: answered after those parsed before it, then the
        connection closes (nothing after a framing error can be trusted)."""
        if self.closing:
            return
        self.closing = True
        payload = _error_body(status, reason, message)
        response = _response_bytes(
            _STATUS[status],
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
            payload,
            keep_alive=False,
        )
        log.info(
            fmt_fields(
                "request refused",
                status=status,
                reason=reason,
                error=message,
                client=f"{self.peer[0]}:{self.peer[1]}",
            )
        )
        self.pending.append(_Request({"bridge.response": response}, False, False, linger=True))

    def expire(self, now: float) -> None:
        """Close the connection when it has been silent too long and the app holds nothing."""
        if (
            not self.busy
            and now - self.last_active > self.server.limits.idle_timeout
            and self.transport is not None
        ):
            self.transport.close()


def _parser_message(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]


def _response_bytes(
    status: str, headers: list[tuple[str, str]], body: bytes, keep_alive: bool, head: bool = False
) -> bytes:
    lines = [b"HTTP/1.1 ", status.encode("latin-1"), b"\r\n"]
    has_length = has_date = False
    for name, value in headers:
        lower = name.lower()
        if lower == "content-length":
            has_length = True
        elif lower == "date":
            has_date = True
        elif lower in ("connection", "transfer-encoding"):
            continue  # hop-by-hop: the server decides these
        lines += (name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n")
    if not has_length:
        lines += (b"Content-Length: ", str(len(body)).encode(), b"\r\n")
    if not has_date:
        lines += (b"Date: ", _date_header(), b"\r\n")
    lines.append(b"Server: dingtalk-bridge\r\n")
    if not keep_alive:
        lines.append(b"Connection: close\r\n")
    lines.append(b"\r\n")
    if not head:
        lines.append(body)
    return b"".join(lines)


class HttpServer:
    """Serve `app` on the listening sockets until `close()`. `run()` blocks (the "http"
    thread); everything else is thread-safe."""

    def __init__(
        self,
        app: WsgiApp,
        sockets: list[socket.socket],
        limits: Limits,
        threads: int = 1,
        inline: Callable[[dict[str, Any]], bool] | None = None,
        inline_guard: Callable[[], AbstractContextManager[object]] = nullcontext,
        moved_by: tuple[type[BaseException], ...] = (),
        inline_batch: Callable[[], AbstractContextManager[object]] = nullcontext,
        inline_prepare: Callable[[dict[str, Any]], None] = lambda environ: None,
    ) -> None:
        """`inline` picks the requests run on the loop's thread (see the module doc);
        `inline_guard()` is entered around each, to bound what the app may wait for there;
        when the app raises one of `moved_by`, having done nothing yet (store/waiting.py), the
        request is served again from its start on an application thread. The inline requests
        that arrive in one turn of the loop are served one after another inside one
        `inline_batch()` (the store's batch: one commit for all of them), and answered once it
        has ended; when its end raises (the commit failed), each is served again by itself.
        `inline_prepare(environ)` is called for each before the batch begins: what the app can
        do of a request before it writes (reading and parsing the body), done there, leaves the
        batch's lock to the writes."""
        self.app = app
        self.inline = inline
        self.inline_guard = inline_guard
        self.moved_by = moved_by
        self.inline_batch = inline_batch
        self.inline_prepare = inline_prepare
        self.moved = 0  # inline requests moved to the threads
        self.batches = 0  # batches of inline requests served
        self.batched = 0  # inline requests served in them
        self._inline: list[tuple[_Connection, _Request]] = []  # waiting for this turn's batch
        self.sockets = sockets
        self.limits = limits
        self.threads = max(1, threads)
        self.loop = _new_loop()
        name = sockets[0].getsockname()
        self.host, self.port = str(name[0]), int(name[1])
        self.port_text = str(self.port)
        for sock in sockets:  # listening from now on: connections queue until run() accepts
            sock.listen(BACKLOG)
        self.connections: set[_Connection] = set()
        self._accepting = False
        self._stopping = False
        self._tasks: queue.SimpleQueue[tuple[_Connection, _Request] | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._done = threading.Event()

    @property
    def effective_port(self) -> int:
        return self.port

    # -- the loop's side ---------------------------------------------------------------------

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        for sock in self.sockets:
            sock.setblocking(False)
        for index in range(self.threads):
            worker = threading.Thread(target=self._work, name=f"http-app-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        self._accept_on()
        self.loop.call_later(self._sweep_every(), self._sweep)
        try:
            self.loop.run_forever()
        finally:
            for sock in self.sockets:
                sock.close()
            for _ in self._workers:
                self._tasks.put(None)
            self.loop.close()
            self._done.set()

    def _sweep_every(self) -> float:
        return max(0.1, min(5.0, self.limits.idle_timeout / 4))

    def _sweep(self) -> None:
        now = self.loop.time()
        for connection in list(self.connections):
            connection.expire(now)
        if not self._stopping:
            self.loop.call_later(self._sweep_every(), self._sweep)

    def _accept_on(self) -> None:
        if not self._accepting and not self._stopping:
            self._accepting = True
            for sock in self.sockets:
                self.loop.add_reader(sock.fileno(), self._accept, sock)

    def _accept_off(self) -> None:
        if self._accepting:
            self._accepting = False
            for sock in self.sockets:
                self.loop.remove_reader(sock.fileno())

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            if len(self.connections) >= self.limits.connection_limit:
                # The rest wait in the kernel's backlog until a connection closes.
                log.warning(
                    fmt_fields(
                        "connection limit reached: not accepting until a connection closes",
                        limit=self.limits.connection_limit,
                        hint="raise server.connection_limit, or look for idle clients",
                    )
                )
                self._accept_off()
                return
            try:
                conn, _address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return  # another worker took it, or none left
            except OSError as exc:  # EMFILE and the like: back off, do not spin
                log.warning(fmt_fields("cannot accept a connection", error=str(exc)))
                self._accept_off()
                self.loop.call_later(0.5, self._accept_on)
                return
            conn.setblocking(False)
            # Counted now, not when the transport is made, so the limit holds within a batch.
            connection = _Connection(self)
            self.connections.add(connection)
            self.loop.create_task(self._connect(conn, connection))

    async def _connect(self, conn: socket.socket, connection: _Connection) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: connection, conn)
        except OSError:
            conn.close()
            self.closed(connection)

    def closed(self, connection: _Connection) -> None:
        self.connections.discard(connection)
        if len(self.connections) < self.limits.connection_limit:
            self._accept_on()
        if self._stopping and not any(c.busy for c in self.connections):
            self.loop.stop()

    def submit(self, connection: _Connection, request: _Request) -> None:
        response = request.environ.get("bridge.response")
        if isinstance(response, bytes):  # the server's own refusal, queued behind a request
            connection.answered(response, request)
            return
        if self.inline is not None and self.inline(request.environ):
            # After the requests of this turn are all parsed, not now: they are served as one
            # batch; and answering may submit the connection's next pipelined request, and a
            # chain of those must not recurse.
            self._inline.append((connection, request))
            if len(self._inline) == 1:
                self.loop.call_soon(self._serve_batch)
            return
        self._tasks.put((connection, request))

    def _serve_batch(self) -> None:
        """Serve the inline requests of this turn (BATCH_MAX at most; the rest at the next),
        then answer them: the batch's commit comes first."""
        batch, self._inline = self._inline[:BATCH_MAX], self._inline[BATCH_MAX:]
        if self._inline:
            self.loop.call_soon(self._serve_batch)
        for _connection, request in batch:
            try:
                self.inline_prepare(request.environ)
            except Exception:  # the call meets the fault again, and answers it
                log.exception("preparing a request failed")
                request.environ["wsgi.input"].seek(0)
        responses: list[bytes] = []
        try:
            with self.inline_batch():
                for index, (_connection, request) in enumerate(batch):
                    try:
                        with self.inline_guard():
                            responses.append(self._call(request))
                    except self.moved_by:
                        # Only before the batch's first write has its locks: nothing of this
                        # request or the ones before it was written. This one and the rest
                        # would wait as long: the threads serve them.
                        for moved in batch[index:]:
                            self._move(*moved)
                        del batch[index:]
                        break
        except Exception as exc:  # the batch's commit failed: none of it was committed
            log.warning(fmt_fields("serving a batch's requests one by one", error=str(exc)))
            for connection, request in batch:
                request.environ["wsgi.input"].seek(0)
                self._serve_inline(connection, request)
            return
        self.batches += 1
        self.batched += len(batch)
        for (connection, request), response in zip(batch, responses, strict=True):
            connection.answered(response, request)

    def _serve_inline(self, connection: _Connection, request: _Request) -> None:
        """One inline request by itself (its transaction commits before the answer)."""
        try:
            with self.inline_guard():
                response = self._call(request)
        except self.moved_by:
            self._move(connection, request)
            return
        connection.answered(response, request)

    def _move(self, connection: _Connection, request: _Request) -> None:
        """An inline request to the application threads, from its start."""
        self.moved += 1
        request.environ["wsgi.input"].seek(0)  # the thread reads the body again
        self._tasks.put((connection, request))

    # -- the application threads -------------------------------------------------------------

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            connection, request = task
            response = self._call(request)
            try:
                self.loop.call_soon_threadsafe(connection.answered, response, request)
            except RuntimeError:  # the loop is closed: the server stopped meanwhile
                return

    def _call(self, request: _Request) -> bytes:
        captured: list[Any] = []
        extra: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            captured[:] = [status, headers]
            return extra.append

        try:
            result = self.app(request.environ, start_response)
            try:
                body = b"".join([*extra, *result])
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            status, headers = captured
        except Exception:
            log.exception("the application failed")
            payload = _error_body(500, "internal", "internal error; see the bridge's log")
            return _response_bytes(
                _STATUS[500],
                [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
                payload,
                keep_alive=request.keep_alive,
            )
        return _response_bytes(status, headers, body, request.keep_alive, request.head)

    # -- stopping ----------------------------------------------------------------------------

    def close(self, grace: float = STOP_GRACE) -> None:
        """Stop accepting, close idle connections, let the requests the app holds be answered
        (at most `grace` seconds), then stop the loop."""
        try:
            self.loop.call_soon_threadsafe(self._begin_stop)
        except RuntimeError:
            return  # already closed
        self._done.wait(grace)

    def _begin_stop(self) -> None:
        self._accept_off()
        self._stopping = True
        busy = False
        for connection in list(self.connections):
            if connection.busy:
                connection.closing = True
                busy = True
            elif connection.transport is not None:
                connection.transport.close()
        if not busy:
            self.loop.stop()
        else:
            self.loop.call_later(STOP_GRACE, self.loop.stop)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
