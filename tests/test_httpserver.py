"""The daemon's HTTP/1.1 server (bridge/app/httpserver.py) over real sockets: framing,
keep-alive and pipelining, the bounds it holds against hostile clients, and generated input.

The server runs in a thread of the test process with a small WSGI app that echoes what it was
given, so each test can see exactly what reached the application. The daemon-level behaviour
(slow and idle clients against a real daemon, 413 and 400 answers of the inputs) is in
test_e2e_connections.py, test_e2e_http.py and test_e2e_hostile_input.py.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.app.httpserver import MAX_HEADERS, HttpServer, Limits

BODY_LIMIT = 1000
HEAD_LIMIT = 4096


def echo_app(environ: dict[str, Any], start: Callable[..., Any]) -> list[bytes]:
    """Answers with what the server handed over: method, path, query, headers, body."""
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("the app failed")
    if environ["PATH_INFO"] == "/slow":
        time.sleep(0.5)
    body = environ["wsgi.input"].read()
    payload = json.dumps(
        {
            "method": environ["REQUEST_METHOD"],
            "path": environ["PATH_INFO"],
            "query": environ["QUERY_STRING"],
            "length": environ.get("CONTENT_LENGTH"),
            "body": body.decode("latin-1"),
            "headers": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
        }
    ).encode()
    start("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


class Running:
    def __init__(self, server: HttpServer, thread: threading.Thread) -> None:
        self.server, self.thread = server, thread
        self.port = server.effective_port

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        return sock


def start_server(**limits: Any) -> Running:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    values = {
        "connection_limit": 50,
        "idle_timeout": 30.0,
        "max_body_bytes": BODY_LIMIT,
        "max_head_bytes": HEAD_LIMIT,
        **limits,
    }
    server = HttpServer(echo_app, [listener], Limits(**values), threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return Running(server, thread)


@pytest.fixture(scope="module")
def http() -> Iterator[Running]:
    running = start_server()
    yield running
    running.server.close()
    running.thread.join(5)
    assert not running.thread.is_alive()


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response from `sock` (bytes past it stay in `buffer`)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {bytes(buffer)!r}")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside a body")
        rest += chunk
    buffer[:] = rest[length:]
    return status, headers, rest[:length]


def exchange(running: Running, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with running.connect() as sock:
        sock.sendall(raw)
        return read_response(sock, bytearray())


def closed_by_server(sock: socket.socket, within: float = 5.0) -> bool:
    """True once the server has closed `sock` (reads return EOF or a reset)."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


# -- framing -----------------------------------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(http: Running) -> None:
    with http.connect() as sock:
        buffer = bytearray()
        for n in range(3):
            sock.sendall(post(f"/r{n}", f'{{"n":{n}}}'.encode()))
            status, headers, body = read_response(sock, buffer)
            assert status == 200
            assert "connection" not in headers
            assert headers["date"].endswith(" GMT")  # the server dates every answer
            assert json.loads(body)["body"] == f'{{"n":{n}}}'


def test_pipelined_requests_are_answered_in_order(http: Running) -> None:
    with http.connect() as sock:
        sock.sendall(b"".join(post(f"/p{n}", b"x" * n) for n in range(1, 6)))
        buffer = bytearray()
        paths = [json.loads(read_response(sock, buffer)[2])["path"] for _ in range(5)]
    assert paths == ["/p1", "/p2", "/p3", "/p4", "/p5"]


def test_path_is_percent_decoded_and_query_kept(http: Running) -> None:
    _, _, body = exchange(http, b"GET /a%20b/%E4%B8%AD?x=1&y=%20 HTTP/1.1\r\nHost: x\r\n\r\n")
    seen = json.loads(body)
    # PEP 3333: the decoded bytes as latin-1 characters.
    assert seen["path"] == "/a b/" + "中".encode().decode("latin-1")
    assert seen["query"] == "x=1&y=%20"


