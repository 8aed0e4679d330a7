"""What the pages share: the model, explainer, model card and dataset, each loaded once per process.

Not a page itself (streamlit_app.py lists the pages). Everything here is caching and small widgets;
the work is done by `fer`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from pathlib import Path

import numpy as np
import streamlit as st

from fer.checkpoint import card_path_for, read_card, weights_path
from fer.config import environment
from fer.errors import DataError, FerError

# Widget values that must survive a visit to another page (Streamlit forgets widgets it does not draw).
# A kept value that no longer fits its widget (a face number past the end) falls back to the default.
# Upload and camera widgets cannot be given a value: their files are kept by pages/predict.py instead.
PERSISTENT_KEYS = (
    *("tta", "cam_method", "cam_target", "cam_layer", "cam_opacity"),  # sidebar
    "predict_source",
    *("explain_source", "explain_predict_face", "explain_face_number", "explain_split", "explain_class"),
    *("explain_number", "explain_target", "explain_layer", "explain_opacity", "explain_class_method"),
    *("data_dir", "ds_split", "ds_view", "ds_true", "ds_pred", "ds_verdict", "ds_flagged", "ds_cams", "ds_page"),
    *("ds_card_split", "ds_card_view", "report_split"),
)
PREDICTED = "predicted class"
# Visitors may type a dataset folder on the Dataset page only where the operator allows it: otherwise
# anyone reaching a deployed app could point the server at any folder it can read.
ALLOW_DATA_DIR_SETTING = "FER_ALLOW_DATA_DIR_SETTING"
# Above server.maxUploadSize (50 MB, .streamlit/config.toml) plus the multipart framing.
UPLOAD_SPOOL_BYTES = 51 * 2**20
WARM_UP_THREAD = "fer-warm-up"


def keep_uploads_in_memory() -> None:
    """Make the web server keep every upload in memory, never in a temp file.

    Streamlit's server parses uploads with Starlette, which spools a file over 1 MB to a temporary
    file on disk (MultiPartParser.spool_max_size): a user's photo would touch the disk. With the
    spool limit above the largest upload the server accepts, every upload stays in memory.
    """
    from starlette.formparsers import MultiPartParser

    MultiPartParser.spool_max_size = UPLOAD_SPOOL_BYTES


def use_navigation() -> None:
    """Make sure the app runs through streamlit_app.py's st.navigation, never Streamlit's older pages/ mode.

    With a pages/ folder beside the entry script, Streamlit starts in its v1 multipage mode until the
    first st.navigation call. A visitor whose first request after a server start is /dataset would get
    pages/dataset.py alone (no navigation, no page set-up, and every file of pages/ listed as a page).
    Switching the mode off and rerunning sends that request through streamlit_app.py like any other.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def keep_settings() -> None:
    for key in PERSISTENT_KEYS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def _file_stamp(path: Path) -> tuple[str, int, int]:
    """Path, mtime and size: new weights dropped in while the app runs are picked up on the next rerun."""
    try:
        stat = path.stat()
        return str(path), stat.st_mtime_ns, stat.st_size
    except OSError:
        return str(path), 0, 0


def weights_stamp() -> tuple[str, int, int]:
    return _file_stamp(weights_path())


@st.cache_resource(show_spinner="Loading the model...", max_entries=2)
def _classifier(stamp):
    from fer.predict import load_classifier

    return load_classifier()


def classifier():
    return _classifier(weights_stamp())


@st.cache_resource(show_spinner=False, max_entries=4)
def _predictor(stamp, tta: bool):
    from fer.predict import Predictor

    return Predictor(_classifier(stamp).with_tta(tta))


def _resolved(tta: bool | None) -> bool:
    """None means as the weights are served: resolved before the caches, so one setting is one entry."""
    return shipped_tta() if tta is None else tta


def predictor(tta: bool | None = None):
    """The photo pipeline; `tta` also classifies each face mirrored and averages (one batch of two: about
    twice the model time); None: as the weights are served."""
    return _predictor(weights_stamp(), _resolved(tta))


@st.cache_resource(show_spinner=False, max_entries=2)
def _explainer(stamp):
    from fer.explain import Explainer

    return Explainer.for_classifier(_classifier(stamp))


def explainer():
    return _explainer(weights_stamp())


@st.cache_data(show_spinner=False, max_entries=2)
def _card(stamp) -> dict | None:
    return read_card(weights_path())


def card() -> dict | None:
    """The model card beside the shipped weights (None when there is none)."""
    return _card(_file_stamp(card_path_for(weights_path())))


def layer_choices() -> list[str]:
    """CAM layers, from the card's architecture so the sidebar does not have to load the model."""
    from fer.explain import layer_names
    from fer.model import ModelConfig

    config = ((card() or {}).get("architecture") or {}).get("config")
    try:
        return layer_names(ModelConfig.from_dict(config) if config else None)
    except TypeError:
        return layer_names()


