"""Generated hostile input for every HTTP input, through the real WSGI app in-process.

The app is built as the daemon builds it (`Bridge` on a temporary state store, `HttpApp` in
front), without starting senders or the listener. Bodies are valid payloads mutated (subtrees
swapped for random JSON, deep nesting, huge integers, NaN, lone surrogates as escapes and as raw
bytes, wrong types), random JSON and random bytes; headers and query strings are generated too,
and for the signed DingTalk inputs most requests carry a valid signature so the parsing behind
it is reached. The property: never a 5xx (an escaping exception is answered 500), always a 4xx
with a JSON `reason` or a clean 200.

Example counts are modest so the normal test run stays fast; `bench/fuzz.py` runs the long
version against the daemon.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bridge.app.bridge import Bridge
from bridge.config.model import Config, HttpInput
from bridge.dingtalk.signing import robot_sign
from bridge.errors import InputError
from bridge.inputs import jsonbody
from bridge.inputs.alertmanager import parse_notification
from bridge.inputs.http import HttpApp
from bridge.store.codec import event_to_json
from bridge.store.sqlite import SqliteStore
from tests.harness import compile_yaml, fixture_json
from tests.test_e2e_callback import AES_KEY, OWNER, TOKEN, encrypt_raw, key_of, layout, pad32, sign

APP_SECRET = "generated-app-secret"
HOOK_TOKEN = "hook-token"
CONFIG = f"""
targets: {{ops: {{type: robot, webhook: "http://127.0.0.1:9/robot/send?access_token=t"}}}}
inputs:
  am: {{type: alertmanager, path: /am}}
  am-split: {{type: alertmanager, path: /am-split, split: true}}
  hook:
    type: webhook
    path: /hook
    token: {HOOK_TOKEN}
    labels: {{service: "{{{{ body.app }}}}", env: "{{{{ body.env | default('prod') }}}}"}}
    annotations: {{summary: "{{{{ body.msg }}}}"}}
    status: "{{{{ body.state | default('firing') }}}}"
    fingerprint: "{{{{ body.app }}}}/{{{{ body.check }}}}"
  events:
    type: dingtalk_callback
    path: /events
    token: {TOKEN}
    aes_key: {AES_KEY}
    owner_key: {OWNER}
  chat:
    type: dingtalk_robot
    path: /chat
    app_secret: {APP_SECRET}
    allow: {{staff_ids: [oncall], admins: true}}
rules: [{{name: all, targets: [ops]}}]
"""
ALLOWED = {200, 400, 401, 403, 404, 405, 409, 413}
SETTINGS = settings(
    max_examples=120,
    deadline=None,  # a shared, loaded machine: speed is measured in bench/, not here
    database=None,  # no .hypothesis directory left in the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class _NoNetwork(requests.adapters.BaseAdapter):
    """Chat replies go to a `sessionWebhook` from the (generated) body: never on the network."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        raise requests.ConnectionError("no network in this test")

    def close(self) -> None:
        pass


@contextmanager
def offline_app(directory: Path, config: Config) -> Iterator[HttpApp]:
    """The WSGI app of a Bridge on `config` (its state under `directory`) whose calls to
    DingTalk fail at once: the generated-input tests of every input kind post through it."""
    session = requests.Session()
    session.mount("http://", _NoNetwork())
    session.mount("https://", _NoNetwork())
    store = SqliteStore(directory / "state")
    bridge = Bridge(config, store=store, session=session)
    try:
        yield HttpApp(bridge, bridge.clock)
    finally:
        store.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpApp]:
    directory = tmp_path_factory.mktemp("generated")
    with offline_app(directory, compile_yaml(directory, CONFIG)) as app:
        yield app


def call(
    app: HttpApp,
    path: str,
    body: bytes,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    method: str = "POST",
    content_length: str | None = None,
) -> tuple[int, bytes]:
    environ: dict[str, Any] = {
        "PATH_INFO": path,
        "REQUEST_METHOD": method,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)) if content_length is None else content_length,
        "wsgi.input": io.BytesIO(body),
        **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in (headers or {}).items()},
    }
    seen: list[str] = []
    chunks = app(environ, lambda status, _headers: seen.append(status))
    return int(seen[0].split()[0]), b"".join(chunks)


