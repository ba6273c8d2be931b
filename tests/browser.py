"""Headless Chromium for the console's tests, driven with selenium.

The browser is Debian's (`chromium`, `chromium-driver`, installed by .ci/run): nothing is
downloaded, and selenium's own driver manager is not asked (the driver's path is given). The
flags keep Chromium off the network it would otherwise call at start (updates, sync, field
trials): this machine reaches only package registries. Screenshots go to
test-artefacts/screenshots/ (kept by CI as the run's artefacts; not in git).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.harness import wait_until

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-artefacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PHONE = (390, 844)
DESKTOP = (1366, 900)
_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
)


def browser_available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


def need_browser() -> None:
    """Skip without Chromium on a laptop; in CI (.ci/run installs it) a missing browser fails."""
    if browser_available():
        return
    if os.environ.get("CI"):
        pytest.fail("chromium and chromium-driver are not installed (.ci/run installs them)")
    pytest.skip("no chromium: apt-get install chromium chromium-driver")


@contextmanager
def chromium(size: tuple[int, int] = DESKTOP) -> Iterator[Any]:
    need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_AVOID_STATS", "true")  # selenium's usage statistics: off
    profile = tempfile.mkdtemp(prefix="chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*_FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(
    driver: Any, name: str, sizes: tuple[tuple[int, int], ...] = (PHONE, DESKTOP)
) -> list[Path]:
    """The page now, at phone and desktop widths (the whole page's height), as PNG artefacts."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    saved = []
    original = driver.get_window_size()
    for width, height in sizes:
        driver.set_window_size(width, height)
        full = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, max(height, min(int(full), 4000)))
        path = SCREENSHOTS / f"{name}-{width}.png"
        driver.save_screenshot(str(path))
        saved.append(path)
    driver.set_window_size(original["width"], original["height"])
    return saved


def sign_in(driver: Any, console_url: str, token: str, name: str = "") -> None:
    """Sign in through the form, as a person does."""
    from selenium.webdriver.common.by import By

    driver.get(console_url + "/login")
    driver.find_element(By.NAME, "token").send_keys(token)
    if name:
        driver.find_element(By.NAME, "name").send_keys(name)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_until(lambda: "/login" not in driver.current_url, timeout=10)


def wait_for(driver: Any, check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """`check()`'s first truthy value, asked until `timeout` (the page updates by itself)."""
    from selenium.common.exceptions import StaleElementReferenceException

    def safe() -> Any:
        try:
            return check()
        except StaleElementReferenceException:
            return None

    return wait_until(safe, timeout=timeout)
