"""The console's Playground in Chromium against the real daemon and the bundled simulator:
typing a markdown template updates the message as DingTalk shows it (a heading, a table, a
highlighted @-mention), the byte counter, and the parts once it outgrows 20,000 bytes; a
preset's sample renders; "send a test to this target" reaches the simulator, and so does "send
to the simulator". Plain HTTP: the render route refuses without the token, a cross-site POST
and a bad CSRF token; the viewer may render but not send. Screenshots at phone and desktop
widths go to test-artefacts/screenshots/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.browser import chromium, need_browser, screenshot, sign_in, wait_for
from tests.harness import Daemon, Simulator, console_session, fixture_json, wait_until

pytestmark = pytest.mark.xdist_group("browser")

TOKEN = "e2e-playground-operator-token"
VIEWER = "e2e-playground-viewer-token"
ROBOT = "tok-playground-e2e"
HEADING_AND_TABLE = (
    "## Disk {{ labels.alertname }}\n\n| host | use |\n|---|---|\n| {{ labels.instance }} | 95% |"
    "\n\n@13800000000 please look"
)


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Daemon, Simulator]]:
    need_browser()
    sim = Simulator(extra=["--accept-unknown-robots"])
    daemon = None
    try:
        daemon = Daemon(
            {
                "server": {
                    "console": {"token": TOKEN, "viewer_token": VIEWER, "simulator": sim.url}
                },
                "people": {"alice": {"mobile": "13800000000"}},
                "targets": {
                    "ops": {
                        "type": "robot",
                        "webhook": sim.robot_url(ROBOT),
                        "rate_limit": {"messages": 0},
                    }
                },
                "inputs": {
                    "am": {"type": "alertmanager", "path": "/am"},
                    "grafana": {"preset": "grafana"},
                },
                "rules": [
                    {
                        "name": "all",
                        "targets": ["ops"],
                        "msgtype": "markdown",
                        "mention": ["alice"],
                        "template": "## {{ labels.alertname }}",
                    }
                ],
            }
        )
        yield daemon, sim
    finally:
        if daemon is not None:
            daemon.stop()
        sim.stop()


def console(daemon: Daemon) -> str:
    return daemon.url + "/console"


def render_body() -> dict[str, Any]:
    return {"input": "am", "payload": json.dumps(fixture_json("firing.json")), "rule": "all"}


# -- plain HTTP ---------------------------------------------------------------------------------


def test_render_refuses_without_the_token(stack: tuple[Daemon, Simulator]) -> None:
    daemon, _ = stack
    url = console(daemon) + "/api/playground/render"
    assert requests.post(url, json=render_body(), timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token-at-all-0000"}
    assert requests.post(url, json=render_body(), headers=wrong, timeout=10).status_code == 401


def test_render_refuses_a_bad_csrf_token_and_a_cross_site_post(
    stack: tuple[Daemon, Simulator],
) -> None:
    daemon, _ = stack
    session, csrf = console_session(daemon, TOKEN)
    url = console(daemon) + "/api/playground/render"
    bad = session.post(url, json=render_body(), headers={"X-CSRF-Token": "x" + csrf}, timeout=10)
    assert bad.status_code == 403
    assert session.post(url, json=render_body(), timeout=10).status_code == 403  # none at all
    cross = {"X-CSRF-Token": csrf, "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert session.post(url, json=render_body(), headers=cross, timeout=10).status_code == 403
    good = session.post(url, json=render_body(), headers={"X-CSRF-Token": csrf}, timeout=10)
    assert good.status_code == 200, good.text
    assert good.json()["messages"][0]["target"] == "ops"


def test_the_viewer_renders_the_rules_as_written_but_may_not_edit_or_send(
    stack: tuple[Daemon, Simulator],
) -> None:
    daemon, sim = stack
    session, csrf = console_session(daemon, VIEWER)
    headers = {"X-CSRF-Token": csrf}
    base = console(daemon) + "/api/playground"
    assert session.post(f"{base}/render", json=render_body(), headers=headers).status_code == 200
    typed = {**render_body(), "template": "{% include 'config.yaml' %}"}  # beside the config
    refused = session.post(f"{base}/render", json=typed, headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"] == "编辑规则或模板需要操作员令牌。"  # the config's zh-CN
    before = len(sim.messages(token=ROBOT))
    sent = session.post(f"{base}/send?message=0", json=render_body(), headers=headers)
    assert sent.status_code == 403
    assert len(sim.messages(token=ROBOT)) == before


def test_a_test_send_takes_its_turn_in_the_robots_window() -> None:
    """The button pressed again and again never makes the call past the robot's limit (130101
    would lock out the alerts too): the second test waits for room and says when."""
    sim = Simulator(extra=["--accept-unknown-robots"])
    daemon = None
    try:
        daemon = Daemon(
            {
                "server": {"console": {"token": TOKEN}},
                "targets": {
                    "ops": {
                        "type": "robot",
                        "webhook": sim.robot_url(ROBOT),
                        "rate_limit": {"messages": 1, "per": "1h"},
                    }
                },
                "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
                "rules": [{"name": "all", "targets": ["ops"], "msgtype": "markdown"}],
            }
        )
        session, csrf = console_session(daemon, TOKEN)
        send = f"{console(daemon)}/api/playground/send?message=0"
        first = session.post(send, json=render_body(), headers={"X-CSRF-Token": csrf}).json()
        assert first["ok"] is True, first
        second = session.post(send, json=render_body(), headers={"X-CSRF-Token": csrf}).json()
        assert second["ok"] is False and second["errcode"] is None
        assert "no room in its rate window" in second["error"]
        assert 3500 < second["retry_in"] <= 3601
        assert len(sim.messages(token=ROBOT)) == 1 and sim.stats()["requests"] == 1
    finally:
        if daemon is not None:
            daemon.stop()
        sim.stop()


# -- in the browser -----------------------------------------------------------------------------


def _set(driver: Any, element_id: str, text: str) -> None:
    """Replace a textarea's text as a paste does (one input event)."""
    driver.execute_script(
        "const t = document.getElementById(arguments[0]); t.value = arguments[1];"
        "t.dispatchEvent(new Event('input', {bubbles: true}));",
        element_id,
        text,
    )


