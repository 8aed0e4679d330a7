"""First paint of the app's navigation on a freshly started server, in Chromium.

    python -m benchmarks.first_paint [--runs 3] [--paths / /dataset /explain /report /video /live] [--timeout 60]

Each measurement starts a fresh `streamlit run` (FER_NO_WARMUP=1), waits for its health check and only
then opens the URL, so a deep link (/dataset) is its server's first request. Times are from the health
check's first answer to the moment the sidebar (or top bar) shows the real pages (Predict, Explain,
Video, Live camera, Dataset, Model report) as links. The browser records every change of the navigation
links as it happens (a MutationObserver), so a brief flash of a listing of page files ("streamlit app",
"dataset", ...: what Streamlit's auto-discovered pages/ folder would show) is seen even if it lasts one
frame; the table says what was painted first, whether such a file name was ever shown, and which page
and URL the visitor ended on. Target: the real navigation within 2 s, never a file listing.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    *("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"),
    *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
]
REAL = ("Predict", "Explain", "Video", "Live camera", "Dataset", "Model report")
# Only a listing of page files shows these (file names, lower case; the real menu says "Predict").
V1_NAMES = ("streamlit app", "common", "predict", "explain", "dataset", "report", "video", "live")
TITLES = {  # each page's st.title
    "Predict emotions in a photo": "/",
    "Explain a prediction": "/explain",
    "Dataset explorer": "/dataset",
    "Model report": "/report",
    "Expressions over time in a video": "/video",
    "Live camera": "/live",
}
CAPTION = "A demo, not for decisions about people"  # streamlit_app.py's sidebar caption: the app ran

# Runs in the page before Streamlit's own code: logs [ms since epoch, links, titles, caption shown] on
# every change of the navigation links (sidebar, top bar) or of the page title.
RECORDER = """
(() => {
  const CAPTION_TEXT = '__CAPTION__';
  window.__navLog = [];
  let last = null;
  const visible = (e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const snap = () => {
    const links = [...document.querySelectorAll(
        '[data-testid="stSidebar"] a, [data-testid="stHeader"] a, header a, [data-testid="stToolbar"] a')]
      .filter(visible).map((a) => a.innerText.trim().split('\\n').pop().trim()).filter((t) => t);  // drop icon names
    const titles = [...document.querySelectorAll('h1')].filter(visible).map((h) => h.innerText.trim());
    const caption = document.body ? document.body.innerText.includes(CAPTION_TEXT) : false;
    const key = JSON.stringify([links, titles, caption]);
    if (key !== last) { last = key; window.__navLog.push([Date.now(), links, titles, caption]); }
  };
  new MutationObserver(snap).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
})();
""".replace("__CAPTION__", CAPTION)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    env = {**os.environ, "FER_NO_WARMUP": "1"}
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--browser.gatherUsageStats", "false"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_healthy(port: int, timeout: float) -> float:
    """time.time() of the health check's first answer."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return time.time()
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"the server did not answer within {timeout:.0f} s")


def real_nav(links: list[str]) -> bool:
    return all(name in links for name in REAL)


def describe(links: list[str]) -> str:
    if not links:
        return "-"
    if real_nav(links):
        return "real nav"
    if set(links) <= set(REAL):
        return "real nav, partly: " + ", ".join(links)
    if any(name in V1_NAMES for name in links):
        return "file listing: " + ", ".join(links)
    return ", ".join(links)


def measure(browser, path: str, timeout: float) -> dict:
    port = free_port()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_init_script(RECORDER)
    page = context.new_page()
    server = start_server(port)
    try:
        healthy = wait_healthy(port, timeout)
        page.goto(f"http://localhost:{port}{path}", wait_until="commit")
        end = time.monotonic() + timeout
        log: list = []
        while time.monotonic() < end:
            log = page.evaluate("window.__navLog || []")
            # Done once the real navigation, the page's title and the caption all show (or the time runs out).
            if log and real_nav(log[-1][1]) and log[-1][2] and log[-1][3]:
                break
            time.sleep(0.05)
        time.sleep(1.0)  # let a late rerun (if any) change what is shown
        log = page.evaluate("window.__navLog || []")
        final_path = page.evaluate("location.pathname")
    finally:
        context.close()
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    first_links = next((entry for entry in log if entry[1]), None)
    first_real = next((entry for entry in log if real_nav(entry[1])), None)
    first_title = next((entry for entry in log if entry[2]), None)
    last = log[-1] if log else [0, [], [], False]
    shown_v1 = sorted({name for entry in log for name in entry[1] if name in V1_NAMES})
    return {
        "path": path,
        "first_nav_s": (first_links[0] / 1000 - healthy) if first_links else None,
        "first_nav": describe(first_links[1]) if first_links else "nothing",
        "real_nav_s": (first_real[0] / 1000 - healthy) if first_real else None,
        "title_s": (first_title[0] / 1000 - healthy) if first_title else None,
        "v1_shown": ", ".join(shown_v1) or "no",
        "final_title": ", ".join(last[2]) or "-",
        "final_path": final_path,
        "caption": "yes" if last[3] else "no",
        "ok": bool(first_real) and not shown_v1 and TITLES.get(", ".join(last[2])) == path and bool(last[3]),
    }


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="fresh servers per path for / (default 3)")
    parser.add_argument("--deep-runs", type=int, default=1, help="fresh servers per other path (default 1)")
    parser.add_argument("--paths", nargs="+", default=["/", "/dataset", "/explain", "/report", "/video", "/live"])
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait per step (default 60)")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for path in args.paths:
                for _ in range(args.runs if path == "/" else args.deep_runs):
                    rows.append(measure(browser, path, args.timeout))
                    row = rows[-1]
                    print(
                        f"  {path}: real nav {seconds(row['real_nav_s'])} s, first {row['first_nav']}", file=sys.stderr
                    )
        finally:
            browser.close()

    header = (
        "URL",
        "first nav (s)",
        "first nav painted",
        "real nav (s)",
        "title (s)",
        "file names shown",
        "ended on",
        "title",
        "caption",
        "ok",
    )
    table = [header] + [
        (
            r["path"],
            seconds(r["first_nav_s"]),
            r["first_nav"],
            seconds(r["real_nav_s"]),
            seconds(r["title_s"]),
            r["v1_shown"],
            r["final_path"],
            r["final_title"],
            r["caption"],
            "yes" if r["ok"] else "NO",
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for number, row in enumerate(table):
        print(" | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))
        if number == 0:
            print("-+-".join("-" * width for width in widths))
    slow = [r for r in rows if r["real_nav_s"] is None or r["real_nav_s"] > 2.0]
    print(
        f"\n{len(rows) - len(slow)} of {len(rows)} within 2 s; {sum(r['ok'] for r in rows)} of {len(rows)} ok "
        "(real nav, no file names, the URL's page with the app's caption)"
    )
    sys.exit(0 if not slow and all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
