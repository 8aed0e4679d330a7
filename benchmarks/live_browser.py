"""The Live page in a real browser: frames shown and processed per second, and the delay per frame.

    python -m benchmarks.live_browser [--seconds 20] [--faces 1 2 3]

Serves the app (`streamlit run`, normal priority), opens the Live page in Debian's Chromium with its fake
camera playing a 640x480 clip of 1, 2 or 3 validation faces (chosen by the detector alone), presses Start
and, once frames come back, reads each second for `--seconds`:
- the frames per second the <video> element presents (the server's stream, boxes drawn on it);
- the page's own metrics: processed frames per second and the delay per processed frame.
Prints a Markdown table of medians. Everything (browser, server, WebRTC encoding both ways, the model)
runs on this machine's cores, so the numbers are the whole round trip on one machine.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.video import background, detectable, paste  # noqa: E402
from fer import data  # noqa: E402
from fer.predict import Predictor, load_classifier  # noqa: E402
from tests.e2e.browser import fake_camera_page, free_port, start_live_camera, start_streamlit, stop  # noqa: E402
from tests.e2e.test_browser import write_y4m  # noqa: E402

PRESENTED = """v => new Promise(done => {
    const start = performance.now(); let first = null, last = null;
    const tick = (now, meta) => {
        if (first === null) first = meta.presentedFrames;
        last = meta.presentedFrames;
        if (now - start < 1000) v.requestVideoFrameCallback(tick); else done(last - first);
    };
    v.requestVideoFrameCallback(tick);
    setTimeout(() => done(last === null ? 0 : last - first), 3000);
})"""


def clip_of(faces: list[np.ndarray], folder: Path) -> Path:
    frame = background()
    for k, face in enumerate(faces):
        paste(frame, face, 20 + k * 210, 150, 190)
    path = folder / f"faces{len(faces)}.y4m"
    write_y4m(path, np.asarray(frame)[..., 0], frames=60, fps=30)
    return path


def number(text: str) -> float | None:
    match = re.match(r"^\s*([\d.]+)", text)
    return float(match.group(1)) if match else None


def measure(playwright, server_url: str, clip: Path, seconds: int) -> dict[str, float]:
    class Server:
        url = server_url

    browser, page = fake_camera_page(playwright, Server, clip)
    try:
        shown = start_live_camera(page)
        values = page.get_by_test_id("stMetricValue")
        page.wait_for_timeout(3000)  # past the first frames (the model's warm-up)
        presented, processed, delay = [], [], []
        for _ in range(seconds):
            presented.append(shown.evaluate(PRESENTED))
            texts = values.all_inner_texts()
            processed.append(number(texts[0]) or 0.0)
            delay.append(number(texts[1]) or float("nan"))
        return {
            "presented": statistics.median(presented),
            "processed": statistics.median(processed),
            "delay": statistics.median(delay),
        }
    finally:
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20, help="seconds of readings per clip")
    parser.add_argument("--faces", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    validation = data.load_folder(data.find_data_dir(), "validation")
    predictor = Predictor(load_classifier())
    faces = [detectable(validation, predictor, name, 1)[0] for name in ("happy", "surprise", "neutral")]
    rows = [("load average at the start (1 min)", f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")]
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        log = Path(folder) / "server.log"
        server = start_streamlit(port, log, niceness=0)  # as a user runs it, not at the tests' low priority
        try:
            with sync_playwright() as playwright:
                for n in args.faces:
                    got = measure(
                        playwright, f"http://127.0.0.1:{port}/", clip_of(faces[:n], Path(folder)), args.seconds
                    )
                    rows.append(
                        (
                            f"live page, 640x480, {n} face(s): frames shown / processed per second; delay",
                            f"{got['presented']:.0f} / {got['processed']:.1f}; {got['delay']:.0f} ms",
                        )
                    )
        finally:
            stop(server)
    rows.append(("load average at the end (1 min)", f"{os.getloadavg()[0]:.1f}"))
    print(f"Live page in Chromium, {date.today()}, {os.cpu_count()} cores, fake camera at 30 frames/s\n")
    print("| what | median |\n|---|---|")
    for what, value in rows:
        print(f"| {what} | {value} |")


if __name__ == "__main__":
    main()
