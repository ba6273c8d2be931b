"""The playground's backend in process: the memory of the last bodies each input took (its
bounds, and that the router records only what it answered 200 to), and the render route (what
the pipeline would decide, the bodies as DingTalk shows them, problems located in the typed rule
or template, never a 5xx on generated text). In a real browser: test_e2e_console_playground.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.errors import ConfigError
from bridge.inputs.http import HttpApp
from bridge.inputs.received import MAX_BODY_BYTES, PER_INPUT, ReceivedBodies
from tests.harness import compile_yaml, fixture_json
from tests.test_http_generated import offline_app

TOKEN = "playground-test-token-0123456789"
CONFIG = f"""
server:
  listen: 127.0.0.1:0
  console: {{token: {TOKEN}}}
people:
  alice: {{mobile: "13800000000"}}
targets:
  ops: {{type: robot, webhook: "http://127.0.0.1:9/robot/send?access_token=x"}}
inputs:
  am: {{type: alertmanager, path: /am}}
  ci: {{type: webhook, path: /ci, token: ci-token-0123456789}}
  log:
    type: file
    paths: ["logs/*.log"]
    patterns: [{{regex: '(?P<level>ERROR) (?P<logger>\\S+) - (?P<message>.*)'}}]
rules:
  - name: bundled
    inputs: [am]
    match: {{alertname: Never}}
    targets: [ops]
    template: alertmanager.md.j2
  - name: all
    targets: [ops]
    msgtype: markdown
    template: "## {{{{ labels.alertname }}}}"
