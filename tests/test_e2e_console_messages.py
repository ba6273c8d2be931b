"""The console's Messages page against the real daemon and the simulator: a message DingTalk
refused is a dead letter listed with DingTalk's errcode and errmsg; its page shows the exact
body sent, drawn as DingTalk shows it, and the log lines of its id; "Retry now" on the page
sends it again and it arrives. Search, purge, and who may act, over plain HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from tests.browser import chromium, need_browser, screenshot, sign_in, wait_for
from tests.harness import Daemon, Simulator, am_alert_payload, console_session, wait_until
from tests.test_e2e_console import ROBOT, SPEC, TOKEN, VIEWER, console_config

pytestmark = pytest.mark.xdist_group("browser")
REFUSAL = {"errcode": 310000, "errmsg": "keywords not in content"}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    sim = Simulator(spec=SPEC)
    yield sim
    sim.stop()


@pytest.fixture
def daemon(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    sim.control("reset")
    daemon = Daemon(console_config(sim), directory=tmp_path_factory.mktemp("messages"))
    yield daemon
    daemon.stop()


def dead_letter(daemon: Daemon, sim: Simulator, alertname: str) -> str:
    """Post an alert DingTalk refuses for good; the id of the dead letter it becomes."""
    fault = {"path": "/robot/send", "token": ROBOT, "count": 1, "action": REFUSAL}
    sim.control("faults", fault)
    assert daemon.post("/am", am_alert_payload(alertname)).status_code == 200
    bearer = {"Authorization": f"Bearer {TOKEN}"}

    def dead() -> int:
        overview = requests.get(f"{daemon.url}/console/api/overview", headers=bearer, timeout=5)
        return int(overview.json()["dead_letters"])

    wait_until(dead, timeout=15)
    page = requests.get(
        f"{daemon.url}/console/messages?outcome=dead", headers=bearer, timeout=5
    ).text
    found = re.search(r'<tr data-id="([^"]+)" data-status="dead">', page)
    assert found, page
    return found.group(1)


def test_a_dead_letter_is_retried_from_its_page_and_arrives(daemon: Daemon, sim: Simulator) -> None:
    need_browser()
    from selenium.webdriver.common.by import By

    id_ = dead_letter(daemon, sim, "DiskFullOnDb")
    with chromium() as driver:
        sign_in(driver, f"{daemon.url}/console", TOKEN, name="ann")
        driver.get(f"{daemon.url}/console/messages?outcome=dead")
        row = driver.find_element(By.CSS_SELECTOR, f'#queued tr[data-id="{id_}"]')
        assert "310000" in row.text and "keywords not in content" in row.text
        screenshot(driver, "messages")
        row.find_element(By.CSS_SELECTOR, "a").click()
        wait_for(driver, lambda: id_ in driver.current_url)
        attempt = driver.find_element(By.CSS_SELECTOR, '.attempt[data-outcome="dead"]')
        assert "310000" in attempt.text
        # The exact body, and the bubble DingTalk would draw from it.
        assert "DiskFullOnDb" in attempt.find_element(By.CSS_SELECTOR, ".chat").text
        body = attempt.find_element(By.CSS_SELECTOR, "details pre").get_attribute("textContent")
        assert '"msgtype": "markdown"' in body and ROBOT not in body
        assert "dead letter" in driver.find_element(By.ID, "log").get_attribute("textContent")
        screenshot(driver, "message")
        before = len(sim.messages(token=ROBOT))
        driver.find_element(By.ID, "retry").click()
        wait_for(driver, lambda: "done=retried" in driver.current_url)
        arrived = sim.wait_messages(before + 1, token=ROBOT)
        assert "DiskFullOnDb" in arrived[-1]["text"]
        driver.get(f"{daemon.url}/console/messages/{id_}")
        wait_for(
            driver,
            lambda: driver.find_elements(By.CSS_SELECTOR, '.attempt[data-outcome="delivered"]'),
        )


def test_the_list_is_searched_and_a_dead_letter_purged(daemon: Daemon, sim: Simulator) -> None:
    id_ = dead_letter(daemon, sim, "PurgeMe")
    assert daemon.post("/am", am_alert_payload("DeliveredOne")).status_code == 200
    session, csrf = console_session(daemon, TOKEN)
    url = f"{daemon.url}/console/messages"

    def sent_ids(query: str) -> list[str]:
        page = session.get(f"{url}?q={query}", timeout=5).text
        return re.findall(r'<tr data-id="([^"]+)" data-outcome="delivered">', page)

    assert wait_until(lambda: sent_ids("DeliveredOne"), timeout=15)
    assert sent_ids("nothing-like-this") == []
    assert id_ in session.get(f"{url}?q=keywords+not+in", timeout=5).text
    purged = session.post(
        f"{url}/{id_}/purge", data={"csrf": csrf}, allow_redirects=False, timeout=5
    )
    assert purged.status_code == 303
    assert f'data-id="{id_}" data-status' not in session.get(f"{url}?outcome=dead", timeout=5).text
    # Gone from the outbox; a second purge or retry says so.
    again = session.post(f"{url}/{id_}/retry", data={"csrf": csrf}, timeout=5)
    assert again.status_code == 409


def test_a_viewer_sees_the_messages_but_cannot_retry_or_purge(
    daemon: Daemon, sim: Simulator
) -> None:
    id_ = dead_letter(daemon, sim, "ViewerSees")
    viewer, csrf = console_session(daemon, VIEWER)
    page = viewer.get(f"{daemon.url}/console/messages/{id_}", timeout=5)
    assert page.status_code == 200 and 'id="retry"' not in page.text
    for action in ("retry", "purge"):
        answer = viewer.post(
            f"{daemon.url}/console/messages/{id_}/{action}", data={"csrf": csrf}, timeout=5
        )
        assert answer.status_code == 403, action
    bearer = {"Authorization": f"Bearer {VIEWER}"}
    answer = requests.post(f"{daemon.url}/console/messages/{id_}/retry", headers=bearer, timeout=5)
    assert answer.status_code == 403


def test_an_unknown_message_is_404(daemon: Daemon) -> None:
    session, _ = console_session(daemon, TOKEN)
    assert session.get(f"{daemon.url}/console/messages/no-such-id", timeout=5).status_code == 404
