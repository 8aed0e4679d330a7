"""Fixtures for the browser tests: one `streamlit run` server and one Debian Chromium per test session.

Each test gets a fresh browser context (a new app session). Never `playwright install`: the browser is
the system's /usr/bin/chromium (`apt-get install chromium`, see .ci/run).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .browser import CHROMIUM, SCREENSHOTS, SLOW_MS, VIEWPORT, free_port, launch, start_streamlit, stop


class Server:
    def __init__(self, url: str, process, log_path: Path):
        self.url, self.process, self.log_path = url, process, log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def server(data_root, tmp_path_factory):
    """The app served on a free localhost port with the real dataset and shipped weights."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("streamlit") / "server.log"
    process = start_streamlit(port, log_path, env={"FER_DATA_DIR": str(data_root)})
    try:
        yield Server(f"http://127.0.0.1:{port}/", process, log_path)
    finally:
        stop(process)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, SCREENSHOTS / "server.log")


@pytest.fixture(scope="session")
def playwright_instance():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (see .ci/run)")
    from playwright.sync_api import expect

    expect.set_options(timeout=SLOW_MS)
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance):
    browser = launch(playwright_instance)
    yield browser
    browser.close()


@pytest.fixture()
def page(browser, server):
    """A new browser context (a new app session) on the app's home page."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(SLOW_MS)
    yield page
    context.close()
