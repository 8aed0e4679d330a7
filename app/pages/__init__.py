"""The app's pages: Streamlit runs each file as a script (app.navigation registers them with st.navigation).
They only lay out widgets; nothing else imports them (pyproject.toml [tool.importlinter])."""
