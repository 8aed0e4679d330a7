"""The fer app: `streamlit run streamlit_app.py`. Page set-up and navigation; the pages are in pages/."""

import sys
import time

import streamlit as st

from app.navigation import FRAME, pages

# First, before anything heavy is imported: the menu shows at once. With a pages/ folder beside this
# script Streamlit starts in its pages/ mode, whose own menu lists every file of pages/: hidden by
# client.showSidebarNavigation = false (.streamlit/config.toml), and ended by this st.navigation call.
st.set_page_config(page_title="Facial emotion recognition", page_icon="🙂", layout="wide")
PAGES = pages()
navigation = st.navigation(PAGES, position="hidden")
with st.sidebar:
    for page in PAGES:
        st.page_link(page)
    st.caption("Four expressions: happy, sad, surprise, neutral. A demo, not for decisions about people.")

if "app.setup" not in sys.modules:
    # Its first import (torch) holds the interpreter lock for seconds: a moment first lets the server
    # send the menu drawn above, which would otherwise wait for the import to finish.
    time.sleep(0.1)
from app import setup, state, widgets  # noqa: E402  (after the menu is drawn and sent)

setup.keep_uploads_in_memory()  # before any upload arrives
widgets.keep_values()  # the widget values each page asked to keep across pages
st.session_state[FRAME] = True  # the page checks it: app.navigation.frame_ran
navigation.run()
setup.warm_up(state.classifier)  # after the page is drawn, so the first visit is not slowed by it
