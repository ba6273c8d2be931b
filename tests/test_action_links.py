"""One-tap actions in-process: the links a firing alert's message carries (per message kind), the
/-/act/ page (GET shows, POST acts, every refusal a page with its status), acting through the
desk (the silence, the ack, the follow-up message queued to the rule's targets, single use), and
generated requests to the route (never a 5xx). The daemon's end of it: test_e2e_actions.py."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.alerting.actions import Grant, sign
from bridge.app.bridge import Bridge
from bridge.app.rendering import QueuedRenderer
from bridge.clock import FakeClock
from bridge.dingtalk.worknotice import work_notice_msg
from bridge.inputs.http import HttpApp
from bridge.model import Message
from bridge.pipeline.actionlinks import ActionLinks, with_actions
from bridge.store.records import Row
from bridge.store.sqlite import SqliteStore
from tests.harness import am_alert_payload, compile_yaml

NOW = 1_800_000_000.0
SECRET = "0123456789abcdef0123456789abcdef"
CONFIG = f"""
locale: en
actions: {{base_url: "https://bridge.example.com/", secret: {SECRET}, ttl: 1h, silence: [1h, 4h]}}
targets:
  ops: {{type: robot, webhook: "http://127.0.0.1:9/robot/send?access_token=t"}}
  pager: {{type: robot, webhook: "http://127.0.0.1:9/robot/send?access_token=p"}}
inputs: {{am: {{type: alertmanager, path: /am}}}}
rules:
  - {{name: md, match: {{kind: md}}, targets: [ops, pager], actions: [ack, silence, runbook]}}
  - name: card
    match: {{kind: card}}
    targets: [ops]
    msgtype: actionCard
    buttons: [{{title: Graph, url: "https://grafana.example/d/1"}}]
    actions: [silence]
  - {{name: text, match: {{kind: text}}, targets: [ops], msgtype: text, actions: [ack]}}
  - name: placed
    match: {{kind: placed}}
    targets: [ops]
    template: "{{{{ labels.alertname }}}} [ack it]({{{{ actions.ack }}}})"
    actions: [ack, silence]
  - {{name: plain, targets: [ops]}}
