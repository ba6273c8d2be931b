"""The console's frame in a real browser (headless Chromium): signing in, the Overview
refreshing by itself as a queue builds, and a cross-site form post refused even though the
browser holds a session. Screenshots of the sign-in form and the Overview are kept."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import chromium, need_browser, screenshot, sign_in, wait_for
from tests.harness import Daemon, Simulator, am_alert_payload, free_port
from tests.test_e2e_console import ROBOT, SPEC, TOKEN, console_config

pytestmark = pytest.mark.xdist_group("browser")


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    need_browser()
    sim = Simulator(spec=SPEC)
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def daemon(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    daemon = Daemon(console_config(sim), directory=tmp_path_factory.mktemp("console-browser"))
    yield daemon
    daemon.stop()


def test_signing_in_with_a_wrong_token_says_so_and_the_right_one_opens_the_overview(
    daemon: Daemon,
) -> None:
    from selenium.webdriver.common.by import By

    with chromium() as driver:
        driver.get(f"{daemon.url}/console/")
        assert "/console/login" in driver.current_url
        screenshot(driver, "console-login")
        driver.find_element(By.NAME, "token").send_keys("not-the-right-token")
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        error = wait_for(driver, lambda: driver.find_elements(By.CSS_SELECTOR, ".error"))
        assert error[0].text == "令牌无效。"
        sign_in(driver, f"{daemon.url}/console", TOKEN, name="ann")
        assert driver.find_element(By.ID, "readiness").text == "就绪"
        assert driver.find_element(By.CSS_SELECTOR, 'tr[data-target="ops"]')
        screenshot(driver, "console-overview")


def test_the_overview_shows_a_queue_building_without_a_reload(
    daemon: Daemon, sim: Simulator
) -> None:
    from selenium.webdriver.common.by import By

    with chromium() as driver:
        sign_in(driver, f"{daemon.url}/console", TOKEN)
        cell = 'tr[data-target="ops"] .pending'
        assert driver.find_element(By.CSS_SELECTOR, cell).text == "0"
        marker = driver.execute_script("window.notReloaded = true; return 1")
        assert marker == 1
        # DingTalk answers 500 for a while: the alert waits in the queue.
        fault = {"path": "/robot/send", "token": ROBOT, "count": 50, "action": {"http_status": 500}}
        sim.control("faults", fault)
        try:
            assert daemon.post("/am", am_alert_payload("QueueBuilds")).status_code == 200
            wait_for(
                driver, lambda: driver.find_element(By.CSS_SELECTOR, cell).text == "1", timeout=15
            )
            assert driver.execute_script("return window.notReloaded") is True
            screenshot(driver, "console-overview-busy")
        finally:
            sim.control("reset")
        wait_for(driver, lambda: driver.find_element(By.CSS_SELECTOR, cell).text == "0", 30)


class _AttackerPage(http.server.BaseHTTPRequestHandler):
    """A page on another origin whose form posts to the console as soon as it loads."""

    target = ""

    def do_GET(self) -> None:
        page = (
            "<!doctype html><html><body>"
            f'<form id="f" method="post" action="{self.target}">'
            '<input name="csrf" value="guessed"></form>'
            "<script>document.getElementById('f').submit()</script></body></html>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args: object) -> None:
        pass


def test_a_form_on_another_origin_cannot_act_with_the_browsers_session(
    daemon: Daemon, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    port = free_port()
    handler = type("Attacker", (_AttackerPage,), {"target": f"{daemon.url}/console/logout"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with chromium() as driver:
            sign_in(driver, f"{daemon.url}/console", TOKEN)
            driver.get(f"http://127.0.0.1:{port}/")
            # Same site (127.0.0.1), another origin (port): the browser sends the cookie, and
            # the console refuses the post all the same.
            wait_for(driver, lambda: "/console/logout" in driver.current_url, timeout=15)
            body = driver.find_element(By.TAG_NAME, "body").text
            assert "403" in body
            driver.get(f"{daemon.url}/console/")
            assert "/login" not in driver.current_url  # still signed in: nothing was done
    finally:
        server.shutdown()
        server.server_close()
