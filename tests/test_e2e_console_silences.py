"""The console's Silences page against the real daemon and the DingTalk simulator: a silence
added in Chromium (after its preview listed the firing alert) stops the next matching alert
until it is expired on the page; and, over plain HTTP, what the page refuses: a cross-site
POST, a POST without the CSRF token, the viewer's token, a read-only console, bad matchers;
and generated matcher text never makes the preview or the add form answer a 5xx."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.browser import chromium, screenshot, sign_in, wait_for
from tests.harness import (
    Daemon,
    Simulator,
    am_alert_payload,
    console_session,
    free_port,
    wait_until,
)

pytestmark = pytest.mark.xdist_group("browser")

ROBOT = "tok-silences"
TOKEN = "operator-console-token-0123"
VIEWER = "viewer-console-token-4567"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    sim = Simulator(spec={"robots": {ROBOT: {"rate_per_minute": 0}}})
    yield sim
    sim.stop()


def daemon_config(sim: Simulator, read_only: bool = False) -> dict[str, Any]:
    return {
        "locale": "en",  # the page's words, asserted below (zh-CN is the default)
        "server": {"console": {"token": TOKEN, "viewer_token": VIEWER, "read_only": read_only}},
        "targets": {
            "ops": {"type": "robot", "webhook": sim.robot_url(ROBOT), "rate_limit": {"messages": 0}}
        },
        # Every notification is posted (Alertmanager-fed rules repeat at once, no dedup window):
        # only a silence keeps a re-posted alert from the chat.
        "inputs": {"am": {"type": "alertmanager", "path": "/am", "dedup_window": 0}},
        "silences": [{"matchers": ["alertname=Maintenance"], "comment": "kept in the config"}],
        "rules": [{"name": "all", "inputs": ["am"], "targets": ["ops"]}],
    }


@pytest.fixture
def daemon(sim: Simulator, tmp_path: Path) -> Iterator[Daemon]:
    sim.control("reset")
    daemon = Daemon(daemon_config(sim), directory=tmp_path)
    yield daemon
    daemon.stop()


def disk_full(sim: Simulator) -> list[dict[str, Any]]:
    return [m for m in sim.messages(token=ROBOT) if "DiskFull" in m["text"]]


def test_a_silence_added_on_the_page_stops_the_next_alert_until_expired_there(
    sim: Simulator, daemon: Daemon
) -> None:
    from selenium.webdriver.common.by import By

    assert daemon.post("/am", am_alert_payload("DiskFull", host="db1")).json()["messages"] == 1
    assert daemon.post("/am", am_alert_payload("CPUHigh", host="db1")).json()["messages"] == 1
    wait_until(lambda: len(sim.messages(token=ROBOT)) == 2)
    console = f"{daemon.url}/console"
    with chromium() as driver:
        sign_in(driver, console, TOKEN, name="ann")
        driver.get(f"{console}/silences")
        config_row = driver.find_element(By.CSS_SELECTOR, "#silences tr[data-silence]")
        assert "from the config" in config_row.text and not config_row.find_elements(
            By.CSS_SELECTOR, "button.expire"
        )
        driver.find_element(By.ID, "matchers").send_keys('alertname="DiskFull"\nhost=~db.*')
        # The preview lists the firing DiskFull before anything is submitted, not CPUHigh.
        listed = wait_for(
            driver,
            lambda: driver.find_elements(By.CSS_SELECTOR, "#preview li[data-alert]"),
        )
        assert len(listed) == 1
        assert 'alertname="DiskFull"' in listed[0].text and 'host="db1"' in listed[0].text
        assert "1 of 2 firing alerts match." in driver.find_element(By.ID, "preview").text
        driver.find_element(By.NAME, "duration").clear()
        driver.find_element(By.NAME, "duration").send_keys("2h")
        driver.find_element(By.NAME, "comment").send_keys("disk swap tonight")
        screenshot(driver, "silences-add")
        driver.find_element(By.CSS_SELECTOR, "#add-silence button[type=submit]").click()
        done = wait_for(driver, lambda: driver.find_elements(By.ID, "done"))
        assert "added" in done[0].text
        row = driver.find_element(By.XPATH, "//tr[td[contains(., 'disk swap tonight')]]")
        assert "ann (console)" in row.text
        assert 'host=~"db.*"' in row.text
        silence_id = row.get_attribute("data-silence")
        screenshot(driver, "silences")

        # The same alert again: swallowed, nothing reaches the chat.
        answer = daemon.post("/am", am_alert_payload("DiskFull", host="db1")).json()
        assert (answer["silenced"], answer["messages"]) == (1, 0)
        assert daemon.post("/am", am_alert_payload("CPUHigh", host="db1")).json()["messages"] == 1
        wait_until(lambda: len(sim.messages(token=ROBOT)) == 3)
        assert len(disk_full(sim)) == 1

        # Expired on the page (it asks first): the next one arrives.
        row.find_element(By.CSS_SELECTOR, "button.expire").click()
        driver.switch_to.alert.accept()
        done = wait_for(driver, lambda: driver.find_elements(By.ID, "done"))
        assert f"Silence {silence_id} expired." in done[0].text
        ended = driver.find_element(By.CSS_SELECTOR, f"#ended tr[data-silence='{silence_id}']")
        assert "disk swap tonight" in ended.text
        # Who ended it, kept with the silence (its author added it).
        assert ended.find_element(By.CSS_SELECTOR, ".ended-by").text == "ann (console)"
    assert daemon.post("/am", am_alert_payload("DiskFull", host="db1")).json()["messages"] == 1
    wait_until(lambda: len(disk_full(sim)) == 2)
    [line] = [ln for ln in daemon.log().splitlines() if "silence expired" in ln]
    assert silence_id in line and 'by="ann (console)"' in line


def test_an_alert_is_acknowledged_on_the_page_and_listed_with_who_and_when(
    sim: Simulator, daemon: Daemon
) -> None:
    from selenium.webdriver.common.by import By

    daemon.post("/am", am_alert_payload("DiskFull"))
    text = wait_until(lambda: disk_full(sim))[0]["text"]
    short_id = text.rsplit("id `", 1)[1].split("`")[0]
    console = f"{daemon.url}/console"
    with chromium() as driver:
        sign_in(driver, console, TOKEN, name="bob")
        driver.get(f"{console}/silences")
        driver.find_element(By.NAME, "alert").send_keys(short_id)
        driver.find_element(By.CSS_SELECTOR, "#ack button[type=submit]").click()
        done = wait_for(driver, lambda: driver.find_elements(By.ID, "done"))
        assert f"bob (console) acknowledged {short_id}" in done[0].text
        row = driver.find_element(By.CSS_SELECTOR, f"#acks tr[data-ack='{short_id}']")
        assert "bob (console)" in row.text
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row.text)
    again = daemon.post("/am", am_alert_payload("DiskFull")).json()
    assert (again["messages"], again["not_sent_again_yet"]) == (0, 1)
    # An id no firing alert has, or one acknowledged before: refused, saying so.
    session, csrf = console_session(daemon, TOKEN)
    for alert_id, status, says in (
        ("ffffffff", 409, "There is no firing alert with id ffffffff."),
        (short_id, 409, f"{short_id} was already acknowledged by bob (console)."),
        ("", 422, "Give the alert's id."),
    ):
        answer = session.post(
            f"{daemon.url}/console/acks", data={"alert": alert_id, "csrf": csrf}, timeout=10
        )
        assert answer.status_code == status
        assert says in html.unescape(answer.text)


# -- over plain HTTP ------------------------------------------------------------------------------


def runtime_silences(daemon: Daemon) -> list[str]:
    """The ids of the silences the page lists as expirable (added at runtime)."""
    page = requests.get(
        f"{daemon.url}/console/silences",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    return re.findall(r'action="/console/silences/([^/"]+)/expire"', page.text)


FORM = {"matchers": "alertname=DiskFull", "duration": "1h", "comment": "swap"}


def test_a_cross_site_post_with_a_valid_cookie_and_token_is_refused(daemon: Daemon) -> None:
    session, csrf = console_session(daemon, TOKEN)
    elsewhere = f"http://127.0.0.1:{free_port()}"
    answer = session.post(
        f"{daemon.url}/console/silences",
        data={**FORM, "csrf": csrf},
        headers={"Origin": elsewhere},
        timeout=10,
    )
    assert answer.status_code == 403
    assert "did not come from this console" in answer.text
    answer = session.post(
        f"{daemon.url}/console/silences",
        data={**FORM, "csrf": csrf},
        headers={"Sec-Fetch-Site": "cross-site"},
        timeout=10,
    )
    assert answer.status_code == 403
    assert runtime_silences(daemon) == []
    # The same request from the page itself is taken.
    answer = session.post(
        f"{daemon.url}/console/silences",
        data={**FORM, "csrf": csrf},
        headers={"Origin": daemon.url},
        timeout=10,
    )
    assert answer.status_code == 200 and "added" in answer.text
    assert len(runtime_silences(daemon)) == 1


def test_a_post_without_the_csrf_token_is_refused(daemon: Daemon) -> None:
    session, csrf = console_session(daemon, TOKEN)
    for data in (FORM, {**FORM, "csrf": csrf[:-2] + "xx"}):
        answer = session.post(f"{daemon.url}/console/silences", data=data, timeout=10)
        assert answer.status_code == 403
    preview = session.post(
        f"{daemon.url}/console/api/silences/preview", json={"matchers": "a=b"}, timeout=10
    )
    assert preview.status_code == 403
    assert runtime_silences(daemon) == []


def test_the_viewer_sees_no_forms_and_cannot_add_expire_or_ack(daemon: Daemon) -> None:
    added = requests.post(
        f"{daemon.url}/console/silences",
        data=FORM,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert added.status_code == 200
    [silence_id] = runtime_silences(daemon)
    session, csrf = console_session(daemon, VIEWER)
    page = session.get(f"{daemon.url}/console/silences", timeout=10).text
    assert silence_id in page  # the viewer sees the silences...
    assert '<form method="post" action="/console/silences' not in page  # ...and no form
    assert 'id="ack"' not in page and 'id="matchers"' not in page
    for path, data in (
        ("/console/silences", FORM),
        (f"/console/silences/{silence_id}/expire", {}),
        ("/console/acks", {"alert": "abcd"}),
    ):
        answer = session.post(f"{daemon.url}{path}", data={**data, "csrf": csrf}, timeout=10)
        assert answer.status_code == 403, path
        assert "needs the operator's token" in html.unescape(answer.text)
    bearer = requests.post(
        f"{daemon.url}/console/silences",
        data=FORM,
        headers={"Authorization": f"Bearer {VIEWER}"},
        timeout=10,
    )
    assert bearer.status_code == 403
    assert runtime_silences(daemon) == [silence_id]


def test_a_read_only_console_shows_no_forms_and_refuses_the_operator_too(
    sim: Simulator, tmp_path: Path
) -> None:
    daemon = Daemon(daemon_config(sim, read_only=True), directory=tmp_path)
    try:
        session, csrf = console_session(daemon, TOKEN)
        page = session.get(f"{daemon.url}/console/silences", timeout=10).text
        assert 'id="add-silence"' not in page and 'id="ack"' not in page
        answer = session.post(
            f"{daemon.url}/console/silences", data={**FORM, "csrf": csrf}, timeout=10
        )
        assert answer.status_code == 403 and "read-only" in answer.text
        # Looking is not acting: the preview answers.
        preview = session.post(
            f"{daemon.url}/console/api/silences/preview",
            json={"matchers": "alertname=DiskFull"},
            headers={"X-CSRF-Token": csrf},
            timeout=10,
        )
        assert preview.status_code == 200 and preview.json()["count"] == 0
    finally:
        daemon.stop()


def test_bad_matchers_show_the_page_again_with_the_problem_and_add_nothing(
    daemon: Daemon,
) -> None:
    session, csrf = console_session(daemon, TOKEN)
    answer = session.post(
        f"{daemon.url}/console/silences",
        data={
            "matchers": "alertname~DiskFull\njob=~(",
            "duration": "1h",
            "comment": "",
            "csrf": csrf,
        },
        timeout=10,
    )
    assert answer.status_code == 422
    page = html.unescape(answer.text)
    assert '"alertname~DiskFull" is not a matcher' in page
    assert "bad regular expression" in page
    assert "comment: say why" in page
    assert "alertname~DiskFull" in page.split('id="matchers"')[1]  # kept for fixing
    assert runtime_silences(daemon) == []


# -- generated input ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_daemon(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    daemon = Daemon(daemon_config(sim), directory=tmp_path_factory.mktemp("generated"))
    daemon.post("/am", am_alert_payload("DiskFull", host="db1"))
    yield daemon
    daemon.stop()


MATCHER_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.tuples(
            st.sampled_from(["alertname", "host", "1x", "", "a b"]),
            st.sampled_from(["=", "!=", "=~", "!~", "~", "=="]),
            st.text(alphabet='Dk.*+?()[]{},"\\ \n\u00e9\u544a', max_size=10),
        ),
        max_size=4,
    ).map(lambda parts: "\n".join(f"{n}{op}{v}" for n, op, v in parts)),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=MATCHER_TEXT, duration=st.sampled_from(["", "1h", "0s", "-1", "soon", "400d"]))
def test_generated_matchers_never_make_the_preview_or_the_form_fail(
    shared_daemon: Daemon, text: str, duration: str
) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    preview = requests.post(
        f"{shared_daemon.url}/console/api/silences/preview",
        json={"matchers": text},
        headers=bearer,
        timeout=10,
    )
    assert preview.status_code in (200, 422), preview.text
    added = requests.post(
        f"{shared_daemon.url}/console/silences",
        data={"matchers": text, "duration": duration, "comment": "generated"},
        headers=bearer,
        timeout=10,
    )
    assert added.status_code in (200, 422), added.text
    if added.status_code == 200:  # it was a silence: end it, the next example starts clean
        for silence_id in runtime_silences(shared_daemon):
            requests.post(
                f"{shared_daemon.url}/console/silences/{silence_id}/expire",
                headers=bearer,
                timeout=10,
            )
