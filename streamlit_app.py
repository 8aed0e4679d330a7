"""The fer app: `streamlit run streamlit_app.py`. Page set-up and navigation; the pages are in app/pages/."""

import streamlit as st

from app.navigation import pages
from fer.config import CLASSES

# First, before anything heavy is imported: the menu shows at once.
st.set_page_config(page_title="Facial emotion recognition", page_icon="🙂", layout="wide")
PAGES = pages()
navigation = st.navigation(PAGES, position="hidden")
with st.sidebar:
    for page in PAGES:
        st.page_link(page)
    st.caption(f"Knows {len(CLASSES)} expressions: {', '.join(CLASSES)}. A demo, not for decisions about people.")

from app import setup, state, widgets  # noqa: E402  (after the menu is drawn)

setup.keep_uploads_in_memory()  # before any upload arrives
widgets.keep_values()  # the widget values each page asked to keep across pages
navigation.run()
setup.warm_up(state.classifier)  # after the page is drawn, so the first visit is not slowed by it