"""


# -- the memory of received bodies ------------------------------------------------------------


def test_keeps_the_last_bodies_per_input_newest_first() -> None:
    memory = ReceivedBodies()
    for n in range(PER_INPUT + 3):
        memory.record("am", float(n), f"body {n}".encode())
    memory.record("ci", 1.0, b"other")
    kept = memory.recent("am")
    assert [r.body for r in kept] == [f"body {n}".encode() for n in range(PER_INPUT + 2, 2, -1)]
    assert [r.body for r in memory.recent("ci")] == [b"other"]
    assert memory.recent("nobody") == []


@pytest.mark.parametrize(
    ("size", "kept"), [(0, False), (1, True), (MAX_BODY_BYTES, True), (MAX_BODY_BYTES + 1, False)]
)
def test_a_body_is_kept_only_within_the_size_bound(size: int, kept: bool) -> None:
    memory = ReceivedBodies()
    memory.record("am", 0.0, b"x" * size)
    assert len(memory.recent("am")) == (1 if kept else 0)


def test_forget_drops_inputs_no_longer_configured() -> None:
    memory = ReceivedBodies(per_input=2, max_bytes=10)
    memory.record("am", 0.0, b"a")
    memory.record("gone", 0.0, b"b")
    memory.forget({"am"})
    assert [r.body for r in memory.recent("am")] == [b"a"]
    assert memory.recent("gone") == []


# -- through the router and the console -------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpApp]:
    directory = tmp_path_factory.mktemp("playground")
    config = compile_yaml(directory, CONFIG)
    with offline_app(directory, config) as http_app:
        yield http_app


def call(
    app: HttpApp,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, Any]:
    path, _, query = path.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        **(headers or {}),
    }
    status: list[str] = []
    raw = b"".join(app(environ, lambda s, h: status.append(s)))
    code = int(status[0].split()[0])
    try:
        return code, json.loads(raw)
    except ValueError:
        return code, raw


def render(app: HttpApp, **asked: Any) -> tuple[int, Any]:
    body = {"input": "am", "payload": json.dumps(fixture_json("firing.json")), **asked}
    return call(
        app,
        "/console/api/playground/render",
        json.dumps(body).encode(),
        {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"},
    )


def test_the_router_records_a_body_it_took_and_not_one_it_refused(app: HttpApp) -> None:
    memory = app.intake.bodies_received  # type: ignore[attr-defined]
    taken = json.dumps(fixture_json("firing.json")).encode()
    assert call(app, "/am", taken)[0] == 200
    assert call(app, "/ci", b'{"app": "x"}')[0] == 401  # no token: refused, not kept
    assert memory.recent("am")[0].body == taken
    assert memory.recent("ci") == []


def test_render_shows_the_decision_and_the_message_as_dingtalk_shows_it(app: HttpApp) -> None:
    status, answer = render(app, rule="all", template="## {{ labels.alertname }}\n\n@13800000000")
    assert status == 200, answer
    assert answer["problems"] == []
    assert answer["decisions"][0].startswith("rule all: queued")
    (message,) = answer["messages"]
    assert (message["rule"], message["target"], message["type"]) == ("all", "ops", "robot")
    (part,) = message["parts"]
    assert "<h2>DiskFull</h2>" in part["html"]
    assert part["limit"] == 20_000 and 0 < part["bytes"] < 20_000
    assert json.loads(part["body"])["markdown"]["text"].startswith("## DiskFull")


def test_a_long_message_comes_back_in_parts(app: HttpApp) -> None:
    template = "## {{ labels.alertname }}\n\n" + "\n\n".join(["- " + "x" * 200] * 150)
    status, answer = render(app, rule="all", template=template)
    assert status == 200, answer
    parts = answer["messages"][0]["parts"]
    assert len(parts) >= 2
    assert all(p["bytes"] <= p["limit"] for p in parts)


@pytest.mark.parametrize(
    ("asked", "where", "line", "says"),
    [
        ({"template": "line one\n{{ oops"}, "template", 2, "template syntax error"),
        ({"template": "{{ nosuch }}"}, "template", None, 'unknown variable "nosuch"'),
        ({"rule_yaml": "name: all\ntargets: [nope]\n"}, "rule", 2, 'unknown target "nope"'),
        ({"rule_yaml": "name: all\n  bad: [\n"}, "rule", 2, ""),
        ({"rule_yaml": "- a list"}, "rule", 1, "a rule is a mapping"),
        ({"payload": "{not json"}, "payload", None, "cannot read: Expecting property name"),
    ],
)
def test_problems_come_back_where_they_are_typed(
    app: HttpApp, asked: dict[str, Any], where: str, line: int | None, says: str
) -> None:
    status, answer = render(app, rule="all", **asked)
    assert status == 200, answer
    assert answer["messages"] == []
    found = [p for p in answer["problems"] if p["where"] == where]
    assert found, answer["problems"]
    assert found[0]["line"] == line
    assert says in found[0]["message"]


def test_a_typed_env_reference_does_not_read_the_daemons_environment(
    app: HttpApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAYGROUND_SECRET", "s3cret-value")
    rule = 'name: all\ntargets: [ops]\ntitle: "${PLAYGROUND_SECRET}"\n'
    status, answer = render(app, rule="all", rule_yaml=rule)
    assert status == 200
    assert "s3cret-value" not in json.dumps(answer)


def test_render_of_an_unknown_input_or_a_bad_body_is_a_4xx(app: HttpApp) -> None:
    assert render(app, input="nosuch")[0] == 404
    headers = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    assert call(app, "/console/api/playground/render", b"[1]", headers)[0] == 400
    assert call(app, "/console/api/playground/render", b'{"input": 1}', headers)[0] == 400


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    template=st.one_of(st.none(), st.text(max_size=300)),
    rule_yaml=st.one_of(st.none(), st.text(max_size=200)),
    payload=st.one_of(
        st.text(max_size=300),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=10), inner, max_size=4)
            ),
            max_leaves=20,
        ).map(json.dumps),
    ),
    input_name=st.sampled_from(["am", "ci", "log", "nosuch"]),
)
def test_generated_templates_rules_and_payloads_never_make_a_5xx(
    app: HttpApp, template: str | None, rule_yaml: str | None, payload: str, input_name: str
) -> None:
    status, answer = render(
        app, input=input_name, payload=payload, rule="all", rule_yaml=rule_yaml, template=template
    )
    assert status < 500, answer
    assert isinstance(answer, dict)


def test_the_config_file_is_left_as_it_was(app: HttpApp) -> None:
    path = Path(app.intake.config.path)  # type: ignore[attr-defined]
    before = path.read_bytes()
    render(app, rule="all", rule_yaml="name: all\ntargets: [ops]\n", template="changed")
    assert path.read_bytes() == before


def test_a_config_file_edited_since_the_load_is_said_to_be_so(app: HttpApp) -> None:
    """The trial reads the file as it is now; an edit not reloaded yet is not what runs."""
    path = Path(app.intake.config.path)  # type: ignore[attr-defined]
    before = path.read_bytes()
    status, answer = render(app, rule="all")
    assert status == 200 and answer["file_changed"] is False and answer["notice"] == ""
    try:
        path.write_bytes(before + b"# an edit not reloaded yet\n")
        status, answer = render(app, rule="all")
        assert status == 200 and answer["file_changed"] is True
        assert answer["notice"].startswith(
            f"{path.name} 在服务加载后已被修改"
        )  # zh-CN: the config's
    finally:
        path.write_bytes(before)
    assert render(app, rule="all")[1]["file_changed"] is False


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("http://127.0.0.1:8061", "http://127.0.0.1:8061"),
        ("https://sim.example/", "https://sim.example"),
        ("127.0.0.1:8061", None),
        ("http://127.0.0.1:8061/robot/send?access_token=x", None),
    ],
)
def test_the_simulator_setting_is_a_base_url(tmp_path: Path, value: str, kept: str | None) -> None:
    text = CONFIG.replace(
        f"console: {{token: {TOKEN}}}",
        f"console: {{token: {TOKEN}, simulator: {json.dumps(value)}}}",
    )
    if kept is None:
        with pytest.raises(ConfigError) as raised:
            compile_yaml(tmp_path, text)
        assert [p.path for p in raised.value.problems] == ["server.console.simulator"]
    else:
        console = compile_yaml(tmp_path, text).server.console
        assert console.simulator == kept


def test_a_secret_the_config_knows_never_reaches_the_page(app: HttpApp) -> None:
    webhook = "http://127.0.0.1:9/robot/send?access_token=x"  # the target's, in CONFIG
    status, answer = render(app, rule="all", template="leak {{ '" + webhook + "' }} here")
    assert status == 200, answer
    text = json.dumps(answer)
    assert webhook not in text
    assert (
        "leak *** here" in json.loads(answer["messages"][0]["parts"][0]["body"])["markdown"]["text"]
    )


def test_a_file_template_sent_back_unchanged_is_still_the_file(app: HttpApp) -> None:
    """The page shows a file template's text; sent back as it was, the rule keeps the file (as
    the daemon checks it), not an inline copy."""
    from bridge.app.console.samples import template_text
    from bridge.config.resources import data_dir

    text = template_text(data_dir("templates"), "alertmanager.md.j2")
    assert "{% for a in alerts" in text
    rule = "name: bundled\ninputs: [am]\nmatch: {alertname: Never}\ntargets: [ops]\n"
    status, answer = render(app, rule="bundled", rule_yaml=rule, template=text)
    assert status == 200
    assert answer["problems"] == []


def test_a_file_input_takes_a_log_line(app: HttpApp) -> None:
    line = "2026-12-02 10:00:00 ERROR db.pool - connection refused\n"
    status, answer = render(
        app, input="log", payload=line, rule="all", template="{{ labels.message }}"
    )
    assert status == 200, answer
    assert answer["problems"] == []
    body = json.loads(answer["messages"][0]["parts"][0]["body"])
    assert body["markdown"]["text"].startswith("connection refused")
