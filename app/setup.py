"""Process-wide set-up of the app: each function runs once per server process (functools.cache).

streamlit_app.py keeps uploads in memory before any page and starts the warm-up after the page is
drawn; the model's first load sets torch's thread count (app.state). Imports nothing of the view
layer: app.state imports this module."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable

from fer.config import environment

# Above server.maxUploadSize (50 MB, .streamlit/config.toml) plus the multipart framing.
UPLOAD_SPOOL_BYTES = 51 * 2**20
WARM_UP_THREAD = "fer-warm-up"


@functools.cache
def keep_uploads_in_memory() -> None:
    """Uploads never touch the disk: Starlette, which parses Streamlit's uploads, spools a file over
    MultiPartParser.spool_max_size (1 MB) to a temporary file; this raises that limit above the largest
    upload the server accepts. A patch, as no setting exists: tests/e2e/test_privacy_served.py fails if it
    stops working."""
    from starlette.formparsers import MultiPartParser

    MultiPartParser.spool_max_size = UPLOAD_SPOOL_BYTES


@functools.cache
def use_torch_threads() -> None:
    """One torch thread per request (FER_APP_TORCH_THREADS): the app's batches are small and users share
    the CPU, where torch's one thread per core makes calls wait on each other (benchmarks/app_latency.py)."""
    import torch

    threads = environment().app_torch_threads
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@functools.cache
def warm_up(load_model: Callable[[], object]) -> None:
    """Import pytorch-grad-cam and call `load_model` (the app's cached model) in a background thread, so
    the first photo waits for neither (pages draw without the model). FER_NO_WARMUP=1 turns it off."""
    if not environment().warm_up:
        return
    # pytorch-grad-cam pulls in pandas and plotly too: imported here first, in the script thread, so that
    # a page importing them while the warm-up runs cannot meet a half-initialised module (a fresh server
    # once failed with "partially initialized module 'pandas'").
    import pandas  # noqa: F401
    import plotly.graph_objects  # noqa: F401

    def work():
        from fer.explain import grad_cam  # the same locked import the pages use: no two threads race on it

        # Only a head start: a real import error shows where the module is used, bad weights on the page
        # that needs them. The cache lets a page that asks for the model meanwhile wait for this load.
        with contextlib.suppress(Exception):
            grad_cam()
        with contextlib.suppress(Exception):
            load_model()

    # Streamlit warns once that this thread has no script context (the cache's spinner looks for a page
    # to draw on); a background load has none by design, so that warning is dropped for this thread only.
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(
        lambda record: record.threadName != WARM_UP_THREAD
    )
    threading.Thread(target=work, name=WARM_UP_THREAD, daemon=True).start()
