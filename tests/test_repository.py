"""What the repository holds: no dataset or photo-set image is ever committed (they are read from ../shared)."""

import csv
import hashlib
import shutil
import subprocess

import pytest

from fer.config import PROJECT_ROOT

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")


@pytest.fixture(scope="module")
def tracked_images() -> dict[str, str]:
    """sha256 of every image file git tracks."""
    if shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout
    images = [f for f in files.splitlines() if f.lower().endswith(IMAGE_SUFFIXES)]
    return {
        f: hashlib.sha256((PROJECT_ROOT / f).read_bytes()).hexdigest() for f in images if (PROJECT_ROOT / f).is_file()
    }


def test_no_dataset_image_is_committed(tracked_images, data_root):
    manifest = data_root.parent / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"no dataset manifest at {manifest}")
    with manifest.open() as f:
        dataset = {row["file_sha256"] for row in csv.DictReader(f)}
    assert len(dataset) > 10_000
    assert [f for f, sha in tracked_images.items() if sha in dataset] == []


def test_no_wild_dev_photo_is_committed(tracked_images, data_root):
    wild = data_root.parent / "wild_dev"
    if not wild.is_dir():
        pytest.skip(f"no wild_dev photo set at {wild}")
    photos = {hashlib.sha256(p.read_bytes()).hexdigest() for p in wild.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
    assert len(photos) > 1_000
    assert [f for f, sha in tracked_images.items() if sha in photos] == []


def test_the_quick_start_makes_a_virtual_environment_before_it_installs():
    # A newcomer copies the first command: it must not install 6 GB into the system Python.
    readme = (PROJECT_ROOT / "README.md").read_text()
    quick_start = readme[readme.index("## Quick start") :]
    venv = quick_start.index("python -m venv .venv && . .venv/bin/activate")
    assert venv < quick_start.index("pip install -r requirements.txt && streamlit run streamlit_app.py")
    checks = "python -m ruff check . && lint-imports && python -m pytest"  # what CI runs, as the README says
    assert venv < quick_start.index(f"pip install -r requirements-dev.txt && {checks}")
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert f"pip install -q -r requirements-dev.txt && {checks}" in ci


def test_the_virtual_environment_is_ignored_by_git():
    if shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "-q", ".venv/bin/python"], cwd=PROJECT_ROOT, check=False)
    assert ignored.returncode == 0
