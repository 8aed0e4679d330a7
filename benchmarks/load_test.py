"""Load test: many people using the served app at once, each in their own browser session.

    nice -n 19 python -m benchmarks.load_test [--sessions 20] [--faces 3] [--timeout 600]

Starts `streamlit run streamlit_app.py` on a free localhost port, opens N browser contexts in one
Debian Chromium (Playwright, async), lets every session load the Predict page, then has all of them
upload a photo at the same moment and wait for the full result: the boxed photo, each face's
probability chart and a Grad-CAM image. Each session gets a different photo (real dataset faces,
built in memory, never saved), so no session is served from another's cache.

Prints a Markdown table: sessions, errors (goal 0), time to result (p50 / p95 / max: from the upload
to the last Grad-CAM on screen), and the server's memory (resident set before the load and its peak,
VmHWM from /proc). Times depend on the machine and on what else runs on it: compare runs on the same
machine only. Issue 4, item 6.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import encode, make_photo  # noqa: E402  (tests/conftest.py: photos from real faces)
from e2e.browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, free_port, start_streamlit, stop, uncaught_errors  # noqa: E402

VIEWPORT = {"width": 1280, "height": 1800}


def memory_kib(pid: int, field: str) -> int:
    """VmRSS / VmHWM (peak resident set) of a process, in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def photos(count: int, faces_per_photo: int) -> list[tuple[bytes, int]]:
    """`count` different JPEGs of real validation faces, each with the number of faces the detector finds."""
    import numpy as np
    from PIL import Image

    from fer import data
    from fer.faces import FaceDetector

    validation = data.load_folder(data.find_data_dir(), "validation")
    detector = FaceDetector()
    made, index = [], 0
    while len(made) < count and index < len(validation):
        faces = [validation.images[(index + k * 97) % len(validation)] for k in range(faces_per_photo)]
        index += 1
        photo, _ = make_photo(faces, size=(900, 700), seed=len(made))
        jpeg = encode(photo, "JPEG", quality=90)
        found = len(detector.detect(np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"))))
        if found == faces_per_photo:  # every face found: comparable work for every session
            made.append((jpeg, found))
    if len(made) < count:
        raise RuntimeError("not enough validation faces that the detector finds")
    return made


async def session(browser, url: str, photo: bytes, faces: int, arrived, start, timeout_ms: int, number: int) -> dict:
    """One person: open the app, wait for the go, upload, wait for the last Grad-CAM. Returns timings or the error."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    page.set_default_timeout(timeout_ms)
    here, step = False, "open the app"
    try:
        await page.goto(url)
        await page.get_by_role("heading", name="Predict emotions in a photo").wait_for()
        uploader = page.get_by_test_id("stFileUploaderDropzoneInput")
        await uploader.wait_for(state="attached")
        here = True
        arrived.put_nowait(True)
        await start.wait()
        began, step = time.perf_counter(), "upload"
        await uploader.set_input_files([{"name": "group.jpg", "mimeType": "image/jpeg", "buffer": photo}])
        step = "wait for the faces"
        found = page.get_by_role("heading", name=re.compile(r"^(\d+) faces? found$"))
        await found.wait_for()
        shown = int((await found.inner_text()).split()[0])  # JPEG noise may change what the detector sees
        step = "wait for the probability charts"
        await page.get_by_test_id("stPlotlyChart").nth(shown - 1).wait_for()
        step = "wait for the Grad-CAM images"
        await page.get_by_test_id("stImage").filter(has_text="Grad-CAM for").nth(shown - 1).wait_for()
        seconds = time.perf_counter() - began
        problems = await page.get_by_test_id("stException").count()
        problems += await page.get_by_test_id("stAlertContentError").count()
        error = "an error on the page" if problems else None
        return {"seconds": seconds, "faces": shown, "error": error, "expected": faces}
    except Exception as error:  # noqa: BLE001 (a load test counts failures, it does not stop at the first)
        shot = SCREENSHOTS / f"load-test-session{number}.png"
        with contextlib.suppress(Exception):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(shot))
        message = str(error).splitlines()[0][:160]
        return {"seconds": None, "error": f"session {number}, at '{step}': {type(error).__name__}: {message} ({shot})"}
    finally:
        if not here:
            arrived.put_nowait(False)
        await context.close()


async def drive(url: str, loads: list[tuple[bytes, int]], timeout_s: float) -> list[dict]:
    """All sessions open the page; once every one is there (or has failed), all upload at the same moment."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            arrived, start = asyncio.Queue(), asyncio.Event()
            tasks = [
                asyncio.create_task(session(browser, url, photo, faces, arrived, start, int(timeout_s * 1000), i))
                for i, (photo, faces) in enumerate(loads, 1)
            ]
            for _ in loads:
                await arrived.get()
            start.set()
            return await asyncio.gather(*tasks)
        finally:
            await browser.close()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--faces", type=int, default=3, help="faces per photo")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a session may wait for its result")
    args = parser.parse_args()

    warm_up, *loads = photos(args.sessions + 1, args.faces)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start_streamlit(port, Path(tmp) / "server.log")
        peak_rss = [0]
        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.wait(0.2):
                try:
                    peak_rss[0] = max(peak_rss[0], memory_kib(server.pid, "VmRSS"))
                except (OSError, KeyError):
                    return

        try:
            # Warm the server as its first visitor would (model and Grad-CAM loaded), then measure.
            asyncio.run(drive(f"http://127.0.0.1:{port}/", [warm_up], args.timeout))
            rss_before = memory_kib(server.pid, "VmRSS")
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            load_before = os.getloadavg()[0]
            results = asyncio.run(drive(f"http://127.0.0.1:{port}/", loads, args.timeout))
            stop_sampling.set()
            sampler.join()
            hwm = memory_kib(server.pid, "VmHWM")
        finally:
            stop(server)
        server_errors = uncaught_errors((Path(tmp) / "server.log").read_text(errors="replace"))

    times = [r["seconds"] for r in results if r["error"] is None]
    errors = [r["error"] for r in results if r["error"] is not None]
    mib = 1024
    print(
        f"Load test: {args.sessions} concurrent browser sessions (one Chromium, one context each), "
        f"each uploading a different {args.faces}-face photo at once; {os.cpu_count()} CPU cores, "
        f"{platform.machine()}, FER_APP_TORCH_THREADS={os.environ.get('FER_APP_TORCH_THREADS', '1 (default)')}, "
        f"load average before: {load_before:.1f}.\n"
    )
    print(
        "| sessions | errors | p50 time to result | p95 time to result | slowest | server RSS before | server peak RSS |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    if times:
        p50, p95, slowest = statistics.median(times), percentile(times, 95), max(times)
        timing = f"{p50:.1f} s | {p95:.1f} s | {slowest:.1f} s"
    else:
        timing = "- | - | -"
    print(
        f"| {args.sessions} | {len(errors)} | {timing} | {rss_before / mib:.0f} MiB | "
        f"{max(hwm, peak_rss[0]) / mib:.0f} MiB |"
    )
    shown = sum(r.get("faces", 0) for r in results)
    print(
        f"\n{shown} faces boxed, classified and explained in total ({sum(r['expected'] for r in results if 'expected' in r)} expected)."
    )
    for error in errors:
        print(f"\n- error: {error}")
    for error in server_errors:
        print(f"\n- server log: {error}")
    sys.exit(1 if errors or server_errors else 0)


if __name__ == "__main__":
    main()