def check(status: int, answer: bytes) -> dict[str, Any]:
    """The property every answer must have."""
    event(f"HTTP {status}")  # --hypothesis-show-statistics: how often each answer came
    assert status in ALLOWED, (status, answer[:500])
    body: dict[str, Any] = json.loads(answer)
    if status != 200:
        assert isinstance(body.get("reason"), str) and body["reason"], body
        assert isinstance(body.get("error"), str), body
    return body


# -- strategies --------------------------------------------------------------------------------

HOSTILE = "\x00HOSTILE\x00"  # a placeholder replaced by a raw hostile fragment once encoded


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


fragments = st.one_of(
    st.sampled_from([1001, 4300, 4301, 20_000]).map(lambda n: b"9" * n),
    st.sampled_from([63, 64, 65, 975, 980, 984, 20_000]).map(_deep),
    st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-0", b"1.5e-400"]),
    st.sampled_from(
        [b'"\xed\xa0\x80"', b'"\\ud800"', b'"\\udfff\\ud800"', b'"\xff"', b'"\\u0000"']
    ),
    st.binary(max_size=20),
)
surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=3)
strings = st.one_of(
    st.text(max_size=30), surrogates, st.builds(str.__add__, st.text(max_size=5), surrogates)
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    strings,
    st.just(HOSTILE),
    st.sampled_from(
        [
            "2026-11-28T14:00:00",
            "2026-11-28T14:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59-01:00",
            "firing",
            "resolved",
            "4",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(strings, children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


@st.composite
def encoded(draw: st.DrawFn, value: Any) -> bytes:
    """`value` as JSON bytes: ASCII escapes or raw UTF-8 (lone surrogates then become the raw
    bytes ED A0 80 and the like), with a hostile fragment wherever the placeholder is."""
    text = json.dumps(value, ensure_ascii=draw(st.integers(0, 3)) > 0)
    raw = text.encode("utf-8", "surrogatepass")
    placeholder = json.dumps(HOSTILE).encode()
    while placeholder in raw:
        raw = raw.replace(placeholder, draw(fragments), 1)
    return raw


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> bytes:
    """`base` with up to four of its subtrees (or itself) replaced by generated values."""
    payload = copy.deepcopy(base)
    for _ in range(draw(st.integers(0, 4))):
        paths = list(_paths(payload))
        path = draw(st.sampled_from(paths))
        if not path:
            payload = draw(values)
            continue
        holder = payload
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = draw(values)
    if draw(st.booleans()) and isinstance(payload, dict):
        payload[draw(strings)] = draw(values)  # a field nobody expects
    return draw(encoded(payload))


@st.composite
def retexted(draw: st.DrawFn, base: Any) -> bytes:
    """`base` with its strings (values and keys) replaced by generated ones: mostly still a
    valid payload, so odd text reaches the rules, the store and the answer."""

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return draw(strings) if draw(st.integers(0, 3)) == 0 else value
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            renamed = {k: draw(strings) if draw(st.integers(0, 9)) == 0 else k for k in value}
            return {renamed[k]: walk(v) for k, v in value.items()}
        return value

    return draw(encoded(walk(base)))


def bodies(base: Any) -> st.SearchStrategy[bytes]:
    return st.one_of(
        retexted(base),
        retexted(base),
        retexted(base),
        mutated(base),
        values.flatmap(encoded),
        fragments,
        st.binary(max_size=200),
    )


headers = st.dictionaries(
    st.sampled_from(["authorization", "timestamp", "sign", "content-type", "x-anything"]),
    st.text(st.characters(max_codepoint=0xFF), max_size=60),  # WSGI headers are latin-1 text
    max_size=3,
)
content_lengths = st.sampled_from([None] * 12 + ["", "abc", "-1", "1e3", "99999999999999", "٣"])


# -- alertmanager and webhook ------------------------------------------------------------------


@SETTINGS
@given(
    path=st.sampled_from(["/am", "/am-split"]),
    body=bodies(fixture_json("firing.json")),
    extra=headers,
    length=content_lengths,
)
def test_alertmanager_input(
    app: HttpApp, path: str, body: bytes, extra: dict[str, str], length: str | None
) -> None:
    status, answer = call(app, path, body, headers=extra, content_length=length)
    result = check(status, answer)
    if status == 200:
        assert result["status"] == "accepted" and result["events"] >= 1


WEBHOOK = {"app": "pay", "env": "prod", "msg": "p99 high", "state": "firing", "check": "latency"}


@SETTINGS
@given(
    body=bodies(WEBHOOK),
    token=st.sampled_from(
        [f"Bearer {HOOK_TOKEN}"] * 4 + [f"bearer  {HOOK_TOKEN} ", "Bearer x", ""]
    ),
    extra=headers,
    length=content_lengths,
    method=st.sampled_from(["POST"] * 8 + ["GET", "PUT"]),
)
def test_webhook_input(
    app: HttpApp,
    body: bytes,
    token: str,
    extra: dict[str, str],
    length: str | None,
    method: str,
) -> None:
    extra = {**extra, "authorization": token}
    status, answer = call(app, "/hook", body, headers=extra, content_length=length, method=method)
    result = check(status, answer)
    if status == 200:
        assert result["status"] == "accepted"


# -- dingtalk_callback -------------------------------------------------------------------------

_counter = itertools.count()


def _now_ms(offset: float = 0.0) -> str:
    return str(int((time.time() + offset) * 1000))


plaintexts = st.one_of(
    values.map(lambda v: {"EventType": "user_add_org", "UserId": ["u"], "x": v}).flatmap(encoded),
    values.flatmap(encoded),
    st.binary(max_size=100),
    fragments.map(lambda f: b'{"EventType": "x", "v": ' + f + b"}"),
)


def _sign(timestamp: str, nonce: str, encrypt: str) -> str:
    """tests.test_e2e_callback's `sign`, for strings holding lone surrogates too."""
    if any("\ud800" <= c <= "\udfff" for c in encrypt):
        encrypt = encrypt.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return sign(TOKEN, timestamp, nonce, encrypt)


@st.composite
def callbacks(draw: st.DrawFn) -> tuple[str, bytes]:
    """(query string, body): mostly as DingTalk sends them, signed over a ciphertext of
    generated plaintext; else with one part broken."""
    broken = draw(st.sampled_from([None] * 6 + ["body", "query", "timestamp", "encrypt", "sign"]))
    nonce = f"n{next(_counter)}-{draw(st.text(max_size=6))}"
    timestamp = _now_ms()
    if broken == "timestamp":
        timestamp = draw(
            st.one_of(
                st.sampled_from([-7200, -3500, 30, 59 * 60, 7200]).map(_now_ms),
                st.text(max_size=20),
            )
        )
    if broken == "encrypt":
        encrypt = draw(st.one_of(st.text(max_size=80), surrogates))
    else:
        owner = draw(st.sampled_from([OWNER] * 5 + ["dingother"]))
        encrypt = encrypt_raw(key_of(AES_KEY), pad32(layout(draw(plaintexts), owner)))
    signature = _sign(timestamp, nonce, encrypt)
    if broken == "sign":
        signature = draw(st.text(max_size=40))
    spelling = draw(st.sampled_from([("signature", "timestamp"), ("msg_signature", "timeStamp")]))
    params = {spelling[0]: signature, spelling[1]: timestamp, "nonce": nonce}
    query = urlencode(params)
    if broken == "query":
        del params[draw(st.sampled_from(sorted(params)))]
        query = urlencode(params) if draw(st.booleans()) else draw(st.text(max_size=60))
    body = json.dumps({"encrypt": encrypt}).encode("utf-8", "surrogatepass")
    if broken == "body":
        body = draw(bodies({"encrypt": encrypt}))
    return query, body


@SETTINGS
@given(request=callbacks(), length=content_lengths)
def test_dingtalk_callback_input(
    app: HttpApp, request: tuple[str, bytes], length: str | None
) -> None:
    query, body = request
    status, answer = call(app, "/events", body, query=query, content_length=length)
    result = check(status, answer)
    if status == 200:
        assert set(result) == {"msg_signature", "timeStamp", "nonce", "encrypt"}


# -- dingtalk_robot (chat commands) ------------------------------------------------------------

CHAT = {
    "msgtype": "text",
    "text": {"content": " status"},
    "senderStaffId": "oncall",
    "senderNick": "On Call",
    "isAdmin": False,
    "conversationId": "cid",
    "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=x",
}
commands = st.one_of(
    st.sampled_from(
        ["help", "status", "silences", "ack abc", "expire x", "silence", "silence a=b"]
    ),
    st.text(max_size=60),
)


@st.composite
def chats(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    """(headers, body): mostly a fresh valid timestamp and sign over a chat message with
    generated parts, else a stale, future, reused or forged one."""
    broken = draw(st.sampled_from([None] * 6 + ["timestamp", "sign", "reused"]))
    timestamp = _now_ms(-next(_counter) / 1000)  # a new millisecond for each example
    if broken == "timestamp":
        timestamp = draw(
            st.one_of(
                st.sampled_from([-7200, 59 * 60, 120]).map(_now_ms),
                st.text(st.characters(max_codepoint=0xFF), max_size=20),
            )
        )
    elif broken == "reused":
        timestamp = REUSED
    signature = robot_sign(timestamp, APP_SECRET)
    if broken == "sign":
        signature = draw(st.text(st.characters(max_codepoint=0xFF), max_size=50))
    message = {**CHAT, "text": {"content": draw(commands)}}
    return {"timestamp": timestamp, "sign": signature}, draw(bodies(message))


REUSED = _now_ms(-1000)  # one timestamp for every example that reuses one: 409 after the first


@SETTINGS
@given(request=chats(), extra=headers, length=content_lengths)
def test_dingtalk_robot_input(
    app: HttpApp, request: tuple[dict[str, str], bytes], extra: dict[str, str], length: str | None
) -> None:
    signed, body = request
    status, answer = call(app, "/chat", body, headers={**extra, **signed}, content_length=length)
    result = check(status, answer)
    if status == 200:
        assert result == {} or result.get("msgtype") == "text"


# -- the pieces behind them, directly ----------------------------------------------------------


@settings(max_examples=300, deadline=None, database=None)
@given(raw=st.one_of(values.flatmap(encoded), st.binary(max_size=300), fragments))
def test_the_json_parser_gives_store_safe_values_or_a_400(raw: bytes) -> None:
    try:
        value = jsonbody.loads(raw)
    except InputError as exc:
        assert exc.status == 400 and str(exc)
        return
    # What the store does with a payload: it must neither fail nor recurse too deep.
    json.dumps(value, ensure_ascii=False).encode("utf-8")


@settings(max_examples=200, deadline=None, database=None)
@given(value=values.filter(lambda v: HOSTILE not in json.dumps(v)))
def test_the_json_parser_reads_what_json_writes(value: Any) -> None:
    """Valid JSON without lone surrogates comes back as it went in (the limits aside)."""
    text = json.dumps(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return
    if "\\ud" in text.lower():
        return  # lone surrogates are replaced: not a round trip by design
    assert jsonbody.loads(text.encode()) == json.loads(text)


times = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        datetime.isoformat
    ),
    st.datetimes(
        timezones=st.timezones(), min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)
    ).map(datetime.isoformat),
    st.sampled_from(
        ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00"]
    ),
    st.text(max_size=40),
)


@settings(max_examples=200, deadline=None, database=None)
@given(starts=times, ends=times)
def test_every_time_in_an_alertmanager_event_is_aware_or_the_field_is_named(
    starts: str, ends: str
) -> None:
    payload = fixture_json("firing.json")
    payload["alerts"][0].update(startsAt=starts, endsAt=ends)
    spec = HttpInput(name="am", type="alertmanager", path="/am", token=None, max_body_bytes=1 << 20)
    try:
        [event] = parse_notification(payload, spec, datetime.now(UTC))
    except InputError as exc:
        assert exc.status == 400
        assert "alerts[0].startsAt" in str(exc) or "alerts[0].endsAt" in str(exc)
        return
    [alert] = event.alerts
    for moment in (alert.starts_at, alert.ends_at):
        assert moment is None or moment.utcoffset() is not None  # None: the field was empty
        if moment is not None:
            moment.astimezone(UTC)
    if alert.starts_at is not None and alert.ends_at is not None:
        alert.ends_at - alert.starts_at  # what the renderer computes: never naive minus aware
    event_to_json(event)
