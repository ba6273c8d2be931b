"""Generated hostile input against the console's frame (its WSGI app in process, a real Bridge
on an SQLite state): any path below the console, any method, any cookie, any Authorization,
Origin or Content-Length, any form body is answered with a status below 500, and never with the
page of a signed-in operator unless the token was given. The pure pieces (cookie verification,
same-origin) never raise."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.app.console import auth
from bridge.inputs.http import HttpApp
from tests.harness import compile_yaml
from tests.test_http_generated import SETTINGS, offline_app

TOKEN = "generated-console-token-0123"
CONFIG = f"""
server:
  console: {{token: "{TOKEN}", viewer_token: "generated-viewer-token-0123"}}
targets:
  ops: {{type: robot, webhook: "http://127.0.0.1:9/robot/send?access_token=t"}}
inputs:
  am: {{type: alertmanager, path: /am}}
rules:
  - {{name: all, targets: [ops]}}
"""
PATHS = st.one_of(
    st.sampled_from(
        [
            "/console",
            "/console/",
            "/console/login",
            "/console/logout",
            "/console/messages",
            "/console/messages/abc",
            "/console/messages/abc/retry",
            "/console/messages/retry-dead",
            "/console/silences",
            "/console/acks",
            "/console/api/overview",
            "/console/api/silences/preview",
            "/console/api/playground/render",
            "/console/static/console.css",
            "/console/static/../app.py",
        ]
    ),
    st.text(max_size=60).map(lambda tail: "/console/" + tail),
)
HEADER = st.one_of(st.just(""), st.text(max_size=300).filter(lambda t: "\n" not in t))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpApp]:
    directory = tmp_path_factory.mktemp("console-generated")
    with offline_app(directory, compile_yaml(directory, CONFIG)) as app:
        yield app


def call(app: HttpApp, environ: dict[str, Any]) -> tuple[int, bytes]:
    seen: list[str] = []
    chunks = app(environ, lambda status, _headers: seen.append(status))
    return int(seen[0].split()[0]), b"".join(chunks)


@given(
    path=PATHS,
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]),
    cookie=HEADER,
    authorization=HEADER,
    origin=HEADER,
    length=st.one_of(st.none(), st.text(max_size=20)),
    body=st.binary(max_size=2000),
    query=st.text(max_size=100),
)
@SETTINGS
def test_any_request_below_the_console_gets_an_answer_under_500(
    app: HttpApp,
    path: str,
    method: str,
    cookie: str,
    authorization: str,
    origin: str,
    length: str | None,
    body: bytes,
    query: str,
) -> None:
    environ = {
        "PATH_INFO": path,
        "REQUEST_METHOD": method,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)) if length is None else length,
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "HTTP_COOKIE": cookie,
        "HTTP_AUTHORIZATION": authorization,
        "HTTP_ORIGIN": origin,
        "HTTP_HOST": "127.0.0.1:8060",
        "wsgi.input": io.BytesIO(body),
    }
    status, answer = call(app, environ)
    assert status < 500, (status, answer[:300])
    signed_in = TOKEN in authorization or "generated-viewer-token-0123" in authorization
    if not signed_in and not path.startswith("/console/static/") and path != "/console/login":
        # Without a token: the sign-in form, a refusal, or nothing there; never a page's data.
        assert status in (303, 401, 403, 404, 405, 413, 400, 429), (path, status)


@given(value=st.text(max_size=600), now=st.floats(allow_nan=False, allow_infinity=False))
@SETTINGS
def test_no_cookie_value_raises_or_passes_unless_minted(value: str, now: float) -> None:
    assert auth.verify(value, TOKEN, None, now) is None


@given(name=st.text(max_size=100), now=st.floats(min_value=0, max_value=4e9))
@SETTINGS
def test_a_minted_cookie_verifies_until_it_expires_and_only_with_its_token(
    name: str, now: float
) -> None:
    value = auth.mint("operator", name, TOKEN, None, now, 3600)
    session = auth.verify(value, TOKEN, None, now)
    assert session is not None and session.role == "operator"
    assert session.name == name[: auth.MAX_NAME_CHARS]
    assert auth.verify(value, TOKEN, None, now + 3601) is None
    assert auth.verify(value, TOKEN + "x", None, now) is None


@given(
    site=st.one_of(st.just(""), st.text(max_size=30)),
    origin=st.one_of(st.just(""), st.text(max_size=80)),
    host=st.text(max_size=40),
)
@SETTINGS
def test_same_origin_never_raises_and_accepts_only_the_own_origin(
    site: str, origin: str, host: str
) -> None:
    environ = {"HTTP_SEC_FETCH_SITE": site, "HTTP_ORIGIN": origin, "HTTP_HOST": host}
    accepted = auth.same_origin(environ)
    if accepted and origin:
        assert origin == f"http://{host}"
    if site and site not in ("same-origin", "none"):
        assert not accepted
