"""The fer app: `streamlit run streamlit_app.py`. Page set-up and navigation; the pages are in pages/."""

import streamlit as st

from app import setup, widgets

setup.use_navigation()
setup.keep_uploads_in_memory()  # before any upload arrives
st.set_page_config(page_title="Facial emotion recognition", page_icon="🙂", layout="wide")
widgets.keep_values()  # the widget values each page asked to keep across pages

navigation = st.navigation(
    [
        st.Page("pages/predict.py", title="Predict", icon=":material/photo_camera:", default=True),
        st.Page("pages/explain.py", title="Explain", icon=":material/visibility:"),
        st.Page("pages/dataset.py", title="Dataset", icon=":material/grid_view:"),
        st.Page("pages/report.py", title="Model report", icon=":material/summarize:"),
    ]
)
with st.sidebar:
    st.caption("Four expressions: happy, sad, surprise, neutral. A demo, not for decisions about people.")
navigation.run()
setup.warm_up()  # after the page is drawn, so the first visit is not slowed by it