def _top(driver: Any) -> None:
    """The page from its top, no box focused (for the screenshots)."""
    driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")


def _byte_counts(driver: Any) -> list[int]:
    from selenium.webdriver.common.by import By

    return [
        int(e.get_attribute("data-bytes") or 0)
        for e in driver.find_elements(By.CSS_SELECTOR, "#pg-messages .pg-bytes")
    ]


def test_typing_a_template_shows_the_message_as_dingtalk_does(
    stack: tuple[Daemon, Simulator],
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    daemon, sim = stack
    with chromium() as driver:
        sign_in(driver, console(daemon), TOKEN, name="tester")
        driver.get(console(daemon) + "/playground")
        chat = "#pg-messages .pg-chat"
        first = wait_for(driver, lambda: driver.find_elements(By.CSS_SELECTOR, chat + " h2"))
        assert first[0].text == "DiskFull"  # the first sample, the rule's own template
        bytes_before = wait_for(driver, lambda: _byte_counts(driver))

        template = driver.find_element(By.ID, "pg-template")
        template.send_keys(Keys.CONTROL, "a")
        template.send_keys(Keys.DELETE)
        template.send_keys(HEADING_AND_TABLE)
        heading = wait_for(
            driver,
            lambda: [
                e for e in driver.find_elements(By.CSS_SELECTOR, chat + " h2") if "Disk " in e.text
            ],
        )
        assert heading[0].text == "Disk DiskFull"
        cells = driver.find_elements(By.CSS_SELECTOR, chat + " table td")
        assert [c.text for c in cells] == ["host-3:9100", "95%"]
        mention = driver.find_element(By.CSS_SELECTOR, chat + " .mention")
        assert mention.text == "@13800000000"
        assert "pinged" in (mention.get_attribute("class") or "")
        bytes_after = _byte_counts(driver)
        assert len(bytes_after) == 1 and bytes_after != bytes_before
        _top(driver)
        screenshot(driver, "playground")

        # A template error is the config's problem, shown next to the template with its line.
        _set(driver, "pg-template", "fine\n{{ broken")
        problem = wait_for(
            driver, lambda: driver.find_elements(By.CSS_SELECTOR, "#pg-template-problems li")
        )
        assert "template syntax error" in problem[0].text
        assert "line 2" in problem[0].text

        # Past 20,000 bytes: the parts it would be split into.
        long_text = "## {{ labels.alertname }}\n\n" + "\n\n".join(
            f"- line {n} " + "x" * 180 for n in range(140)
        )
        _set(driver, "pg-template", long_text)
        parts = wait_for(
            driver,
            lambda: (
                len(driver.find_elements(By.CSS_SELECTOR, "#pg-messages .pg-partno")) >= 2
                and driver.find_elements(By.CSS_SELECTOR, "#pg-messages .pg-partno")
            ),
        )
        assert re.findall(r"\d+", parts[0].text) == ["1", str(len(parts))]  # "part 1 of N"
        assert all(0 < size <= 20_000 for size in _byte_counts(driver))
        _top(driver)
        screenshot(driver, "playground-parts")

        # Back to the short one, then send it to the real target (the simulator here).
        _set(driver, "pg-template", HEADING_AND_TABLE)
        wait_for(driver, lambda: len(_byte_counts(driver)) == 1)
        driver.find_element(By.CSS_SELECTOR, "#pg-messages .pg-send").click()
        wait_until(lambda: driver.switch_to.alert, timeout=5).accept()
        answer = wait_for(
            driver,
            lambda: [
                e
                for e in driver.find_elements(By.CSS_SELECTOR, "#pg-messages .pg-answer.ok")
                if "errcode 0" in e.text
            ],
        )
        assert answer
        arrived = sim.wait_messages(1, token=ROBOT)
        assert arrived[-1]["text"].startswith("## Disk DiskFull")
        assert arrived[-1]["mentions"]["highlighted_mobiles"] == ["13800000000"]

        # "Send to the simulator": the demo robot there.
        driver.find_element(By.CSS_SELECTOR, "#pg-messages .pg-simulator").click()
        demo = sim.wait_messages(1, token="playground-demo")
        assert demo[-1]["text"].startswith("## Disk DiskFull")

        # A preset's sample renders through the preset's input.
        Select(driver.find_element(By.ID, "pg-input")).select_by_value("grafana")
        wait_for(
            driver,
            lambda: len(Select(driver.find_element(By.ID, "pg-sample")).options) > 1,
        )
        Select(driver.find_element(By.ID, "pg-sample")).select_by_visible_text(
            "grafana: firing.json"
        )
        _set(driver, "pg-template", "")  # empty: the body the preset's input defaults to
        headings = wait_for(
            driver,
            lambda: [
                e.text
                for e in driver.find_elements(By.CSS_SELECTOR, chat + " h3")
                if "High memory usage" in e.text
            ],
        )
        assert "High CPU usage" in headings[0]  # both alerts of the sample, in one message
        payload = driver.find_element(By.ID, "pg-payload").get_property("value")
        assert json.loads(payload)["receiver"] == "My Super Webhook"
        _top(driver)
        screenshot(driver, "playground-preset")


def test_a_received_payload_is_offered_as_a_sample(stack: tuple[Daemon, Simulator]) -> None:
    daemon, _ = stack
    sent = fixture_json("resolved.json")
    assert daemon.post("/am", sent).status_code == 200
    listed = requests.get(
        console(daemon) + "/api/playground/samples?input=am",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    ).json()["samples"]
    received = [s for s in listed if s["label"].startswith("#1 ")]
    assert received and json.loads(received[0]["text"]) == sent
