"""The fer app: `streamlit run streamlit_app.py`. Page set-up and navigation; the pages are in pages/."""

import streamlit as st

from pages import common

common.use_navigation()
common.keep_uploads_in_memory()  # before any upload arrives: see common.keep_uploads_in_memory
st.set_page_config(page_title="Facial emotion recognition", page_icon="🙂", layout="wide")
common.keep_settings()
common.configure_torch()

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
common.warm_up()  # after the page is drawn, so the first visit is not slowed by it
