"""Haar cascade vs YuNet, side by side: faces found, non-faces boxed, time per photo; prints a Markdown table.

    python -m benchmarks.face_detectors [--data DIR] [--wild DIR]

- dataset faces: each 48x48 face of the test split (and 400 validation faces) enlarged 5x and pasted on a
  plain background; found = a box whose centre lies inside the pasted face.
- wild_dev photos (`../shared/data/wild_dev/faces`, one person per frame): photos with no face and with
  exactly one face; YuNet's score of the largest face.
- non-faces: scikit-image's sample photos without a person (cat, coffee, rocket, moon, textures, ...).
- time: one ~1 MP photo (3 dataset faces pasted on a photo background), 1 thread, median of 30.
Haar runs as the app ran it before YuNet (frontal cascade, equalised, min face 4% of the shorter side).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from PIL import Image

from fer.data import find_data_dir, list_images, load_folder
from fer.faces import DETECT_MAX_SIDE, FaceDetector

NON_FACES = (
    "chelsea",
    "coffee",
    "rocket",
    "brick",
    "grass",
    "gravel",
    "hubble_deep_field",
    "moon",
    "page",
    "text",
    "coins",
    "horse",
    "clock",
    "logo",
    "retina",
    "cell",
    "colorwheel",
    "immunohistochemistry",
)


class Haar:
    """The cascade the app used before YuNet, kept here only for the comparison."""

    def __init__(self):
        self.cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))

    def detect(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        scale = min(1.0, 1280 / max(gray.shape))
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
        small = cv2.equalizeHist(small)
        side = max(20, int(0.04 * min(small.shape)))
        found = self.cascade.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
        return [tuple(int(v / scale) for v in box) for box in np.asarray(found).reshape(-1, 4)]


class YuNet:
    def __init__(self):
        self.detector = FaceDetector()

    def detect(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        return [tuple(f.box.as_list()) for f in self.detector.detect(image)]


def sample(name: str) -> np.ndarray:
    """A scikit-image sample as uint8 RGB or gray (some are stored as floats, bools or RGBA)."""
    image = np.asarray(getattr(skimage.data, name)())
    if image.dtype != np.uint8:
        image = (image.astype(np.float64) * (255 if image.max() <= 1 else 1)).clip(0, 255).astype(np.uint8)
    return image[..., :3] if image.ndim == 3 else image


def pasted(face: np.ndarray, scale: int = 5) -> np.ndarray:
    side = 48 * scale
    canvas = np.full((side * 2, side * 2), 128, np.uint8)
    canvas[side // 2 : side // 2 + side, side // 2 : side // 2 + side] = cv2.resize(
        face, (side, side), interpolation=cv2.INTER_CUBIC
    )
    return canvas


def found_centre(boxes, low: float, high: float) -> bool:
    return any(low <= x + w / 2 <= high and low <= y + h / 2 <= high for x, y, w, h in boxes)


def one_megapixel(faces: np.ndarray) -> np.ndarray:
    photo = cv2.resize(skimage.data.coffee(), (1200, 840))  # ~1 MP
    for i, face in enumerate(faces[:3]):
        big = cv2.cvtColor(cv2.resize(face, (160, 160), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2RGB)
        photo[200 : 200 + 160, 150 + 350 * i : 310 + 350 * i] = big
    return photo


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", help="dataset root (default: FER_DATA_DIR or ../shared/data)")
    parser.add_argument("--wild", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/wild_dev"))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    root = find_data_dir(args.data)
    test = load_folder(root, "test")
    val = load_folder(root, "validation")
    val_sample = val.images[np.random.default_rng(0).permutation(len(val))[:400]]
    paths, _ = list_images(Path(args.wild) / "faces")
    photos = [np.asarray(Image.open(Path(args.wild) / "faces" / p).convert("RGB")) for p in paths]
    rows = []
    for name, detector in (("Haar cascade", Haar()), ("YuNet", YuNet())):
        side = 240
        test_found = sum(found_centre(detector.detect(pasted(f)), side / 2, side * 1.5) for f in test.images)
        val_found = sum(found_centre(detector.detect(pasted(f)), side / 2, side * 1.5) for f in val_sample)
        counts = np.array([len(detector.detect(p)) for p in photos])
        non_faces = sum(len(detector.detect(sample(n))) for n in NON_FACES)
        photo = one_megapixel(test.images)
        times = []
        for _ in range(33):
            start = time.perf_counter()
            detector.detect(photo)
            times.append(time.perf_counter() - start)
        rows.append(
            f"| {name} | {test_found}/{len(test)} | {val_found}/{len(val_sample)} | {(counts == 0).mean():.1%} | "
            f"{(counts == 1).mean():.1%} | {non_faces} in {len(NON_FACES)} | {statistics.median(times[3:]) * 1e3:.1f} ms |"
        )
    print(f"wild_dev: {len(photos)} photos; YuNet at most {DETECT_MAX_SIDE} px a side, 1 thread\n")
    print(
        "| detector | test faces pasted, found | validation faces pasted, found | wild_dev: no face | wild_dev: exactly one | boxes on non-face photos | 1 MP photo |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
