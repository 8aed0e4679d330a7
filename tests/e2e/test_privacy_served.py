"""No data kept, in the served app (issue 4, item 3): `streamlit run` behind an audit hook, driven by Chromium.

Every file the server process opens for writing while it handles a user's photos is recorded
(tests/e2e/audited_streamlit.py); the working directory, the server's temp dir and the home cache
dirs are compared before and after, and the photos' file names are looked for in every new file and
in the server log. The only place the app may write is the dataset prediction cache
(fer.browse.cache_dir(): probabilities for dataset splits, never images). The same promise for the
app in-process (AppTest, with a camera photo) is in tests/test_privacy.py.

Start-up writes (the model's first load, matplotlib's font cache, torch's empty inductor cache folder,
tempfile's probe file) happen before any photo arrives, so the "before" snapshot is taken once the
app has served its first page and the sample photo.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest
from conftest import encode, make_photo

from fer import browse

from .browser import ROOT, SLOW_MS, VIEWPORT, free_port, launch, open_app, start_streamlit, stop, wait_idle
from .footprint import changed, is_allowed, mentions, phone_sized_png, snapshot, watched_dirs

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served(tmp_path_factory, playwright_instance, data_root, detectable_faces):
    """A user's session on the served app, in two steps: a small JPEG, then a phone-sized PNG added.

    Returns what the server wrote in each step (from its audit log), the paths that appeared or
    changed in the watched folders, the server log and the marker that names the user's files.
    """
    tmp_path = tmp_path_factory.mktemp("privacy")
    marker = f"privacy-{uuid.uuid4().hex[:12]}"
    temp_dir, audit = tmp_path / "server-tmp", tmp_path / "audit.log"
    temp_dir.mkdir()
    allowed = [browse.cache_dir().resolve()]
    small_jpeg = encode(make_photo(detectable_faces[:3])[0])
    big_png = phone_sized_png(detectable_faces[:2])
    assert len(small_jpeg) < 2**20
    port = free_port()
    server = start_streamlit(
        port,
        tmp_path / "server.log",
        env={"TMPDIR": str(temp_dir), "FER_DATA_DIR": str(data_root)},
        command=[
            sys.executable,
            str(ROOT / "tests" / "e2e" / "audited_streamlit.py"),
            str(audit),
            "run",
            "streamlit_app.py",
        ],
    )
    # The browser gets its own home, so that its cache files (~/.cache/dconf...) are not mistaken for the app's.
    browser_home = tmp_path / "browser-home"
    browser_home.mkdir()

    class App:
        url = f"http://127.0.0.1:{port}/"

    def written_since(start: int) -> list[str]:
        lines = audit.read_text().splitlines()[start:]
        return [line for line in lines if not is_allowed(line.split("\t", 1)[1], allowed)]

    steps = {}
    browser = launch(playwright_instance, env={**os.environ, "HOME": str(browser_home)})
    try:
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(SLOW_MS)  # as every other test's page: the first load can be slow
        open_app(page, App)
        # Start-up: the first page, the model and Grad-CAM loaded with the bundled sample photo.
        page.get_by_role("radiogroup", name="Photo source").get_by_text("Try a sample photo").click()
        page.get_by_test_id("stPlotlyChart").first.wait_for()
        wait_idle(page)
        before = snapshot(watched_dirs(temp_dir), allowed)

        start = len(audit.read_text().splitlines())
        page.get_by_role("radiogroup", name="Photo source").get_by_text("Upload photos").click()
        uploader = page.get_by_test_id("stFileUploaderDropzoneInput")
        uploader.set_input_files([{"name": f"{marker}-b.jpg", "mimeType": "image/jpeg", "buffer": small_jpeg}])
        page.get_by_role("heading", name="3 faces found").wait_for()
        page.get_by_test_id("stPlotlyChart").nth(2).wait_for()
        wait_idle(page)
        assert page.get_by_test_id("stImage").filter(has_text="Grad-CAM for").count() == 3
        steps["small"] = written_since(start)

        start = len(audit.read_text().splitlines())
        uploader.set_input_files([{"name": f"{marker}-a.png", "mimeType": "image/png", "buffer": big_png}])
        page.get_by_role("heading", name="2 photos").wait_for()
        page.get_by_test_id("stImageCaption").filter(has_text="-a.png: 2 faces").wait_for()
        wait_idle(page)
        with page.expect_download() as info:
            page.get_by_role("button", name="Download results (CSV)").first.click()
        assert marker in Path(info.value.path()).read_text()  # the user's results did come back
        steps["large"] = written_since(start)
    finally:
        browser.close()
        stop(server)
    after = snapshot(watched_dirs(temp_dir), allowed)
    return {
        "steps": steps,
        "new": changed(before, after),
        "log": (tmp_path / "server.log").read_text(errors="replace"),
        "marker": marker,
    }


def test_served_app_leaves_no_file_behind(served):
    assert served["new"] == [], (
        f"files appeared or changed while the photos were handled (or someone edited the checkout meanwhile): {served['new']}"
    )
    assert mentions(served["new"], served["marker"]) == []
    assert served["marker"] not in served["log"]


def test_served_app_writes_nothing_while_handling_a_small_photo(served):
    assert served["steps"]["small"] == [], served["steps"]["small"]


def test_served_app_writes_nothing_while_handling_a_phone_sized_photo(served):
    # Over 1 MB, Starlette would spool the upload to a temp file (an `open` of the temp folder itself,
    # O_TMPFILE: unnamed, but its bytes on disk); the app raises its spool limit (setup.keep_uploads_in_memory).
    assert served["steps"]["large"] == [], served["steps"]["large"]
