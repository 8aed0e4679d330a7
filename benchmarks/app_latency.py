"""How fast the app answers: server start, and a photo's full Predict page once the model is loaded.

    nice -n 19 python -m benchmarks.app_latency [--photos 8] [--faces 3]

Runs the real app in Streamlit's AppTest (the page script end to end: decode, detect, classify,
Grad-CAM, charts, downloads) on photos made from dataset faces (never saved), and `streamlit run`
in a subprocess until its health check answers. Target (issue 3): <= 0.5 s per photo, <= 5 s start.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def server_start_seconds() -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "streamlit_app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - start < 60:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the server did not answer within 60 s")
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--faces", type=int, default=3)
    args = parser.parse_args()

    from streamlit.testing.v1 import AppTest

    print(f"server health answers after {server_start_seconds():.2f} s")
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    start = time.perf_counter()
    at.run()  # before anything imported fer or torch in this process
    print(f"first page script (imports included): {time.perf_counter() - start:.2f} s")

    import numpy as np
    from conftest import encode, make_photo

    from app.session import Key
    from fer import data

    faces = data.load_folder(data.find_data_dir(), "test").images

    def photo(seed: int) -> bytes:
        chosen = np.random.default_rng(seed).choice(len(faces), args.faces, replace=False)
        return encode(make_photo([faces[i] for i in chosen], seed=seed)[0])

    at.file_uploader(key=Key.UPLOADS).set_value(("warm-up.jpg", photo(1000), "image/jpeg"))
    start = time.perf_counter()
    at.run()
    print(f"first photo (model load, grad-cam import): {time.perf_counter() - start:.2f} s")
    times = []
    for seed in range(args.photos):
        at.file_uploader(key=Key.UPLOADS).set_value((f"photo-{seed}.jpg", photo(seed), "image/jpeg"))
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        assert not at.exception, at.exception
    print(
        f"new photo with {args.faces} faces, model loaded: median {statistics.median(times):.3f} s, "
        f"max {max(times):.3f} s over {len(times)} photos"
    )


if __name__ == "__main__":
    main()
