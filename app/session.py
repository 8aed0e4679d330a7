"""This browser session's state: the only module that reads or writes st.session_state.

Pages and the rest of the view layer go through the functions here, and name widgets by the constants of
`Key` (tests look widgets up by them too). Everything here lives in the session's memory only: uploads,
camera frames and results are never written to disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypeVar

import numpy as np
import streamlit as st

T = TypeVar("T")


class Key:
    """Widget keys and stored values, each named once."""

    # The sidebar
    TTA = "tta"
    CAM_METHOD = "cam_method"
    CAM_TARGET = "cam_target"
    CAM_LAYER = "cam_layer"
    CAM_OPACITY = "cam_opacity"
    # Predict
    PREDICT_SOURCE = "predict_source"
    UPLOADS = "uploads"
    CAMERA = "camera"
    INSPECT_PHOTO = "inspect_photo"
    # Explain
    EXPLAIN_SOURCE = "explain_source"
    EXPLAIN_UPLOAD = "explain_upload"
    EXPLAIN_PREDICT_FACE = "explain_predict_face"
    EXPLAIN_FACE_NUMBER = "explain_face_number"
    EXPLAIN_SPLIT = "explain_split"
    EXPLAIN_CLASS = "explain_class"
    EXPLAIN_NUMBER = "explain_number"
    EXPLAIN_TARGET = "explain_target"
    EXPLAIN_LAYER = "explain_layer"
    EXPLAIN_OPACITY = "explain_opacity"
    EXPLAIN_CLASS_METHOD = "explain_class_method"
    # Dataset
    DATA_DIR = "data_dir"
    DS_SPLIT = "ds_split"
    DS_TRUTH = "ds_truth"
    DS_VIEW = "ds_view"
    DS_CONFUSION = "ds_confusion"
    DS_TRUE = "ds_true"
    DS_PRED = "ds_pred"
    DS_VERDICT = "ds_verdict"
    DS_FLAGGED = "ds_flagged"
    DS_CAMS = "ds_cams"
    DS_PAGE = "ds_page"
    DS_TABLE = "ds_table"
    DS_CARD_SPLIT = "ds_card_split"
    DS_CARD_VIEW = "ds_card_view"
    # Model report
    REPORT_SPLIT = "report_split"
    # Video
    VIDEO_UPLOAD = "video_upload"
    VIDEO_FPS = "video_fps"
    VIDEO_START = "video_start"
    VIDEO_CANCEL = "video_cancel"
    VIDEO_MOMENT = "video_moment"
    VIDEO_CSV = "video_csv"
    VIDEO_MP4 = "video_mp4"
    # Live camera
    LIVE_STREAM = "live"
    LIVE_SMOOTHING = "live_smoothing"

    # Stored values, not widgets
    KEPT_WIDGETS = "_kept_widget_keys"  # the widget keys whose values survive a visit to another page
    KEPT_INPUTS = "kept_inputs"  # {photo source: [(name, bytes)]}: uploads and camera photos across pages
    PREDICTED = "predicted"  # (signature of the files, their Photos): the Predict page's classified photos
    WHOLE_IMAGE = "whole_image"  # keys of the photos to classify as one face
    FACES_TO_EXPLAIN = "predict_faces"  # [FaceToExplain]: from the Predict page or a frozen camera frame
    VIDEO_RESULT = "video_result"  # (analysis key, VideoReport, annotated MP4 bytes)
    VIDEO_STARTED = "video_started"  # the analysis key asked for
    VIDEO_CANCELLED = "video_cancelled"  # the analysis key stopped
    VIDEO_CLICKED = "video_clicked-"  # + person number: the time last clicked on that person's timeline
    LIVE_SESSION = "live_session"  # app.video.LiveSession: the camera stream's state
    LIVE_FROZEN = "live_frozen"  # (JPEG bytes, FrameResult): the frozen camera frame
    LIVE_FREEZE_FAILED = "live_freeze_failed"  # Freeze was pressed before any frame was processed


class Source:
    """The Predict page's photo sources (the options of Key.PREDICT_SOURCE)."""

    UPLOAD = "Upload photos"
    CAMERA = "Take a photo"
    SAMPLE = "Try a sample photo"
    ALL = (UPLOAD, CAMERA, SAMPLE)


class FaceToExplain(NamedTuple):
    """A face one page hands to the Explain page."""

    title: str  # "group.jpg, face 2"
    face: np.ndarray  # the 48x48 gray face the model saw


MAX_FACES_TO_EXPLAIN = 50


# -- widget values ---------------------------------------------------------------------------------


def default(key: str, value: Any) -> None:
    """A widget's starting value, set in the state rather than the widget so that a kept value is not reset."""
    st.session_state.setdefault(key, value)


def keep_within(key: str, options: Iterable, fallback: Any) -> None:
    """A widget's kept value that is no longer one of its options (another split, a shorter list) goes back
    to `fallback`; None: the widget's own default."""
    if st.session_state.get(key) not in list(options):
        if fallback is None:
            st.session_state.pop(key, None)
        else:
            st.session_state[key] = fallback


def set_widget(key: str, value: Any) -> None:
    """Set a widget's value from a callback (before the widget is drawn in the rerun)."""
    st.session_state[key] = value


def widget_value(key: str, default: Any = None) -> Any:
    return st.session_state.get(key, default)


