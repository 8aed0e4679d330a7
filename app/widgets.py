"""Widgets more than one page draws (the sidebar's model and explanation settings), the widget values
kept across pages, and the wrapper that turns a page's FerError into a message."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app import state
from fer.errors import FerError

PREDICTED = "predicted class"
# The sidebar's widget keys; each page names its own keys in keep(...).
SIDEBAR_KEYS = ("tta", "cam_method", "cam_target", "cam_layer", "cam_opacity")
_KEPT = "_kept_widget_keys"


def keep(*keys: str) -> None:
    """Keep these widgets' values when the user visits another page (Streamlit forgets the values of
    widgets a run does not draw). A page calls this with its own keys; the app keeps all of them on every
    run (keep_values). A kept value that no longer fits its widget (a face number past the end) falls back
    to the default. Upload and camera widgets cannot be given a value: pages/predict.py keeps their files."""
    kept = st.session_state.setdefault(_KEPT, set())
    kept.update(keys)


def keep_values() -> None:
    """Called by streamlit_app.py on every run, before the page: re-assigning a value marks it as kept."""
    for key in st.session_state.get(_KEPT, set()) | set(SIDEBAR_KEYS):
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def layer_choices() -> list[str]:
    """CAM layers, from the card's architecture so the sidebar does not have to load the model."""
    from fer.explain import layer_names
    from fer.model import ModelConfig

    config = ((state.card() or {}).get("architecture") or {}).get("config")
    try:
        return layer_names(ModelConfig.from_dict(config) if config else None)
    except TypeError:
        return layer_names()


def tta_setting() -> bool:
    """The sidebar switch for flip test-time augmentation (kept across pages), on where the weights were shipped so."""
    shipped = state.shipped_tta()
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


def run(render) -> None:
    """Draw a page; a problem the user can fix (FerError) becomes a clear message, never a traceback."""
    try:
        render()
    except FerError as error:
        st.error(str(error), icon=":material/error:")
