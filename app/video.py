"""What the Video and Live pages share with the model: analysis runs, their results in the session
(app.session), the timeline charts, and the camera stream's state. Pages only lay these out.

Nothing here writes a frame or an upload to disk: uploads stay in the session's memory, the annotated
MP4 is written into memory, and camera frames live only in the stream's callback and `LiveSession`.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from app import session, state
from app.session import FaceToExplain, Key
from fer.config import CLASS_COLORS, CLASSES, environment
from fer.errors import FerError

MAX_TIMELINES = 6  # people with a timeline chart; every person is in the table and the CSV
LIVE_WINDOW_S = 30.0  # seconds of the largest face's rolling timeline


# -- video files --------------------------------------------------------------------------------------


def upload_limit_mb() -> int:
    """The server's upload cap (server.maxUploadSize), which the page states."""
    return int(st.get_option("server.maxUploadSize"))


def analysis_key(data: bytes, fps: float, tta: bool) -> tuple:
    return (state.weights_stamp(), state.digest(data), float(fps), bool(tta))


def stored(key: tuple):
    """(VideoReport, annotated MP4 bytes) of an analysis done in this session for `key`, else None."""
    return session.video_result(key)


def forget() -> None:
    session.forget_video()


def start(key: tuple) -> None:
    """The Analyse button's callback: analyse the video of `key` (on this and later reruns, until done)."""
    session.start_video(key)


def cancel(key: tuple) -> None:
    """The Cancel button's callback (its click reruns the page, which stops the running analysis)."""
    session.cancel_video(key)


def started(key: tuple) -> bool:
    """Whether the analysis of `key` was asked for (and not cancelled)."""
    return session.video_started(key)


def cancelled(key: tuple) -> bool:
    return session.video_cancelled(key)


def info(data: bytes, name: str):
    """The video's header facts (fer.video.VideoInfo), or FerError saying why it cannot be read."""
    from fer.video import video_info

    return video_info(data, name)


def analyse(data: bytes, name: str, fps: float, tta: bool, show_progress) -> tuple:
    """Run fer.video.process_video on the upload (in memory), the annotated MP4 written into memory.

    `show_progress(fraction, text)` is called after every analysed frame, with the time left; a click on
    the page's Cancel button reruns the page, which stops this run at that call. The result is kept in
    the session (one video at a time)."""
    from fer.video import process_video

    started = time.monotonic()

    def progress(done: float, total: float | None) -> None:
        if not total:
            show_progress(None, f"Analysed {done:.0f} s of video")
            return
        elapsed = time.monotonic() - started
        fraction = min(1.0, max(done, 0.0) / total)
        left = elapsed * (1 - fraction) / fraction if fraction > 0.02 else None
        left_text = f", about {format_seconds(left)} left" if left is not None else ""
        show_progress(fraction, f"Analysed {done:.0f} of {total:.0f} s of video{left_text}")

    annotated = io.BytesIO()
    report = process_video(data, state.predictor(tta), fps=fps, name=name, annotated=annotated, progress=progress)
    movie = annotated.getvalue() if report.frames else b""
    session.keep_video_result(analysis_key(data, fps, tta), report, movie)
    return report, movie


def format_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def summary_table(report):
    """One row per person: when seen, frames, the share of frames with each expression (percent)."""
    import pandas as pd

    rows = []
    for person in report.people:
        row = {
            "person": person.person,
            "first seen (s)": round(person.first, 1),
            "last seen (s)": round(person.last, 1),
            "frames": person.frames,
            "most often": person.main_label,
        }
        row.update({name: 100 * float(share) for name, share in zip(CLASSES, person.shares, strict=True)})
        rows.append(row)
    return pd.DataFrame(rows, columns=["person", "first seen (s)", "last seen (s)", "frames", "most often", *CLASSES])


def timeline_people(report) -> list[int]:
    """People with a timeline chart: those seen in the most frames, at most MAX_TIMELINES, by number."""
    chosen = sorted(report.people, key=lambda p: -p.frames)[:MAX_TIMELINES]
    return sorted(p.person for p in chosen)