# -- photos ---------------------------------------------------------------------------------------


def digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


@st.cache_resource(show_spinner=False, max_entries=16, ttl=3600)
def _predict(data: bytes, name: str, detect: bool, stamp, tta: bool):
    # In memory only (uploads never touch the disk); the same bytes are not decoded twice.
    return _predictor(stamp, tta).predict(data, name=name, detect=detect)


def predict_photo(data: bytes, name: str, detect: bool = True, tta: bool | None = None):
    return _predict(data, name, detect, weights_stamp(), _resolved(tta))


@st.cache_resource(show_spinner=False, max_entries=16, ttl=3600)
def _photo_for_display(data: bytes, name: str, detect: bool, stamp, tta: bool):
    from fer.results import for_display

    return for_display(_predict(data, name, detect, stamp, tta))


def photo_for_display(data: bytes, name: str, detect: bool = True, tta: bool | None = None):
    """The photo's result as the Predict page shows it (fer.results.ShownPhoto), cached like `predict_photo`."""
    return _photo_for_display(data, name, detect, weights_stamp(), _resolved(tta))


@st.cache_data(show_spinner=False, max_entries=256)
def _cams(faces: np.ndarray, method: str, targets: tuple, layer: str, stamp) -> np.ndarray:
    return _explainer(stamp).cams(faces, method, list(targets), layer)


def cams(faces: np.ndarray, method: str, targets, layer: str) -> np.ndarray:
    """Saliency maps for a batch of faces (cached: moving the opacity slider recomputes nothing)."""
    return _cams(np.asarray(faces, dtype=np.uint8), method, tuple(int(t) for t in targets), layer, weights_stamp())


@st.cache_data(show_spinner=False)
def sample_photo() -> bytes:
    from fer.results import sample_photo as load

    return load()


@st.cache_data(show_spinner=False, max_entries=2)
def _served_with_tta(stamp) -> bool:
    from fer.predict import served_with_tta

    return served_with_tta()


def shipped_tta() -> bool:
    """Whether the weights are served with flip TTA by default (`fer card --tta`); False if they do not load.

    Read from the checkpoint's metadata, not the loaded classifier: the sidebar draws at once on a first
    visit, while the model loads in the background warm-up or for the first photo."""
    try:
        return _served_with_tta(weights_stamp())
    except FerError:  # the page that needs the model says what is wrong with it
        return False


def tta_setting() -> bool:
    """The sidebar switch for flip test-time augmentation (kept across pages), on where the weights were shipped so."""
    shipped = shipped_tta()
    st.session_state.setdefault("tta", shipped)
    with st.sidebar:
        st.header("Model")
        return st.toggle(
            "Also read the mirrored face",
            key="tta",
            help="Test-time augmentation: each face is classified as it is and mirrored, and the two are "
            "averaged: a little more accurate (see the README's results), about twice the model time (both in one batch). "
            f"The shipped weights are served {'with' if shipped else 'without'} it by default: their temperature "
            "and uncertainty threshold were chosen for that setting.",
        )


def cam_settings() -> dict:
    """The Grad-CAM controls: method, class to explain, layer and opacity (values kept across pages)."""
    from fer.config import CLASSES
    from fer.explain import DEFAULT_METHOD, METHOD_HELP, METHODS

    with st.sidebar:
        st.header("Explanation")
        # Defaults live in the session state, not in the widgets: the values are kept across pages.
        st.session_state.setdefault("cam_method", DEFAULT_METHOD)
        st.session_state.setdefault("cam_opacity", 0.5)
        method = st.selectbox(
            "Saliency method",
            list(METHODS),
            key="cam_method",
            help="How the heat map is computed (pytorch-grad-cam). "
            + " ".join(f"{k}: {v}" for k, v in METHOD_HELP.items()),
        )
        target = st.selectbox(
            "Explain which class",
            [PREDICTED, *CLASSES],
            key="cam_target",
            help="The heat map shows the evidence for this class: the predicted one, or any of the four.",
        )
        layers = layer_choices()
        if st.session_state.get("cam_layer") not in layers:
            st.session_state.pop("cam_layer", None)
        layer = st.selectbox(
            "Layer",
            layers,
            key="cam_layer",
            help="Where in the network to look: the last stage (6x6) is the usual choice; earlier stages give finer, less class-specific maps.",
        )
        opacity = st.slider("Heat-map opacity", 0.0, 1.0, step=0.05, key="cam_opacity")
        st.caption(METHOD_HELP[method])
    return {"method": method, "target": target, "layer": layer, "opacity": opacity}


def targets_for(probs: np.ndarray, target: str) -> list[int]:
    """The class index each face's map explains: its prediction, or the chosen class for all."""
    from fer.config import CLASSES

    probs = np.atleast_2d(probs)
    if target == PREDICTED:
        return [int(i) for i in probs.argmax(axis=1)]
    return [CLASSES.index(target)] * len(probs)


