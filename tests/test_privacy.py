"""No data kept (issue 4, item 3): a user's photo stays in memory, never on disk or in a log.

The app in-process (AppTest) with uploads, a camera photo, another CAM method and the Explain page,
under an audit hook that records every file opened for writing. The same promise for the served app
(`streamlit run`, a real upload over HTTP from Chromium) is in tests/e2e/test_privacy_served.py.
Both also compare the working directory, the temp dir and the home cache dirs (~/.cache, ~/.streamlit)
before and after, and look for the photo's file name in every new file (and in the server's log). The only
place the app may write is the documented dataset prediction cache (fer.browse.cache_dir(), which holds
probabilities for dataset splits, never images).

Start-up writes (the model's first load, matplotlib's font cache, torch's empty inductor cache folder,
tempfile's probe file) happen before any photo arrives and are not about a user, so the "before"
snapshots are taken once the app has served its first page.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import uuid

import pytest
from conftest import encode, make_photo
from e2e.footprint import WRITE_FLAGS, changed, is_allowed, mentions, phone_sized_png, snapshot, watched_dirs

from app import navigation
from app.session import Key
from fer import browse

pytestmark = pytest.mark.slow  # the real model and dataset end to end (AppTest, training, calibration)


@pytest.fixture(scope="module")
def big_png(detectable_faces) -> bytes:
    return phone_sized_png(detectable_faces[:2])


class WriteRecorder:
    """A process-wide audit hook (hooks cannot be removed) that records file writes while `recording`."""

    _instance: WriteRecorder | None = None

    def __init__(self):
        self.recording = False
        self.events: list[tuple[str, str]] = []
        self.thread_ids: set[int] = set()
        sys.addaudithook(self._hook)

    @classmethod
    def get(cls) -> WriteRecorder:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _hook(self, event: str, args) -> None:
        if not self.recording:
            return
        if event == "open":
            path, mode, flags = args
            if path is None or isinstance(path, int):
                return
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (flags or 0) & WRITE_FLAGS:
                self.events.append(("open", os.path.abspath(os.fsdecode(os.fspath(path)))))
        elif event in ("tempfile.mkstemp", "tempfile.mkdtemp", "os.mkdir", "os.remove"):
            self.events.append((event, os.path.abspath(os.fsdecode(os.fspath(args[0])))))
        elif event == "os.rename":
            self.events.append((event, os.path.abspath(os.fsdecode(os.fspath(args[1])))))


def test_app_keeps_uploads_and_camera_photos_in_memory(
    monkeypatch, tmp_path, big_png, photo_with_faces, detectable_faces
):
    import torch
    from streamlit.testing.v1 import AppTest

    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_dir))
    monkeypatch.setenv("TMPDIR", str(temp_dir))
    monkeypatch.setenv("FER_NO_WARMUP", "1")
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path / "no-dataset"))
    allowed = [browse.cache_dir().resolve()]
    threads = torch.get_num_threads()
    recorder = WriteRecorder.get()
    marker = f"privacy-{uuid.uuid4().hex[:12]}"

    at = AppTest.from_file("../streamlit_app.py", default_timeout=240)
    at.run()  # start-up: the model and the first page
    at.radio(key=Key.PREDICT_SOURCE).set_value("Try a sample photo")
    at.run()
    assert not at.exception
    before = snapshot(watched_dirs(temp_dir), allowed)
    try:
        recorder.events.clear()
        recorder.recording = True
        at.radio(key=Key.PREDICT_SOURCE).set_value("Upload photos")
        at.run()
        at.file_uploader(key=Key.UPLOADS).set_value(
            [
                (f"{marker}-a.png", big_png, "image/png"),
                (f"{marker}-b.jpg", encode(photo_with_faces[0]), "image/jpeg"),
            ]
        )
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        assert "2 photos" in [s.value for s in at.subheader]
        at.selectbox(key=Key.CAM_METHOD).set_value("Score-CAM")
        at.run()
        at.radio(key=Key.PREDICT_SOURCE).set_value("Take a photo")
        at.run()
        shot, _ = make_photo(detectable_faces[:1], size=(640, 480))
        at.camera_input(key=Key.CAMERA).set_value(("camera.jpg", encode(shot), "image/jpeg"))
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        assert "1 face found" in [s.value for s in at.subheader]
        at.switch_page(navigation.EXPLAIN)
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        assert "Faithfulness compared" in [s.value for s in at.subheader]
    finally:
        recorder.recording = False
        torch.set_num_threads(threads)

    writes = [e for e in recorder.events if not is_allowed(e[1], allowed)]
    assert writes == [], f"the app wrote to disk while handling a user's photos: {writes}"
    new = changed(before, snapshot(watched_dirs(temp_dir), allowed))
    assert new == [], (
        f"files appeared or changed while the photos were handled (or someone edited the checkout meanwhile): {new}"
    )
    assert mentions(new, marker) == []


def test_the_write_recorder_sees_writes(tmp_path):
    # Guards the in-process check above: the hook records a file written (from any thread), and the
    # anonymous temp file a SpooledTemporaryFile rolls over to (what a web server does with big bodies).
    recorder = WriteRecorder.get()
    recorder.events.clear()
    recorder.recording = True
    try:
        (tmp_path / "a.bin").write_bytes(b"x")
        worker = threading.Thread(target=lambda: (tmp_path / "b.bin").write_bytes(b"y"))
        worker.start()
        worker.join()
        with tempfile.SpooledTemporaryFile(max_size=10, dir=tmp_path) as spooled:
            spooled.write(bytes(100))
    finally:
        recorder.recording = False
    paths = [path for _, path in recorder.events]
    assert str(tmp_path / "a.bin") in paths and str(tmp_path / "b.bin") in paths
    others = [p for p in paths if p not in (str(tmp_path / "a.bin"), str(tmp_path / "b.bin"))]
    assert any(p == str(tmp_path) or p.startswith(str(tmp_path) + os.sep) for p in others), recorder.events
