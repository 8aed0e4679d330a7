"""Widgets more than one page draws (the sidebar's model and explanation settings), the widget values
kept across pages, and the wrapper that turns a page's FerError into a message."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app import session, state
from app.session import Key
from fer.errors import FerError

PREDICTED = "predicted class"
# The sidebar's widget keys; each page names its own keys in keep(...).
SIDEBAR_KEYS = (Key.TTA, Key.CAM_METHOD, Key.CAM_TARGET, Key.CAM_LAYER, Key.CAM_OPACITY)


def keep(*keys: str) -> None:
    """Keep these widgets' values when the user visits another page (Streamlit forgets the values of
    widgets a run does not draw). A page calls this with its own keys; the app keeps all of them on every
    run (keep_values). A kept value that no longer fits its widget (a face number past the end) falls back
    to the default. Upload and camera widgets cannot be given a value: the Predict page keeps their files
    (app.session.keep_inputs)."""
    session.keep_widgets(*keys)


def keep_values() -> None:
    """Called by streamlit_app.py on every run, before the page: re-assigning a value marks it as kept."""
    session.keep_widget_values(always=SIDEBAR_KEYS)


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
    session.default(Key.TTA, shipped)
    with st.sidebar:
        st.header("Model")
        return st.toggle(
            "Also read the mirrored face",
            key=Key.TTA,
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
        session.default(Key.CAM_METHOD, DEFAULT_METHOD)
        session.default(Key.CAM_OPACITY, 0.5)
        method = st.selectbox(
            "Saliency method",
            list(METHODS),
            key=Key.CAM_METHOD,
            help="How the heat map is computed (pytorch-grad-cam). "
            + " ".join(f"{k}: {v}" for k, v in METHOD_HELP.items()),
        )
        target = st.selectbox(
            "Explain which class",
            [PREDICTED, *CLASSES],
            key=Key.CAM_TARGET,
            help="The heat map shows the evidence for this class: the predicted one, or any of the four.",
        )
        layers = layer_choices()
        session.keep_within(Key.CAM_LAYER, layers, None)
        layer = st.selectbox(
            "Layer",
            layers,
            key=Key.CAM_LAYER,
            help="Where in the network to look: the last stage (6x6) is the usual choice; earlier stages give finer, less class-specific maps.",
        )
        opacity = st.slider("Heat-map opacity", 0.0, 1.0, step=0.05, key=Key.CAM_OPACITY)
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