def person_series(report, person: int) -> tuple[np.ndarray, np.ndarray]:
    """(times, probabilities (N, 4)) of one person's sampled frames."""
    times, probs = [], []
    for frame in report.frames:
        for face in frame.faces:
            if face.person == person:
                times.append(frame.time)
                probs.append(face.probs)
    return np.asarray(times), np.asarray(probs).reshape(-1, len(CLASSES))


def timeline_figure(times, probs, title: str, height: int = 260, window: tuple[float, float] | None = None):
    """The four probabilities over time, one line per class in its colour (points are clickable)."""
    from app.plots import FONT, graph_objects

    go = graph_objects()

    figure = go.Figure()
    for k, name in enumerate(CLASSES):
        figure.add_trace(
            go.Scatter(
                x=times,
                y=probs[:, k] if len(probs) else [],
                mode="lines+markers",
                marker={"size": 5},
                line={"color": CLASS_COLORS[name], "width": 2},
                name=name,
                hovertemplate=f"{name} %{{y:.0%}} at %{{x:.1f}} s<extra></extra>",
            )
        )
    figure.update_layout(
        title={"text": title, "font": {"size": 15}},
        height=height,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        font={"family": FONT},
        yaxis={"range": [0, 1], "tickformat": ".0%", "title": None},
        xaxis={"title": "seconds", "range": list(window) if window else None},
        legend={"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"},
        hovermode="x unified",
        clickmode="event+select",
    )
    return figure


def nearest_frame(report, time: float):
    return min(report.frames, key=lambda f: abs(f.time - time))


def clicked_time(event) -> float | None:
    """The time of the point clicked on a timeline chart (st.plotly_chart's selection), if any."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    return float(points[0]["x"]) if points else None


def follow_click(report, person: int, event) -> None:
    """A new click on a person's timeline moves the moment slider (Key.VIDEO_MOMENT) to that frame; a chart
    keeps its selection across reruns, so the same click again changes nothing."""
    clicked = clicked_time(event)
    if clicked is not None and session.timeline_click(person) != clicked:
        session.note_timeline_click(person, clicked)
        session.set_widget(Key.VIDEO_MOMENT, nearest_frame(report, clicked).time)


def annotated_frame(data: bytes, name: str, frame) -> bytes:
    """The video's frame at that sampled moment with its faces boxed and labelled, as JPEG."""
    return state.video_frame(data, name, frame)


def csv_bytes(report) -> bytes:
    from fer.video import video_csv

    return video_csv([report]).encode("utf-8-sig")


# -- live camera --------------------------------------------------------------------------------------


def ice_servers() -> list[dict]:
    """STUN/TURN servers for the camera stream (FER_ICE_SERVERS, JSON); none by default: the browser and the
    server then connect directly, which works on one machine and on a local network."""
    text = environment().ice_servers
    try:
        servers = json.loads(text)
    except json.JSONDecodeError as error:
        raise FerError(
            f'FER_ICE_SERVERS is not valid JSON ({error}); give a list like [{{"urls": "stun:..."}}].'
        ) from error
    if not isinstance(servers, list) or not all(isinstance(s, dict) and "urls" in s for s in servers):
        raise FerError('FER_ICE_SERVERS must be a JSON list of servers, each with "urls".')
    return servers


def stream_served() -> bool:
    """Whether this run comes from a served app (`streamlit run`), whose session streamlit-webrtc needs to
    connect the camera; Streamlit's in-process AppTest has none (its runtime is a stand-in)."""
    from streamlit_webrtc.session_info import get_this_session_info

    try:
        return get_this_session_info() is not None
    except AttributeError:
        return False


