"""The Video and Live pages in Streamlit's AppTest, with clips made from dataset faces and the real model."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from conftest import make_clip, pasted, segments_clip
from streamlit.testing.v1 import AppTest

from app import navigation
from app.session import Key
from fer.config import CLASSES

pytestmark = pytest.mark.slow  # the real model and dataset end to end


@pytest.fixture(autouse=True)
def isolated(isolated_app, monkeypatch, tmp_path):
    """The app in isolation (conftest.isolated_app), with no dataset."""
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path / "no-dataset"))


def open_page(page: str) -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=240)
    at.run()
    at.switch_page(page)
    return rerun(at)


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def texts(elements) -> list[str]:
    """Element texts as a user reads them (the Markdown escapes of file names removed)."""
    return [e.value.replace("\\", "") for e in elements]


def upload(at: AppTest, name: str, data: bytes, mime: str = "video/mp4") -> AppTest:
    at.file_uploader(key=Key.VIDEO_UPLOAD).set_value([(name, data, mime)])
    return rerun(at)


def download_names(at: AppTest) -> list[str]:
    return [e.proto.label for e in at.get("download_button")]


def test_video_page_starts_with_a_prompt():
    at = open_page(navigation.VIDEO)
    assert texts(at.title) == ["Expressions over time in a video"]
    assert any("Upload an MP4, WebM, MOV or AVI video" in t for t in texts(at.info))
    assert not at.error


def test_an_uploaded_video_gives_the_summary_timeline_moment_and_downloads(segment_faces, predictor):
    at = open_page(navigation.VIDEO)
    upload(at, "meeting.mp4", segments_clip(segment_faces, seconds=2))
    assert any("meeting.mp4: MP4/MOV h264, 640x480, 6.0 s" in t for t in texts(at.caption))
    at.button(key=Key.VIDEO_START).click()
    rerun(at)
    assert not at.error
    table = at.dataframe[0].value
    assert list(table["person"]) == [1]
    shares = {name: float(table[name][0]) for name in ("happy", "surprise", "neutral")}
    assert all(25 < share < 42 for share in shares.values()), shares
    assert len(at.get("plotly_chart")) == 1  # one timeline: one person
    assert download_names(at) == ["Download faces over time (CSV)", "Download annotated video (MP4)"]
    # The moment slider shows the frame at that time with its faces: at 5 s the face is neutral.
    at.select_slider(key=Key.VIDEO_MOMENT).set_value(5.0)
    rerun(at)
    assert any(t.startswith("**Person 1**: neutral") for t in texts(at.markdown))
    captions = [c.replace("\\", "") for image in at.image for c in image.captions]
    assert captions == ["meeting.mp4 at 5.0 s"]  # the annotated frame of that moment
    # The CSV download holds every analysed face, as the API gives it.
    report = at.session_state[Key.VIDEO_RESULT][1]
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert len(rows) == sum(len(f.faces) for f in report.frames) >= 28
    assert {r["person"] for r in rows} == {"1"}


def report_csv(report) -> str:
    from fer.video import video_csv

    return video_csv([report])


def test_a_bad_video_gets_its_message_and_the_page_keeps_working(segment_faces):
    at = open_page(navigation.VIDEO)
    upload(at, "notes.mp4", b"Meeting notes, not a video.\n" * 10)
    assert any("notes.mp4 is a text file, not a video" in t for t in texts(at.error))
    upload(at, "sound.mp4", make_clip([], audio=True))
    assert any("holds only sound" in t for t in texts(at.error))
    upload(at, "ok.mp4", segments_clip(segment_faces, seconds=1))
    assert not at.error and at.button(key=Key.VIDEO_START)


def test_live_page_shows_the_camera_settings_and_the_snapshot_fallback():
    at = open_page(navigation.LIVE)
    assert texts(at.title) == ["Live camera"]
    assert at.slider(key=Key.LIVE_SMOOTHING).value == pytest.approx(0.6)
    assert any("Take a photo" in t for t in texts(at.caption))
    assert any("Smoothing 0.60" in t for t in texts(at.caption))
    at.button[0].click()  # Freeze before any frame
    rerun(at)
    assert any("No frame has been processed yet" in t for t in texts(at.warning))


def test_freeze_hands_the_frame_to_predict_and_explain(segment_faces):
    at = open_page(navigation.LIVE)
    session = at.session_state[Key.LIVE_SESSION]
    frame = pasted([(segment_faces["happy"], 240, 150)])
    drawn = session.process(frame)
    assert drawn.shape == frame.shape and not np.array_equal(drawn, frame)  # a box was drawn
    assert session.result.faces[0].label == "happy"
    next(b for b in at.button if b.label == "Freeze").click()
    rerun(at)
    assert any(t.startswith("**Person 1**: happy") for t in texts(at.markdown))
    faces = at.session_state[Key.FACES_TO_EXPLAIN]
    assert len(faces) == 1 and faces[0].face.shape == (48, 48)
    at.switch_page(navigation.PREDICT)
    rerun(at)
    assert "1 face found" in texts(at.subheader)
    assert any(t.startswith("Face 1: happy") for t in texts(at.subheader))
    assert CLASSES  # the four classes the labels come from


def test_an_uploaded_video_never_touches_the_disk(monkeypatch, tmp_path, segment_faces):
    """The upload, its analysis, a moment's frame, the annotated MP4 and a frozen camera frame stay in memory:
    no file is opened for writing (Python's audit hook) and no file appears in the watched folders (which
    would also show FFmpeg's own writes)."""
    import tempfile

    from e2e.footprint import changed, is_allowed, snapshot, watched_dirs
    from test_privacy import WriteRecorder

    from fer import browse

    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_dir))
    monkeypatch.setenv("TMPDIR", str(temp_dir))
    allowed = [browse.cache_dir().resolve()]
    recorder = WriteRecorder.get()
    at = open_page(navigation.VIDEO)
    clip = segments_clip(segment_faces, seconds=1)
    before = snapshot(watched_dirs(temp_dir), allowed)
    recorder.events.clear()
    recorder.recording = True
    try:
        upload(at, "private-video.mp4", clip)
        at.button(key=Key.VIDEO_START).click()
        rerun(at)
        at.select_slider(key=Key.VIDEO_MOMENT).set_value(at.session_state[Key.VIDEO_RESULT][1].frames[-1].time)
        rerun(at)
        assert download_names(at) == ["Download faces over time (CSV)", "Download annotated video (MP4)"]
        # A camera frame through the live view's processing, then frozen and handed to Predict.
        at.switch_page(navigation.LIVE)
        rerun(at)
        at.session_state[Key.LIVE_SESSION].process(pasted([(segment_faces["happy"], 240, 150)]))
        next(b for b in at.button if b.label == "Freeze").click()
        rerun(at)
        assert at.session_state[Key.FACES_TO_EXPLAIN]
    finally:
        recorder.recording = False
    writes = [e for e in recorder.events if not is_allowed(e[1], allowed)]
    assert writes == [], f"the app wrote to disk while handling a video: {writes}"
    assert changed(before, snapshot(watched_dirs(temp_dir), allowed)) == []