def keep_widgets(*keys: str) -> None:
    """Keep these widgets' values when the user visits another page (app.widgets.keep)."""
    st.session_state.setdefault(Key.KEPT_WIDGETS, set()).update(keys)


def keep_widget_values(always: Iterable[str] = ()) -> None:
    """Re-assign the kept widgets' values (and `always`'s), which marks them as kept for this run."""
    for key in st.session_state.get(Key.KEPT_WIDGETS, set()) | set(always):
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def data_dir_setting() -> str | None:
    """The Dataset page's folder field (read only where the server allows the setting)."""
    return (st.session_state.get(Key.DATA_DIR) or "").strip() or None


# -- the Predict page's photos ---------------------------------------------------------------------


def kept_inputs(source: str) -> list[tuple[str, bytes]]:
    """The files given for `source` before a visit to another page (Streamlit empties upload widgets)."""
    return st.session_state.get(Key.KEPT_INPUTS, {}).get(source) or []


def keep_inputs(source: str, files: list[tuple[str, bytes]]) -> None:
    st.session_state.setdefault(Key.KEPT_INPUTS, {})[source] = files


def forget_inputs(source: str) -> None:
    st.session_state.get(Key.KEPT_INPUTS, {}).pop(source, None)


def classified(signature: tuple) -> list | None:
    """The Predict page's photos classified for these files and settings, if that was done in this session."""
    done = st.session_state.get(Key.PREDICTED)
    return done[1] if done is not None and done[0] == signature else None


def keep_classified(signature: tuple, photos: list) -> None:
    st.session_state[Key.PREDICTED] = (signature, photos)


def forget_photos() -> None:
    """The files are gone: so are their results, and the faces offered to the Explain page."""
    for key in (Key.PREDICTED, Key.FACES_TO_EXPLAIN):
        st.session_state.pop(key, None)


def whole_images() -> set[str]:
    """Keys of the photos the user asked to classify as one face."""
    return st.session_state.get(Key.WHOLE_IMAGE, set())


def classify_whole(photo_key: str) -> None:
    st.session_state.setdefault(Key.WHOLE_IMAGE, set()).add(photo_key)


def hand_photo_to_predict(name: str, data: bytes) -> None:
    """Open the Predict page on this photo, as if it had just been taken with the camera."""
    keep_inputs(Source.CAMERA, [(name, data)])
    st.session_state[Key.PREDICT_SOURCE] = Source.CAMERA


# -- faces for the Explain page --------------------------------------------------------------------


def hand_faces_to_explain(faces: Iterable[FaceToExplain]) -> None:
    st.session_state[Key.FACES_TO_EXPLAIN] = list(faces)[:MAX_FACES_TO_EXPLAIN]


def faces_to_explain() -> list[FaceToExplain]:
    return st.session_state.get(Key.FACES_TO_EXPLAIN) or []


# -- the Video page --------------------------------------------------------------------------------


def video_result(key: tuple) -> tuple | None:
    """(VideoReport, annotated MP4 bytes) of the analysis done in this session for `key`, else None."""
    kept = st.session_state.get(Key.VIDEO_RESULT)
    return kept[1:] if kept is not None and kept[0] == key else None


def keep_video_result(key: tuple, report, movie: bytes) -> None:
    """One video at a time: this replaces the last one."""
    st.session_state[Key.VIDEO_RESULT] = (key, report, movie)


def start_video(key: tuple) -> None:
    st.session_state[Key.VIDEO_STARTED] = key
    st.session_state.pop(Key.VIDEO_CANCELLED, None)


def cancel_video(key: tuple) -> None:
    st.session_state.pop(Key.VIDEO_STARTED, None)
    st.session_state[Key.VIDEO_CANCELLED] = key


def video_started(key: tuple) -> bool:
    return st.session_state.get(Key.VIDEO_STARTED) == key


def video_cancelled(key: tuple) -> bool:
    return st.session_state.get(Key.VIDEO_CANCELLED) == key


def forget_video() -> None:
    for key in (Key.VIDEO_RESULT, Key.VIDEO_STARTED, Key.VIDEO_CANCELLED):
        st.session_state.pop(key, None)


def timeline_click(person: int) -> float | None:
    """The time last clicked on this person's timeline (a chart keeps its selection across reruns)."""
    return st.session_state.get(f"{Key.VIDEO_CLICKED}{person}")


def note_timeline_click(person: int, time: float) -> None:
    st.session_state[f"{Key.VIDEO_CLICKED}{person}"] = time


# -- the Live camera page --------------------------------------------------------------------------


def live_session(create: Callable[[], T]) -> T:
    """This session's camera stream state, made by `create` on first use."""
    if Key.LIVE_SESSION not in st.session_state:
        st.session_state[Key.LIVE_SESSION] = create()
    return st.session_state[Key.LIVE_SESSION]


def keep_frozen(picture: bytes, result) -> None:
    st.session_state[Key.LIVE_FROZEN] = (picture, result)


def frozen() -> tuple | None:
    """(JPEG bytes, FrameResult) of the frozen camera frame, or None."""
    return st.session_state.get(Key.LIVE_FROZEN)


def note_freeze_failed() -> None:
    st.session_state[Key.LIVE_FREEZE_FAILED] = True


def take_freeze_failed() -> bool:
    """Whether Freeze was pressed before any frame was processed (told once)."""
    return bool(st.session_state.pop(Key.LIVE_FREEZE_FAILED, False))
