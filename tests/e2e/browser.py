"""Helpers for driving the real app in a real browser: `streamlit run` on a free localhost port, driven by Playwright in Debian Chromium.

One server and one browser per test session; each test gets a fresh browser context (a new app
session). Screenshots go to artifacts/screenshots/ (gitignored). Never `playwright install`: the
browser is the system's /usr/bin/chromium (`apt-get install chromium`, see .ci/run).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("FER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Streamlit scrolls inside its own container, so a screenshot shows only the viewport: make it tall.
VIEWPORT = {"width": 1400, "height": 2400}
SLOW_MS = 240_000  # a first Grad-CAM or split prediction on a busy 2-core CPU takes long: wait, never assert speed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_streamlit(
    port: int, log_path: Path, env: dict | None = None, command: list[str] | None = None, niceness: int = 19
):
    """`streamlit run streamlit_app.py` at low CPU priority (`niceness`); returns the Popen once
    /_stcore/health answers."""
    command = command or [sys.executable, "-m", "streamlit", "run", "streamlit_app.py"]
    args = [
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    log = open(log_path, "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(
        ["nice", "-n", str(niceness), *command, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    process.log_file = log
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.close()
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response,
        ):
            if response.read().strip() == b"ok":
                return process
        time.sleep(0.5)
    stop(process)
    raise RuntimeError(f"streamlit did not answer on port {port} within 120 s:\n{log_path.read_text()[-3000:]}")


def stop(process) -> None:
    """Stop a server this test session started (only that process)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
    process.log_file.close()


def uncaught_errors(log_text: str) -> list[str]:
    """Uncaught exceptions the server logged (Streamlit hides them from users, so check its log)."""
    return re.findall(r"Uncaught app execution.*?\n(?:\S.*\n)?(?:(?: .*)?\n)*?(\w+(?:Error|Exception).*)", log_text)


def launch(playwright, extra_args=(), env: dict | None = None):
    """Debian's Chromium, headless, with no network chatter of its own; `env`: its whole environment."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args], env=env)


def fake_camera_page(playwright, server, clip):
    """(browser, page): a Chromium whose camera plays `clip` (a .y4m), on the app's home page. Close the browser."""
    fake_camera = [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={clip}",
    ]
    browser = launch(playwright, fake_camera)
    context = browser.new_context(viewport=VIEWPORT, permissions=["camera"])
    page = context.new_page()
    page.set_default_timeout(SLOW_MS)
    open_app(page, server)
    return browser, page


def start_live_camera(page):
    """On the Live page, press Start; returns the <video> the server sends back (boxes drawn), once the
    page's frame-rate metric turns from "-" to a number (the model's first load can take a while)."""
    go_to(page, "Live camera", "Live camera")
    frame = page.frame_locator('iframe[title*="webrtc_streamer"]')
    frame.get_by_role("button", name="Start").click()
    shown = frame.locator("video")
    shown.wait_for()
    page.get_by_test_id("stMetricValue").filter(has_text=re.compile(r"^\d")).first.wait_for(timeout=SLOW_MS)
    return shown


# -- helpers ------------------------------------------------------------------------------------------


def open_app(page, server) -> None:
    page.goto(server.url)
    page.get_by_role("heading", name="Predict emotions in a photo").wait_for()


def go_to(page, link: str, heading: str) -> None:
    """Follow a sidebar navigation link (same session) and wait for the page's main heading."""
    page.get_by_test_id("stSidebar").get_by_role("link", name=link, exact=True).click()
    page.get_by_role("heading", name=heading, level=1).wait_for()


def wait_idle(page, timeout_ms: int = SLOW_MS) -> None:
    """Wait until the app's script run is over (and stays over for a moment): call after waiting for an element."""
    idle = """() => document.querySelector('[data-testid="stApp"]')?.dataset.testScriptState === 'notRunning'
                 && !document.querySelector('[data-stale="true"]')"""
    for _ in range(2):  # a rerun that a click has just asked for may not have started yet
        page.wait_for_function(idle, timeout=timeout_ms)
        page.wait_for_timeout(500)
    page.wait_for_function(idle, timeout=timeout_ms)


def assert_no_exception(page, server=None) -> None:
    exceptions = page.get_by_test_id("stException")
    assert exceptions.count() == 0, exceptions.all_inner_texts()
    if server is not None:
        assert uncaught_errors(server.log()) == [], server.log()[-4000:]


def texts(locator) -> list[str]:
    return [t.strip() for t in locator.all_inner_texts()]


def image_of(page, locator) -> Image.Image:
    """The picture an <img> shows, fetched from the app's media endpoint as the browser did."""
    src = locator.get_attribute("src")
    if src.startswith("data:"):
        import base64

        return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    response = page.request.get(urljoin(page.url, src))
    assert response.ok, (src, response.status)
    return Image.open(io.BytesIO(response.body()))


def content_bottom(page) -> int:
    """Where the page's content ends (in pixels from the top), however far Streamlit's container scrolls."""
    return page.evaluate(
        """() => Math.ceil([...document.querySelectorAll('[data-testid="stMainBlockContainer"] > div > *')]
                 .reduce((m, e) => Math.max(m, e.getBoundingClientRect().bottom), 0))"""
    )


def snap(page, name: str, also: Path | None = None, clip_to=None) -> Path:
    """Save a screenshot of the whole app page (or of `clip_to`: {x, y, width, height}) to artifacts/screenshots/.

    Streamlit scrolls inside its own container, so a page taller than the viewport is shot by making
    the viewport as tall as the content for a moment. `also`: a second place for the same picture.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if clip_to is None:
        size = page.viewport_size
        height = max(600, content_bottom(page) + 48)
        if height > size["height"]:
            page.set_viewport_size({"width": size["width"], "height": height})
            page.wait_for_timeout(800)  # charts redraw for the new size
            height = min(height, max(600, content_bottom(page) + 48))
        page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": size["width"], "height": height})
        page.set_viewport_size(size)
    else:
        page.screenshot(path=str(path), clip=clip_to)
    if also is not None:
        also.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, also)
    return path
