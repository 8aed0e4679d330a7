"""The app's pages: their files (app/pages/), titles and icons. Imports nothing but streamlit:
streamlit_app.py draws the navigation with it before anything heavy (torch) is imported."""

import streamlit as st

# Each page's file, relative to streamlit_app.py; its name is its URL (/explain), the first page is /.
PREDICT = "app/pages/predict.py"
EXPLAIN = "app/pages/explain.py"
VIDEO = "app/pages/video.py"
LIVE = "app/pages/live.py"
DATASET = "app/pages/dataset.py"
REPORT = "app/pages/report.py"


def pages() -> list:
    return [
        st.Page(PREDICT, title="Predict", icon=":material/photo_camera:", default=True),
        st.Page(EXPLAIN, title="Explain", icon=":material/visibility:"),
        st.Page(VIDEO, title="Video", icon=":material/movie:"),
        st.Page(LIVE, title="Live camera", icon=":material/videocam:"),
        st.Page(DATASET, title="Dataset", icon=":material/grid_view:"),
        st.Page(REPORT, title="Model report", icon=":material/summarize:"),
    ]