def test_repeated_headers_are_joined_and_forwarding_headers_dropped(http: Running) -> None:
    raw = (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Tag: a\r\nX-Tag: b\r\n"
        b"X-Forwarded-For: 10.0.0.1\r\nForwarded: for=10.0.0.1\r\n\r\n"
    )
    headers = json.loads(exchange(http, raw)[2])["headers"]
    assert headers["HTTP_X_TAG"] == "a, b"
    assert "HTTP_X_FORWARDED_FOR" not in headers
    assert "HTTP_FORWARDED" not in headers


def test_chunked_body_is_decoded_with_its_length(http: Running) -> None:
    raw = (
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    seen = json.loads(exchange(http, raw)[2])
    assert seen["body"] == "hello world"
    assert seen["length"] == "11"


def test_head_gets_headers_without_a_body(http: Running) -> None:
    with http.connect() as sock:
        sock.sendall(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        data = b""
        while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"}"):
            data += sock.recv(65536)
    first, _, second = data.partition(b"\r\n\r\n")
    assert (
        int(
            dict(line.split(": ", 1) for line in first.decode().split("\r\n")[1:])["Content-Length"]
        )
        > 0
    )
    assert second.startswith(b"HTTP/1.1 200")  # no body bytes between the two answers
    assert b'"/after"' in second


def test_expect_100_continue_gets_the_interim_answer(http: Running) -> None:
    with http.connect() as sock:
        sock.sendall(
            b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = sock.recv(64)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"data")
        status, _, body = read_response(sock, bytearray())
    assert status == 200
    assert json.loads(body)["body"] == "data"


@pytest.mark.parametrize(
    ("request_head", "keeps"),
    [
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
    ],
)
def test_connection_persistence_follows_the_http_version(
    http: Running, request_head: bytes, keeps: bool
) -> None:
    with http.connect() as sock:
        sock.sendall(request_head)
        _, headers, _ = read_response(sock, bytearray())
        assert (headers.get("connection") != "close") is keeps
        assert closed_by_server(sock, within=1.0) is not keeps


def test_an_app_exception_is_a_500_and_the_server_goes_on(http: Running) -> None:
    status, _, body = exchange(http, b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 500
    assert json.loads(body)["reason"] == "internal"
    assert exchange(http, b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "says"),
    [
        (b"GARBAGE\r\n\r\n", 400, "malformed request"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "malformed request"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, "malformed"),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/2.0 is not supported"),
    ],
)
def test_malformed_requests_get_a_400_naming_the_problem_and_the_connection_closes(
    http: Running, raw: bytes, status: int, says: str
) -> None:
    with http.connect() as sock:
        sock.sendall(raw)
        got, headers, body = read_response(sock, bytearray())
        assert got == status
        assert headers["connection"] == "close"
        assert says in json.loads(body)["error"]
        assert closed_by_server(sock)


def test_an_upgrade_is_ignored_and_the_connection_closes_after_the_answer(http: Running) -> None:
    with http.connect() as sock:
        sock.sendall(
            b"GET /up HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
            b"\x81\x05hello"
        )
        status, headers, body = read_response(sock, bytearray())
        assert status == 200
        assert json.loads(body)["path"] == "/up"
        assert headers["connection"] == "close"
        assert closed_by_server(sock)


def test_a_request_answered_before_a_malformed_one_keeps_its_answer(http: Running) -> None:
    with http.connect() as sock:
        sock.sendall(post("/first", b"1") + b"NONSENSE\r\n\r\n")
        buffer = bytearray()
        assert read_response(sock, buffer)[0] == 200
        assert read_response(sock, buffer)[0] == 400


def test_a_head_larger_than_the_limit_in_one_piece_is_a_431(http: Running) -> None:
    raw = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * HEAD_LIMIT + b"\r\n\r\n"
    status, _, body = exchange(http, raw)
    assert status == 431
    assert str(HEAD_LIMIT) in json.loads(body)["error"]


def test_a_head_dripped_past_the_limit_is_a_431_before_it_ends(http: Running) -> None:
    with http.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Drip: ")
        status = None
        for _ in range(4 * HEAD_LIMIT // 512):
            try:
                sock.sendall(b"b" * 512)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.005)
            sock.settimeout(0.001)
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break
            except TimeoutError:
                continue
        sock.settimeout(5)
        status = read_response(sock, bytearray())[0]
    assert status == 431


def test_too_many_header_fields_is_a_431(http: Running) -> None:
    fields = "".join(f"X-F{n}: v\r\n" for n in range(MAX_HEADERS + 1))
    status, _, body = exchange(http, f"GET / HTTP/1.1\r\n{fields}\r\n".encode())
    assert status == 431
    assert str(MAX_HEADERS) in json.loads(body)["error"]


def test_a_declared_body_over_the_limit_is_not_read_and_the_answer_still_arrives(
    http: Running,
) -> None:
    """The app decides from the declared length (it answers 413); the server reads none of the
    body, answers, and drains what the client still sends instead of resetting the answer."""
    with http.connect() as sock:
        sock.sendall(
            f"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: {BODY_LIMIT * 100}\r\n\r\n".encode()
        )
        sock.sendall(b"z" * BODY_LIMIT * 10)  # still sending when the answer comes
        status, headers, body = read_response(sock, bytearray())
        assert status == 200
        seen = json.loads(body)
        assert seen["length"] == str(BODY_LIMIT * 100)
        assert seen["body"] == ""
        assert headers["connection"] == "close"
        assert closed_by_server(sock)


def test_a_chunked_body_growing_past_the_limit_is_cut_one_byte_over(http: Running) -> None:
    chunk = b"y" * 300
    raw = (
        b"POST /cut HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"12c\r\n" + chunk + b"\r\n") * 10
    )
    with http.connect() as sock:
        sock.sendall(raw)
        status, headers, body = read_response(sock, bytearray())
        seen = json.loads(body)
        assert status == 200
        assert len(seen["body"]) == BODY_LIMIT + 1  # the app sees it is too large
        assert seen["length"] == str(BODY_LIMIT + 1)
        assert headers["connection"] == "close"


# -- time and connections ----------------------------------------------------------------------


@pytest.mark.parametrize("sent", [b"", b"POST / HTTP/1.1\r\nContent-Le"])
def test_a_silent_connection_is_closed_after_the_idle_timeout(sent: bytes) -> None:
    running = start_server(idle_timeout=0.5)
    try:
        with running.connect() as sock:
            sock.sendall(sent)
            started = time.monotonic()
            assert closed_by_server(sock, within=5.0)
            assert time.monotonic() - started > 0.4  # not before the timeout (5 s at most: above)
    finally:
        running.server.close()


def test_a_request_the_app_holds_is_not_timed_out() -> None:
    running = start_server(idle_timeout=0.2)
    try:
        status, _, body = exchange(running, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200
        assert json.loads(body)["path"] == "/slow"
    finally:
        running.server.close()


def test_the_connection_limit_holds_further_clients_in_the_backlog() -> None:
    running = start_server(connection_limit=2)
    try:
        first, second = running.connect(), running.connect()
        for sock in (first, second):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            read_response(sock, bytearray())
        third = running.connect()  # the kernel completes the handshake; nobody reads it yet
        third.sendall(b"GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
        third.settimeout(0.5)
        with pytest.raises(TimeoutError):
            third.recv(1)
        first.close()
        third.settimeout(5)
        status, _, body = read_response(third, bytearray())
        assert status == 200
        assert json.loads(body)["path"] == "/third"
        second.close()
        third.close()
    finally:
        running.server.close()


def test_close_lets_a_request_in_flight_finish() -> None:
    running = start_server()
    with running.connect() as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)  # the app holds it
        stopping = threading.Thread(target=running.server.close)
        stopping.start()
        status, _, _ = read_response(sock, bytearray())
        stopping.join(5)
    assert status == 200
    running.thread.join(5)
    assert not running.thread.is_alive()


# -- generated input ---------------------------------------------------------------------------


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(min_size=1, max_size=3000))
def test_any_bytes_get_an_http_answer_or_a_close_and_the_server_goes_on(
    http: Running, raw: bytes
) -> None:
    with http.connect() as sock:
        sock.settimeout(2)
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        except TimeoutError:
            data = b"(still open)"
    # Either nothing (an unfinished request, closed at EOF), or HTTP answers.
    assert data == b"" or data.startswith(b"HTTP/1.1 "), data[:80]
    assert exchange(http, b"GET /alive HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200


header_names = st.from_regex(r"X-[A-Za-z0-9]{1,12}", fullmatch=True)
header_values = st.from_regex(r"[!-~]([ -~]{0,40}[!-~])?", fullmatch=True)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.binary(max_size=BODY_LIMIT),
    headers=st.dictionaries(header_names, header_values, max_size=8),
    chunked=st.booleans(),
    split=st.integers(min_value=1, max_value=64),
)
def test_any_well_formed_request_reaches_the_app_as_sent(
    http: Running, body: bytes, headers: dict[str, str], chunked: bool, split: int
) -> None:
    unique = {name.lower(): (name, value) for name, value in headers.items()}
    fields = "".join(f"{name}: {value}\r\n" for name, value in unique.values())
    if chunked:
        framed = (
            b"".join(
                f"{len(body[i : i + split]):x}\r\n".encode() + body[i : i + split] + b"\r\n"
                for i in range(0, len(body), split)
            )
            + b"0\r\n\r\n"
        )
        head = f"POST /g HTTP/1.1\r\nHost: x\r\n{fields}Transfer-Encoding: chunked\r\n\r\n"
    else:
        framed = body
        head = f"POST /g HTTP/1.1\r\nHost: x\r\n{fields}Content-Length: {len(body)}\r\n\r\n"
    raw = head.encode() + framed
    with http.connect() as sock:
        for i in range(0, len(raw), split * 7):  # in pieces: the parser must resume anywhere
            sock.sendall(raw[i : i + split * 7])
        status, _, answer = read_response(sock, bytearray())
    assert status == 200
    seen = json.loads(answer)
    assert seen["body"].encode("latin-1") == body
    for name, value in unique.values():
        assert seen["headers"]["HTTP_" + name.upper().replace("-", "_")] == value


def test_a_fault_of_ours_while_parsing_is_a_500_and_the_server_goes_on(
    http: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug met by some input must cost that request, never the server or other clients."""
    from bridge.app import httpserver

    def broken(self: object) -> None:
        raise RuntimeError("a bug in building the environ")

    monkeypatch.setattr(httpserver._Connection, "_environ", broken)
    with http.connect() as sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock, bytearray())
        assert status == 500
        assert json.loads(body)["reason"] == "internal"
        assert headers["connection"] == "close"
    monkeypatch.undo()
    assert exchange(http, b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200


# -- requests served on the loop's thread ------------------------------------------------------


class ThreadsApp:
    """Answers with the name of the thread that ran it; /wait holds until `gate` is set."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def __call__(self, environ: dict[str, Any], start: Callable[..., Any]) -> list[bytes]:
        if environ["PATH_INFO"] == "/wait":
            self.gate.wait(10)
        body = f"{threading.current_thread().name} {environ['wsgi.input'].read().decode()}"
        start("200 OK", [("Content-Length", str(len(body.encode())))])
        return [body.encode()]


def start_with_a_named_loop(app: Any, **options: Any) -> Running:
    """A server for `app` whose loop runs on a thread named "the-loop" (the answers of these
    apps name the thread that served them)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    limits = Limits(connection_limit=50, idle_timeout=30.0, max_body_bytes=BODY_LIMIT)
    server = HttpServer(app, [listener], limits, threads=2, **options)
    thread = threading.Thread(target=server.run, name="the-loop", daemon=True)
    thread.start()
    return Running(server, thread)


@pytest.fixture
def threads_app() -> Iterator[tuple[Running, ThreadsApp]]:
    app = ThreadsApp()
    running = start_with_a_named_loop(app, inline=lambda environ: environ["PATH_INFO"] == "/in")
    yield running, app
    app.gate.set()
    running.server.close()
    running.thread.join(5)


def test_requests_picked_inline_run_on_the_loops_thread_and_the_others_on_app_threads(
    threads_app: tuple[Running, ThreadsApp],
) -> None:
    running, _ = threads_app
    assert exchange(running, post("/in", b"x"))[2] == b"the-loop x"
    assert exchange(running, post("/out", b"x"))[2].startswith(b"http-app-")


def test_a_request_waiting_on_an_app_thread_holds_up_no_inline_request(
    threads_app: tuple[Running, ThreadsApp],
) -> None:
    running, app = threads_app
    with running.connect() as waiting:
        waiting.sendall(post("/wait", b""))
        time.sleep(0.1)  # it is with an app thread now
        for n in range(20):
            assert exchange(running, post("/in", str(n).encode()))[2] == f"the-loop {n}".encode()
        app.gate.set()
        assert read_response(waiting, bytearray())[2].startswith(b"http-app-")


def test_thousands_of_pipelined_inline_requests_are_answered_in_order(
    threads_app: tuple[Running, ThreadsApp],
) -> None:
    # Each answer hands the connection's next request on: that must not recurse.
    running, _ = threads_app
    count = 3000
    with running.connect() as sock:
        sock.sendall(b"".join(post("/in", str(n).encode()) for n in range(count)))
        buffer = bytearray()
        bodies = [read_response(sock, buffer)[2] for _ in range(count)]
    assert bodies == [f"the-loop {n}".encode() for n in range(count)]


class Moved(BaseException):
    """What an app raises when it would wait on the loop's thread (store/waiting.py's kind)."""


def test_an_inline_request_that_would_wait_is_served_again_on_an_app_thread() -> None:
    """The app reads the body, then finds it would wait (on the loop's thread, inside the
    guard): the request is served from its start on an application thread, body and all, and
    the client gets that answer, once."""
    calls: list[tuple[str, bool, bytes]] = []
    guarded = threading.local()

    @contextlib.contextmanager
    def guard() -> Iterator[None]:
        guarded.on = True
        try:
            yield
        finally:
            guarded.on = False

    def app(environ: dict[str, Any], start: Callable[..., Any]) -> list[bytes]:
        body = environ["wsgi.input"].read()
        inside = getattr(guarded, "on", False)
        calls.append((threading.current_thread().name, inside, body))
        if inside and body == b"would wait":
            raise Moved
        answer = f"{threading.current_thread().name} {body.decode()}".encode()
        start("200 OK", [("Content-Length", str(len(answer)))])
        return [answer]

    running = start_with_a_named_loop(
        app, inline=lambda environ: True, inline_guard=guard, moved_by=(Moved,)
    )
    server, thread = running.server, running.thread
    try:
        with running.connect() as sock:  # keep-alive: the connection goes on after the move
            sock.sendall(post("/in", b"would wait") + post("/in", b"quick"))
            buffer = bytearray()
            moved = read_response(sock, buffer)
            quick = read_response(sock, buffer)
        assert moved[0] == 200 and moved[2].startswith(b"http-app-")
        assert moved[2].endswith(b" would wait")
        assert quick[2] == b"the-loop quick"
        assert [(name == "the-loop", inside, body) for name, inside, body in calls] == [
            (True, True, b"would wait"),  # tried on the loop, inside the guard
            (False, False, b"would wait"),  # served again on a thread, the body read again
            (True, True, b"quick"),
        ]
        assert server.moved == 1
    finally:
        server.close()
        thread.join(5)


class BatchApp:
    """Records the batches (begin, end) and the calls between them; /hold holds the loop's
    thread for a while, so that requests sent meanwhile all arrive in the loop's next turn.
    The end of the first batch that served `fail_with` raises, as a failed commit does;
    `unanswered` are client sockets that must have no answer yet when a batch ends."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []
        self.fail_with: bytes | None = None
        self.unanswered: list[socket.socket] = []
        self.answered_early: list[socket.socket] = []

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        begin = len(self.events)
        self.events.append(("begin", b""))
        yield
        readable = select.select(self.unanswered, [], [], 0)[0]
        self.answered_early += readable
        self.events.append(("end", b""))
        if ("call", self.fail_with) in self.events[begin:]:
            self.fail_with = None
            raise RuntimeError("the commit failed")

    def prepare(self, environ: dict[str, Any]) -> None:
        """Reads the body ahead and leaves it in the environ, as HttpApp.prepare does; a body
        "bad" makes it fail after reading."""
        body = environ["wsgi.input"].read()
        self.events.append(("prepare", body))
        if body == b"bad":
            raise ValueError("a fault while preparing")
        environ["prepared"] = body

    def __call__(self, environ: dict[str, Any], start: Callable[..., Any]) -> list[bytes]:
        body = environ.get("prepared") or environ["wsgi.input"].read()
        self.events.append(("call", body))
        if environ["PATH_INFO"] == "/hold":
            time.sleep(0.3)
        start("200 OK", [("Content-Length", str(len(body)))])
        return [body]


@pytest.fixture
def batch_app() -> Iterator[tuple[Running, BatchApp]]:
    app = BatchApp()
    running = start_with_a_named_loop(
        app, inline=lambda environ: True, inline_batch=app.batch, inline_prepare=app.prepare
    )
    yield running, app
    running.server.close()
    running.thread.join(5)


def send_while_the_loop_is_held(
    running: Running, app: BatchApp, bodies: list[bytes]
) -> list[socket.socket]:
    """One connection per body, each already served once (so each is read from in the same
    turn); then /hold holds the loop and every body is sent meanwhile. The events of the
    warm-up and the hold are cleared once the hold is over."""
    holder = running.connect()
    clients = [running.connect() for _ in bodies]
    for client in clients:
        client.sendall(post("/warm", b"w"))
        read_response(client, bytearray())
    app.unanswered = clients
    holder.sendall(post("/hold", b"h"))
    time.sleep(0.1)  # the loop's thread is in /hold now
    for client, body in zip(clients, bodies, strict=True):
        client.sendall(post("/in", body))
    assert read_response(holder, bytearray())[2] == b"h"
    holder.close()
    return clients


def test_inline_requests_arriving_in_one_turn_are_one_batch_answered_after_it_ends(
    batch_app: tuple[Running, BatchApp],
) -> None:
    running, app = batch_app
    clients = send_while_the_loop_is_held(running, app, [b"a", b"b", b"c"])
    answers = [read_response(client, bytearray())[2] for client in clients]
    assert answers == [b"a", b"b", b"c"]
    hold = app.events.index(("call", b"h"))
    after = app.events[hold + 1 :]
    # The hold's own batch ends; then one batch holds the three requests of the next turn.
    assert after[0] == ("end", b"")
    # Each request prepared before the batch begins (its parsing holds no lock), then served.
    assert sorted(after[1:4]) == [("prepare", b"a"), ("prepare", b"b"), ("prepare", b"c")]
    assert after[4] == ("begin", b"") and after[-1] == ("end", b"")
    assert sorted(after[5:-1]) == [("call", b"a"), ("call", b"b"), ("call", b"c")]
    assert app.answered_early == []  # no client had an answer before its batch ended
    for client in clients:
        client.close()


def test_when_a_batch_cannot_end_each_request_is_served_again_alone_and_answered_once(
    batch_app: tuple[Running, BatchApp],
) -> None:
    running, app = batch_app
    app.fail_with = b"a"
    clients = send_while_the_loop_is_held(running, app, [b"a", b"b"])
    answers = [read_response(client, bytearray())[2] for client in clients]
    assert answers == [b"a", b"b"]
    for client in clients:  # exactly one answer each: nothing more arrives
        client.settimeout(0.3)
        with pytest.raises(TimeoutError):
            client.recv(1)
        client.close()
    hold = app.events.index(("call", b"h"))
    calls = [body for kind, body in app.events[hold + 1 :] if kind == "call"]
    assert sorted(calls) == [b"a", b"a", b"b", b"b"]  # in the batch, then each by itself
    assert app.fail_with is None  # the batch of a and b did fail
    assert app.events[hold + 1 :].count(("begin", b"")) == 1  # served again outside a batch


def test_a_request_whose_preparing_fails_is_served_with_its_body_whole(
    batch_app: tuple[Running, BatchApp],
) -> None:
    running, app = batch_app
    assert exchange(running, post("/in", b"bad"))[2] == b"bad"
    assert [e for e in app.events if e[1] == b"bad"] == [("prepare", b"bad"), ("call", b"bad")]