"""


@contextmanager
def running(tmp_path: Path, config_text: str = CONFIG) -> Iterator[tuple[Bridge, HttpApp]]:
    config = compile_yaml(tmp_path, config_text)
    store = SqliteStore(tmp_path / "state")
    bridge = Bridge(config, store=store, clock=FakeClock(NOW))
    try:
        yield bridge, HttpApp(bridge, bridge.clock)
    finally:
        store.close()


def call(
    app: HttpApp, path: str, method: str = "GET", body: bytes = b"", **environ: str
) -> tuple[int, dict[str, str], str]:
    seen: list[Any] = []
    chunks = app(
        {
            "PATH_INFO": path,
            "REQUEST_METHOD": method,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "REMOTE_ADDR": "192.0.2.7",
            **environ,
        },
        lambda status, headers: seen.append((status, headers)),
    )
    status, headers = seen[0]
    return int(status.split()[0]), dict(headers), b"".join(chunks).decode()


def fire(bridge: Bridge, app: HttpApp, kind: str, status: str = "firing", **labels: str) -> None:
    payload = am_alert_payload("DiskFull", status, kind=kind, instance="db-1", **labels)
    if status == "firing":
        payload["alerts"][0]["annotations"]["runbook_url"] = "https://wiki.example/DiskFull"
    code, _, answer = call(app, "/am", "POST", json.dumps(payload).encode())
    assert code == 200, answer


def sent(bridge: Bridge, target: str = "ops") -> list[tuple[Row, Message]]:
    """Each queued row of `target`, oldest first, with the message it would be sent as now."""
    renderer = QueuedRenderer(
        bridge._rules,
        lambda: bridge.config.locale,
        lambda: bridge.config.actions,
        bridge.action_key,
    )
    with bridge.store.reading() as tx:
        rows = sorted(tx.outbox.listing(target=target), key=lambda r: r.id)
    return [(row, renderer.message(row, bridge.clock.now()).message) for row in rows]


def links_in(text: str) -> list[str]:
    return re.findall(r"https://bridge\.example\.com/-/act/[A-Za-z0-9_.-]+", text)


# -- the links on the messages ---------------------------------------------------------------


def test_a_markdown_message_gets_a_line_of_links_under_its_text(tmp_path: Path) -> None:
    with running(tmp_path) as (bridge, app):
        fire(bridge, app, "md")
        [(_row, message)] = sent(bridge)
        assert message.msgtype == "markdown" and not message.buttons
        last = message.text.splitlines()[-1]
        titles = re.findall(r"\[([^\]]+)\]\(", last)
        assert titles == ["Ack", "Silence 1h", "Silence 4h", "Runbook"]
        assert "(https://wiki.example/DiskFull)" in last  # the runbook: a plain link
        assert len(links_in(last)) == 3
        again = sent(bridge)[0][1]
        assert again.text == message.text  # every try of one message is the same content


def test_an_action_card_gets_buttons_after_its_own(tmp_path: Path) -> None:
    with running(tmp_path) as (bridge, app):
        fire(bridge, app, "card")
        [(_, message)] = sent(bridge)
        assert [b.title for b in message.buttons] == ["Graph", "Silence 1h", "Silence 4h"]
        assert not links_in(message.text)


def test_a_text_message_gets_a_line_per_link(tmp_path: Path) -> None:
    with running(tmp_path) as (bridge, app):
        fire(bridge, app, "text")
        [(_, message)] = sent(bridge)
        assert re.search(r"\nAck: https://bridge\.example\.com/-/act/\S+$", message.text)


def test_a_template_that_places_a_link_keeps_it_where_it_is(tmp_path: Path) -> None:
    with running(tmp_path) as (bridge, app):
        fire(bridge, app, "placed")
        [(_, message)] = sent(bridge)
        first, *rest = message.text.split("\n\n")
        assert first.startswith("DiskFull [ack it](https://bridge.example.com/-/act/")
        assert re.findall(r"\[([^\]]+)\]\(", "\n".join(rest)) == ["Silence 1h", "Silence 4h"]


def test_no_links_on_resolved_messages_nor_on_rules_without_actions(tmp_path: Path) -> None:
    with running(tmp_path) as (bridge, app):
        fire(bridge, app, "md", status="resolved")
        fire(bridge, app, "other")
        for _, message in sent(bridge):
            assert not links_in(message.text) and not message.buttons


def test_without_a_runbook_url_there_is_no_runbook_link() -> None:
    message = Message("markdown", "t", "body")
    assert with_actions(message, ActionLinks()) == message


# -- the page ------------------------------------------------------------------------------


def link(bridge: Bridge, app: HttpApp, title: str, kind: str = "md") -> str:
    fire(bridge, app, kind)
    message = sent(bridge)[-1][1]
    urls: list[str] = re.findall(
        rf"\[{title}\]\((https://bridge\.example\.com[^)]+)\)", message.text
    )
    assert len(urls) == 1
    return urls[0].removeprefix("https://bridge.example.com")


def test_get_shows_what_the_link_will_do_and_does_nothing(tmp_path: Path) -> None:
    with running(tmp_path) as (bridge, app):
        path = link(bridge, app, "Silence 1h")
        for _ in range(3):  # a prefetch, a preview, the person: none of them acts
            status, headers, page = call(app, path)
            assert status == 200
            assert "Silence DiskFull on db-1 for 1h?" in page
            assert '<form method="post">' in page and 'name="who"' in page
            assert "<script" not in page
            assert headers["Cache-Control"] == "no-store"
            assert headers["Referrer-Policy"] == "no-referrer"
            assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert bridge.desk.silences(NOW) == []
        status, _, page = call(app, path, "HEAD")
        assert status == 200


def test_post_silences_once_and_queues_the_follow_up_to_the_rules_targets(
    tmp_path: Path,
) -> None:
    with running(tmp_path) as (bridge, app):
        path = link(bridge, app, "Silence 1h")
        status, _, page = call(app, path, "POST", b"who=%E5%BC%A0%E4%B8%89")
        assert status == 200, page
        assert "DiskFull on db-1: silenced for 1h by 张三" in page
        [silence] = bridge.desk.silences(NOW)
        assert silence.ends_at - silence.starts_at == 3600
        assert silence.author == "张三"
        assert {(m.name, m.op, m.value) for m in silence.matchers} >= {
            ("alertname", "=", "DiskFull"),
            ("instance", "=", "db-1"),
        }
        for target in ("ops", "pager"):
            follow_up = sent(bridge, target)[-1][1]
            assert follow_up.msgtype == "text"
            assert follow_up.text == "DiskFull on db-1: silenced for 1h by 张三"
        status, _, page = call(app, path, "POST", b"who=again")
        assert status == 409 and "this link was used before" in page
        status, _, page = call(app, path)  # the page of a used link offers no button
        assert status == 409 and "this link was used before" in page and "<form" not in page
        assert len(bridge.desk.silences(NOW)) == 1
        assert len(sent(bridge, "pager")) == 2  # the alert and one follow-up


def test_post_acks_and_says_so_with_a_default_name(tmp_path: Path) -> None:
    with running(tmp_path) as (bridge, app):
        path = link(bridge, app, "Ack")
        status, _, page = call(app, path, "POST")
        assert status == 200, page
        assert "acknowledged by someone via link" in page
        row = sent(bridge)[0][0]
        with bridge.store.reading() as tx:
            assert tx.acks.acknowledged_by(row.fingerprint) == "someone via link"


def test_an_ack_link_for_an_alert_no_longer_firing_does_nothing(tmp_path: Path) -> None:
    with running(tmp_path) as (bridge, app):
        path = link(bridge, app, "Ack")
        fire(bridge, app, "md", status="resolved")
        status, _, page = call(app, path, "POST")
        assert status == 409 and "There is no firing alert" in page
        assert len(sent(bridge, "pager")) == 2  # the alert, its resolution: no follow-up


def test_a_chinese_config_gets_a_chinese_page(tmp_path: Path) -> None:
    with running(tmp_path, CONFIG.replace("locale: en", "locale: zh-CN")) as (bridge, app):
        fire(bridge, app, "md")
        message = sent(bridge)[-1][1]
        [url] = re.findall(r"\[静默 1 小时\]\((https://[^)]+)\)", message.text)
        path = url.removeprefix("https://bridge.example.com")
        assert "静默 DiskFull（db-1） 1 小时？" in call(app, path)[2]
        status, _, page = call(app, path, "POST", "who=张三".encode())
        assert status == 200
        assert "DiskFull（db-1）：已静默 1 小时，操作人 张三" in page


def grant(**change: Any) -> Grant:
    base = Grant("silence", "f" * 16, "md", "ops", {"alertname": "X"}, 3600.0, NOW + 60, "n")
    return Grant(**{**base.__dict__, **change})


@pytest.mark.parametrize(
    ("path", "method", "status", "says"),
    [
        ("/-/act/" + sign(grant(), SECRET.encode()), "PUT", 405, "takes GET and POST"),
        ("/-/act/", "GET", 400, "not an action link"),
        ("/-/act/x.y", "GET", 400, "not an action link"),
        ("/-/act/" + sign(grant(), b"another key"), "GET", 403, "altered"),
        ("/-/act/" + sign(grant(expires=NOW), SECRET.encode()), "GET", 410, "expired"),
        ("/-/act/" + sign(grant(expires=NOW - 1), SECRET.encode()), "POST", 410, "expired"),
        ("/-/act/" + sign(grant(labels={}), SECRET.encode()), "POST", 409, "no labels"),
        ("/-/act/" + sign(grant(), SECRET.encode()) + "/x", "GET", 400, "not an action link"),
    ],
)
def test_refusals_are_pages_with_their_status(
    tmp_path: Path, path: str, method: str, status: int, says: str
) -> None:
    with running(tmp_path) as (bridge, app):
        code, headers, page = call(app, path, method)
        assert (code, says in page) == (status, True), page
        assert headers["Cache-Control"] == "no-store"
        if status == 405:
            assert headers["Allow"] == "GET, HEAD, POST"
        assert bridge.desk.silences(NOW) == []


def test_an_altered_character_is_refused(tmp_path: Path) -> None:
    with running(tmp_path) as (bridge, app):
        path = link(bridge, app, "Silence 1h")
        index = len("/-/act/") + 5
        altered = path[:index] + ("A" if path[index] != "A" else "B") + path[index + 1 :]
        assert call(app, altered, "POST")[0] == 403
        assert bridge.desk.silences(NOW) == []


def test_everything_shown_is_escaped(tmp_path: Path) -> None:
    with running(tmp_path) as (_bridge, app):
        evil = grant(labels={"alertname": "<script>x</script>", "instance": '"><b>'})
        page = call(app, "/-/act/" + sign(evil, SECRET.encode()))[2]
        assert "<script>" not in page and '"><b>' not in page
        assert "&lt;script&gt;" in page
        status, _, page = call(
            app, "/-/act/" + sign(evil, SECRET.encode()), "POST", b"who=%3Ci%3Eme%0A%00"
        )
        assert status == 200 and "<i>" not in page and "&lt;i&gt;me" in page


def test_a_form_too_large_is_refused_unread(tmp_path: Path) -> None:
    with running(tmp_path) as (bridge, app):
        path = "/-/act/" + sign(grant(), SECRET.encode())
        assert call(app, path, "POST", b"who=" + b"x" * 5000)[0] == 413
        assert bridge.desk.silences(NOW) == []


def test_without_a_base_url_there_is_no_page(tmp_path: Path) -> None:
    config = re.sub(r"actions: \{base_url: [^,]+, ", "actions: {", CONFIG)
    config = config.replace("actions: [ack, silence, runbook]", "actions: [runbook]")
    config = config.replace("actions: [silence]", "actions: [runbook]")
    config = config.replace("actions: [ack]", "actions: [runbook]")
    config = config.replace("actions: [ack, silence]", "actions: [runbook]")
    with running(tmp_path, config) as (_, app):
        assert call(app, "/-/act/" + sign(grant(), SECRET.encode()))[0] == 404


# -- generated requests ------------------------------------------------------------------------

GENERATED = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Bridge, HttpApp]]:
    with running(tmp_path_factory.mktemp("generated")) as both:
        yield both


@GENERATED
@given(
    suffix=st.one_of(
        st.text(max_size=300),
        st.text(
            alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.",
            max_size=500,
        ),
    ),
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "GETX"]),
    body=st.binary(max_size=3000),
    length=st.one_of(st.none(), st.text(max_size=20)),
)
def test_generated_requests_never_get_a_5xx(
    shared: tuple[Bridge, HttpApp], suffix: str, method: str, body: bytes, length: str | None
) -> None:
    _, app = shared
    extra = {} if length is None else {"CONTENT_LENGTH": length}
    status, headers, page = call(app, "/-/act/" + suffix, method, body, **extra)
    assert 400 <= status < 500, page
    assert headers["Content-Type"].startswith("text/html")


@GENERATED
@given(st.data())
def test_a_signed_link_with_any_change_never_acts(
    shared: tuple[Bridge, HttpApp], data: st.DataObject
) -> None:
    bridge, app = shared
    token = sign(grant(nonce=data.draw(st.text(max_size=8))), SECRET.encode())
    index = data.draw(st.integers(0, len(token) - 1))
    char = data.draw(st.characters(codec="utf-8").filter(lambda c: c != token[index]))
    status, _, _ = call(app, "/-/act/" + token[:index] + char + token[index + 1 :], "POST")
    assert status in (400, 403)
    assert bridge.desk.silences(NOW) == []


@GENERATED
@given(
    nonce=st.uuids(),
    body=st.binary(max_size=3000),
    length=st.one_of(st.none(), st.text(max_size=20)),
    forwarded=st.text(max_size=300),
)
def test_generated_forms_on_a_valid_link_never_get_a_5xx(
    shared: tuple[Bridge, HttpApp], nonce: object, body: bytes, length: str | None, forwarded: str
) -> None:
    _, app = shared
    path = "/-/act/" + sign(grant(nonce=str(nonce)), SECRET.encode())
    extra = {"HTTP_X_FORWARDED_FOR": forwarded}
    if length is not None:
        extra["CONTENT_LENGTH"] = length
    status, _, page = call(app, path, "POST", body, **extra)
    assert status in (200, 400, 409, 413), page  # 409: hypothesis drew a nonce again


# -- the entry point a card click will call ------------------------------------------------------


def test_act_applies_the_chat_commands_rule_to_whoever_clicked(tmp_path: Path) -> None:
    """No link here: the caller says who acted and whether the input allows them."""
    with running(tmp_path) as (bridge, app):
        fire(bridge, app, "md")
        row = sent(bridge)[0][0]
        ack = grant(action="ack", fingerprint=row.fingerprint, labels={"alertname": "DiskFull"})
        refused = bridge.desk.act(ack, "visitor", allowed=False, now=NOW)
        assert not refused.done and "Sorry visitor, you may not ack here" in refused.text
        with bridge.store.reading() as tx:
            assert tx.acks.acknowledged_by(row.fingerprint) is None
        done = bridge.desk.act(ack, "张三", allowed=True, now=NOW)
        assert (
            done.done
            and done.text == "DiskFull: acknowledged by 张三: no more reminders until it resolves"
        )
        again = bridge.desk.act(ack, "李四", allowed=True, now=NOW)
        assert not again.done and "already acknowledged by 张三" in again.text
        assert [m.text for _, m in sent(bridge, "pager")][1:] == [done.text]  # one follow-up


def test_a_work_notice_card_carries_the_links_as_action_card_buttons(tmp_path: Path) -> None:
    config = CONFIG.replace(
        '  pager: {type: robot, webhook: "http://127.0.0.1:9/robot/send?access_token=p"}',
        "  pager: {type: work_notice, app_key: k, app_secret: s, agent_id: 1, userids: [u1]}",
    ).replace(
        "targets: [ops]\n    msgtype: actionCard", "targets: [pager]\n    msgtype: actionCard"
    )
    with running(tmp_path, config) as (bridge, app):
        fire(bridge, app, "card")
        message = sent(bridge, "pager")[0][1]
        card = work_notice_msg(message, "unique")["action_card"]
        assert [b["title"] for b in card["btn_json_list"]] == ["Graph", "Silence 1h", "Silence 4h"]
        assert card["btn_json_list"][1]["action_url"].startswith(
            "https://bridge.example.com/-/act/"
        )