@dataclass
class LiveSession:
    """One browser's camera stream: the analyser (tracking, smoothing) and what the page shows of it.

    The stream's callback runs on streamlit-webrtc's worker thread; the page reads under `lock`."""

    smoothing: float = 0.6
    lock: threading.Lock = field(default_factory=threading.Lock)
    analyser: object = None
    image: np.ndarray | None = None  # the latest processed frame (memory only), for Freeze
    result: object = None  # its fer.video.FrameResult
    delays: deque = field(default_factory=lambda: deque(maxlen=30))  # seconds per processed frame
    stamps: deque = field(default_factory=lambda: deque(maxlen=30))  # when frames were processed
    timeline: deque = field(default_factory=lambda: deque(maxlen=600))  # (time, probs) of the largest face
    started: float = field(default_factory=time.monotonic)
    error: str | None = None

    def process(self, image: np.ndarray) -> np.ndarray:
        """Analyse one RGB camera frame; returns it with the faces drawn."""
        from fer.video import LiveAnalyser, draw_faces

        start = time.monotonic()
        try:
            if self.analyser is None:  # normally made by the page (prepare), in the script's thread
                self.analyser = LiveAnalyser(state.predictor(), self.smoothing)
            self.analyser.smoothing = self.smoothing
            result = self.analyser.process(image, start - self.started)
        except FerError as error:  # bad weights: say it on the page, keep the stream showing
            self.error = str(error)
            return image
        drawn = draw_faces(image, result.faces)
        end = time.monotonic()
        with self.lock:
            self.image, self.result = image, result
            self.delays.append(end - start)
            self.stamps.append(end)
            if result.faces:
                largest = max(result.faces, key=lambda f: f.box.w * f.box.h)
                self.timeline.append((result.time, largest.probs.copy()))
        return drawn

    def prepare(self) -> None:
        """Load the model now, on the page (with its spinner), not in the stream's first frame."""
        from fer.video import LiveAnalyser

        if self.analyser is None:
            self.analyser = LiveAnalyser(state.predictor(), self.smoothing)

    def rates(self) -> tuple[float | None, float | None]:
        """(processed frames per second over the last frames, median delay per frame in ms)."""
        with self.lock:
            stamps, delays = list(self.stamps), list(self.delays)
        if len(stamps) < 2 or time.monotonic() - stamps[-1] > 2:
            return None, None
        return (len(stamps) - 1) / (stamps[-1] - stamps[0]), 1000 * float(np.median(delays))

    def recent(self) -> tuple[np.ndarray, np.ndarray, tuple[float, float] | None]:
        with self.lock:
            points = list(self.timeline)
        if not points:
            return np.zeros(0), np.zeros((0, len(CLASSES))), None
        times = np.asarray([t for t, _ in points])
        keep = times >= times[-1] - LIVE_WINDOW_S
        window = (max(0.0, times[-1] - LIVE_WINDOW_S), max(LIVE_WINDOW_S, times[-1]))
        return times[keep], np.stack([p for _, p in points])[keep], window

    def snapshot(self):
        with self.lock:
            return (None, None) if self.image is None else (self.image.copy(), self.result)


def live_session() -> LiveSession:
    """This browser session's camera state (created on first use; frames never leave memory)."""
    return session.live_session(LiveSession)


def frame_callback(live: LiveSession):
    """streamlit-webrtc's per-frame callback: av.VideoFrame in, the frame with labelled boxes out."""

    def callback(frame):
        import av

        image = frame.to_ndarray(format="rgb24")
        drawn = live.process(image)
        out = av.VideoFrame.from_ndarray(drawn, format="rgb24")
        out.pts, out.time_base = frame.pts, frame.time_base
        return out

    return callback


def freeze(live: LiveSession) -> bool:
    """The Freeze button's callback: hand the latest camera frame to the Predict page (as a taken photo) and
    its faces to the Explain page, as the Predict page hands faces to Explain. False when no frame was
    processed yet (the page then says so: app.session.take_freeze_failed)."""
    from PIL import Image

    from app.results import jpeg_bytes

    image, result = live.snapshot()
    if image is None:
        session.note_freeze_failed()
        return False
    photo = jpeg_bytes(Image.fromarray(image))
    session.hand_photo_to_predict("camera-frame.jpg", photo)
    session.hand_faces_to_explain(
        FaceToExplain(f"camera frame, person {face.person}", face.face)
        for face in result.faces
        if face.face is not None
    )
    session.keep_frozen(photo, result)
    return True
