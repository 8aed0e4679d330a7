"""The page files only lay out: read as source (ast), none holds a cache, touches the session state, calls the
model or reads the disk; those live in the view layer (app/state.py: every cache; app/session.py: every
session-state access). The checker is also run on planted violations, so that it is seen to catch each one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app import navigation

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(p for p in (ROOT / "app" / "pages").glob("*.py") if p.name != "__init__.py")

# fer modules that load the model, read files or run the pipeline: a page may take their constants only.
# From any other fer module too, a page imports constants, or one of these pure functions of arrays and records.
PURE_FER_FUNCTIONS = {
    "fer.explain": {"overlay", "most_faithful"},  # draw a map on a face; pick the best scores
    "fer.metrics": {"score_text"},  # a score as text
    "fer.record": {"csv_bytes", "results_json"},  # a result as the download's bytes
}
DISK_MODULES = {"os", "pathlib", "shutil", "glob", "pickle", "tempfile", "io", "torch", "torchvision", "cv2", "PIL"}
DISK_CALLS = {
    *("open", "read_text", "read_bytes", "write_text", "write_bytes", "iterdir", "glob", "rglob"),
    *("exists", "is_file", "is_dir", "stat", "mkdir", "unlink", "load", "save", "loadtxt", "savetxt"),
}
CHARTS = {"plotly_chart", "altair_chart", "vega_lite_chart"}  # a literal key only names the element


def page_problems(source: str) -> list[str]:
    """What in this page's source is not layout: caches, session state, model and disk calls, literal widget keys."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute):
            if node.attr == "session_state":
                problems.append(f"{where}: session state (use app.session)")
            if node.attr.startswith("cache_") or node.attr in {"cache", "experimental_memo", "experimental_singleton"}:
                problems.append(f"{where}: a cache (st.{node.attr}; caches live in app/state.py)")
        elif isinstance(node, ast.Name) and node.id == "session_state":
            problems.append(f"{where}: session state (use app.session)")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top == "fer" or top in DISK_MODULES:
                    problems.append(f"{where}: import {alias.name} (model and disk work belongs in app/)")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            top = module.split(".")[0]
            if top in DISK_MODULES:
                problems.append(f"{where}: from {module} import (model and disk work belongs in app/)")
            elif top == "streamlit" and any(
                a.name in {"session_state", "cache_data", "cache_resource"} for a in node.names
            ):
                problems.append(f"{where}: from streamlit import {', '.join(a.name for a in node.names)}")
            elif top == "fer":
                for alias in node.names:
                    if not alias.name.isupper() and alias.name not in PURE_FER_FUNCTIONS.get(module, set()):
                        problems.append(f"{where}: from {module} import {alias.name} (call it through app/)")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name in DISK_CALLS:
                problems.append(f"{where}: {name}() reads or writes files (app/state.py does)")
            for keyword in node.keywords:
                literal = isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str)
                if keyword.arg == "key" and literal and name not in CHARTS:
                    problems.append(f'{where}: key="{keyword.value.value}" (name widget keys in app.session.Key)')
    return problems


def test_the_pages_are_the_navigations_pages():
    registered = {navigation.PREDICT, navigation.EXPLAIN, navigation.VIDEO, navigation.LIVE}
    registered |= {navigation.DATASET, navigation.REPORT}
    assert {str(p.relative_to(ROOT)) for p in PAGES} == registered
    assert not (ROOT / "pages").exists()  # Streamlit would discover a top-level pages/ folder on its own


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_a_page_file_only_lays_out(page):
    assert page_problems(page.read_text(encoding="utf-8")) == []


def test_only_app_session_touches_the_session_state_and_only_app_state_caches():
    files = [ROOT / "streamlit_app.py", *sorted((ROOT / "app").rglob("*.py"))]
    session_state, caches = [], []
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "session_state":
                session_state.append(file.relative_to(ROOT).as_posix())
            if isinstance(node, ast.Attribute) and node.attr in {"cache_data", "cache_resource"}:
                caches.append(file.relative_to(ROOT).as_posix())
    assert set(session_state) == {"app/session.py"}
    assert set(caches) == {"app/state.py"}


PLANTED = {
    "cache": "import streamlit as st\n@st.cache_data\ndef f(): pass\n",
    "cache import": "from streamlit import cache_resource\n",
    "session state": "import streamlit as st\nst.session_state['predict_faces'] = []\n",
    "session state get": "import streamlit as st\nx = st.session_state.get('ds_page')\n",
    "model call": "from fer.batch import predict_batch\n",
    "model module": "from fer import predict\n",
    "module import": "import fer.data\n",
    "disk read": "text = open('weights/model_card.json').read()\n",
    "path read": "from app import state\nstate.weights_path().read_bytes()\n",
    "path import": "from pathlib import Path\n",
    "model load": "import torch\n",
    "literal key": "import streamlit as st\nst.radio('Split', ['a'], key='ds_split')\n",
}


@pytest.mark.parametrize("kind", PLANTED)
def test_the_check_catches_a_planted_violation(kind):
    assert page_problems(PLANTED[kind]), kind


def test_the_check_lets_layout_through():
    layout = (
        "import streamlit as st\n"
        "from app import session, state\n"
        "from app.session import Key\n"
        "from fer.config import CLASSES\n"
        "from fer.explain import METHODS, overlay\n"
        "from fer.images import MAX_FILE_BYTES\n"
        "session.default(Key.EXPLAIN_OPACITY, 0.5)\n"
        "st.radio('Split', CLASSES, key=Key.DS_SPLIT)\n"
        "st.plotly_chart(figure, key='report-curves')\n"
        "st.image(overlay(state.sample_face(), None, 0.5))\n"
    )
    assert page_problems(layout) == []
