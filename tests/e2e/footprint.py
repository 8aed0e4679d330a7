"""What a process leaves on disk: snapshots of folders, and which paths a run may write (privacy tests).

Used by tests/test_privacy.py (the app in-process) and tests/e2e/test_privacy_served.py (the served app).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from conftest import encode, make_photo
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "artifacts"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def watched_dirs(temp_dir: Path) -> list[Path]:
    home = Path.home()
    return [ROOT, temp_dir, home / ".cache", home / ".streamlit"]  # the working dir, temp dir and cache dirs


def snapshot(dirs: list[Path], allowed: list[Path]) -> dict[str, tuple[int, int]]:
    """Every file and folder under `dirs` (path -> size, mtime), leaving out tool caches and `allowed`."""
    seen = {}
    for top in dirs:
        for folder, subdirs, files in os.walk(top):
            here = Path(folder)
            subdirs[:] = [d for d in subdirs if d not in SKIP_DIRS and not is_allowed(here / d, allowed)]
            for name in [*subdirs, *files]:
                path = here / name
                try:
                    stat = path.lstat()
                except OSError:
                    continue
                seen[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return seen


def is_allowed(path: Path | str, allowed: list[Path]) -> bool:
    path = Path(path)
    return path == Path(os.devnull) or any(path == a or a in path.parents for a in allowed)


def changed(before: dict, after: dict) -> list[str]:
    """New paths, and files whose size or time changed (folders' times change whenever a child does)."""
    return sorted(p for p, v in after.items() if p not in before or (before[p] != v and not Path(p).is_dir()))


def mentions(paths: list[str], marker: str) -> list[str]:
    """The files among `paths` whose bytes contain `marker`."""
    found = []
    for path in paths:
        try:
            if Path(path).is_file() and marker.encode() in Path(path).read_bytes():
                found.append(path)
        except OSError:
            continue
    return found


def phone_sized_png(faces: list[np.ndarray]) -> bytes:
    """A PNG of real faces on a noisy 1800x1400 background: several MB, like a phone photo; faces still found.

    Over the 1 MB at which a web server may spool a request body to a temp file on disk.
    """
    photo, _ = make_photo(faces, size=(1800, 1400), face_side=300)
    pixels = np.asarray(photo, dtype=np.int16)
    noise = np.random.default_rng(0).integers(-6, 7, pixels.shape[:2])[..., None]
    data = encode(Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8)), "PNG")
    assert len(data) > 2 * 2**20
    return data