# -- dataset ----------------------------------------------------------------------------------------


def data_dir_setting_allowed() -> bool:
    return environment().allow_data_dir_setting


def data_root() -> tuple[Path | None, str | None]:
    """The dataset folder (the page's setting where allowed, else FER_DATA_DIR, else ../shared/data/...) or why there is none.

    The reason may name server paths: pages show it only in the "Dataset location" expander.
    """
    from fer.data import find_data_dir

    setting = None
    if data_dir_setting_allowed():
        setting = (st.session_state.get("data_dir") or "").strip() or None
    try:
        root = find_data_dir(setting)
    except DataError as error:
        return None, str(error)
    if not _has_images(root):
        return None, f"No happy/sad/surprise/neutral image folders under {root}."
    return root, None


def _has_images(root: Path) -> bool:
    from fer.config import CLASSES, SPLITS

    folders = [root / s for s in SPLITS] + [root]
    return any((folder / name).is_dir() and any((folder / name).iterdir()) for folder in folders for name in CLASSES)


def splits_in(root: Path) -> list[str]:
    """Split folders of the dataset; [''] for a plain folder of class folders."""
    from fer.config import SPLITS

    found = [s for s in SPLITS if (root / s).is_dir()]
    return found or [""]


@st.cache_resource(show_spinner=False, max_entries=6)
def load_split(root: str, split: str):
    from fer.data import load_folder

    return load_folder(root, split or None)


@st.cache_data(show_spinner=False, max_entries=6)
def split_flags(root: str, split: str) -> list[str]:
    """Duplicate / conflicting-label flags for the split, from duplicate_groups.csv or the pixels."""
    from fer import browse

    faces = load_split(root, split)
    csv_file = browse.find_duplicates_file(Path(root))
    if csv_file is not None:
        groups = browse.read_duplicate_groups(csv_file)
    else:
        groups = browse.groups_from_pixels({s: load_split(root, s) for s in splits_in(Path(root))})
    return browse.duplicate_flags(faces, groups)


def split_predictions(root: str, split: str, tta: bool | None = None) -> np.ndarray:
    """The split's probabilities (`tta`: with the mirrored face too; None: as served); a progress bar shows
    while they are computed the first time."""
    from fer import browse

    faces = load_split(root, split)
    placeholder = st.empty()

    def progress(done: int, total: int) -> None:
        placeholder.progress(done / total, text=f"Classifying the {split or 'dataset'} images: {done:,} of {total:,}")

    probs = browse.split_predictions(classifier().with_tta(_resolved(tta)), faces, progress=progress)
    placeholder.empty()
    return probs


# -- small views ------------------------------------------------------------------------------------


def run(render) -> None:
    """Draw a page; a problem the user can fix (FerError) becomes a clear message, never a traceback."""
    try:
        render()
    except FerError as error:
        st.error(str(error), icon=":material/error:")


def configure_torch() -> None:
    """One torch thread per request (FER_APP_TORCH_THREADS to change it).

    The app's work is small batches, and several users (or a training run) share the CPU: there,
    torch's default of one thread per core makes each call wait on the others, measured 10-40x
    slower for a Grad-CAM on this 2-core machine (benchmarks/app_latency.py). Users in parallel
    still use every core.
    """
    import torch

    threads = environment().app_torch_threads
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def warm_up() -> None:
    """Import pytorch-grad-cam and load the model in the background once, so the first photo waits for
    neither (the pages draw without the model: the sidebar reads the TTA flag from the checkpoint)."""
    if getattr(warm_up, "started", False) or not environment().warm_up:
        return
    warm_up.started = True
    # pytorch-grad-cam pulls in pandas and plotly too: imported here first, in the script thread, so that
    # a page importing them while the warm-up runs cannot meet a half-initialised module (a fresh server
    # once failed with "partially initialized module 'pandas'").
    import pandas  # noqa: F401
    import plotly.graph_objects  # noqa: F401

    def work():
        from fer.explain import grad_cam  # the same locked import the pages use: no two threads race on it

        # Only a head start: a real import error shows where the module is used, bad weights on the page
        # that needs them. The cache lets a page that asks for the model meanwhile wait for this load.
        with contextlib.suppress(Exception):
            grad_cam()
        with contextlib.suppress(Exception):
            classifier()

    # Streamlit warns once that this thread has no script context (the cache's spinner looks for a page
    # to draw on); a background load has none by design, so that warning is dropped for this thread only.
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(
        lambda record: record.threadName != WARM_UP_THREAD
    )
    threading.Thread(target=work, name=WARM_UP_THREAD, daemon=True).start()


if __name__ == "__main__":  # opened as a page (Streamlit's pages/ mode): hand over to the real navigation
    use_navigation()
