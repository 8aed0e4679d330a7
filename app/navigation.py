"""The app's pages and the check that streamlit_app.py framed the page. Imports nothing but streamlit:
streamlit_app.py draws the navigation with it before anything heavy (torch) is imported."""

import streamlit as st

FRAME = "fer_frame"  # session state: set by streamlit_app.py just before it runs the page, taken by the page


def pages() -> list:
    return [
        st.Page("pages/predict.py", title="Predict", icon=":material/photo_camera:", default=True),
        st.Page("pages/explain.py", title="Explain", icon=":material/visibility:"),
        st.Page("pages/video.py", title="Video", icon=":material/movie:"),
        st.Page("pages/live.py", title="Live camera", icon=":material/videocam:"),
        st.Page("pages/dataset.py", title="Dataset", icon=":material/grid_view:"),
        st.Page("pages/report.py", title="Model report", icon=":material/summarize:"),
    ]


def frame_ran() -> bool:
    """Whether this run of the page came through streamlit_app.py (set-up, sidebar menu, navigation).

    Not on a fresh server's first request for a page's URL (/dataset): with a pages/ folder beside the
    entry script, Streamlit runs that file alone (its pages/ mode) until st.navigation is first called
    (AppTest starts every run so). The mark is taken: each run of the page needs its own.
    """
    return bool(st.session_state.pop(FRAME, False))


def ensure_frame() -> None:
    """Call first in every page: where streamlit_app.py did not run, run the same URL again through it.

    st.navigation ends Streamlit's pages/ mode for the whole server; st.rerun keeps the page (its URL).
    """
    if not frame_ran():
        st.navigation(pages(), position="hidden")
        st.rerun()
