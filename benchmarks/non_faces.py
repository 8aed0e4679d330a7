"""Boxes on photos without a person, and faces found, with and without re-framing low boxes (CONFIRM_BELOW).

    python -m benchmarks.non_faces [--data DIR] [--wild DIR]

The whole pipeline (fer.Predictor: detect, refine, align, classify) on:
- non-face photos, all offline: scikit-image's and scikit-learn's sample photos without a person (a cat,
  coffee, a rocket, the moon, textures, a galaxy field, a flower, a temple...), each also in gray,
  mirrored, turned (15, 30, 90, 180 degrees), as nine enlarged crops, shrunk and tiled; scikit-image's cat
  with its face cropped at 45 framings (the closest offline stand-in for an animal portrait); 60 generated
  textures; the 100 non-face patches of scikit-image's lfw_subset, enlarged to 100 px. Variants of one photo
  are not independent: read the counts per group.
- faces: wild_dev (faces/ and other/, one person per photo), dataset faces pasted alone (test and 400
  validation faces enlarged 5x, as in benchmarks/face_detectors.py), and group photos built as the tests
  build them (three faces in a row, six on a grid); the people in scikit-image's and matplotlib's samples.
A photo "has a face" when the pipeline returns at least one; a pasted face is found when a box's centre lies
in it. Nothing is written; photos are read from the installed packages and the data folders.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import skimage.data
from PIL import Image
from sklearn.datasets import load_sample_images

from benchmarks.face_detectors import NON_FACES
from fer.data import find_data_dir, list_images, load_folder
from fer.faces import CONFIRM_BELOW, FaceDetector
from fer.predict import Predictor, load_classifier

# The face detector benchmark's non-face samples, and two more.
SAMPLES = (*NON_FACES, "microaneurysms", "shepp_logan_phantom")


class Unconfirmed(FaceDetector):
    """YuNet as it ran before: every box at MIN_FACE_SCORE or more is a face."""

    def detect(self, image, confirm=False):
        return super().detect(image, confirm=False)


def rgb(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    elif image.dtype != np.uint8:
        image = (image.astype(np.float64) * (255 if image.max() <= 1 else 1)).clip(0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def variants(image: np.ndarray) -> list[np.ndarray]:
    h, w = image.shape[:2]
    out = [image, rgb(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)), np.ascontiguousarray(image[:, ::-1])]
    for angle in (-30, -15, 15, 30, 90, 180):
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        out.append(cv2.warpAffine(image, turn, (w, h), borderMode=cv2.BORDER_REFLECT))
    for i in range(3):
        for j in range(3):
            crop = image[i * h // 4 : i * h // 4 + h // 2, j * w // 4 : j * w // 4 + w // 2]
            out.append(cv2.resize(crop, (w, h), interpolation=cv2.INTER_CUBIC))
    for scale in (0.25, 0.5):
        out.append(cv2.resize(image, (max(16, int(w * scale)), max(16, int(h * scale))), interpolation=cv2.INTER_AREA))
    pair = np.hstack([image, image[:, ::-1]])
    out.append(cv2.resize(np.vstack([pair, pair]), (w, h), interpolation=cv2.INTER_AREA))
    out.append(np.vstack([np.hstack([image, image[:, ::-1], image])] * 3))
    return out


def cat_faces() -> list[np.ndarray]:
    cat, (cx, cy) = rgb(skimage.data.chelsea()), (225, 115)  # about the middle of the cat's face
    out = []
    for half in (60, 80, 100, 120, 150):
        for dx in (-20, 0, 20):
            for dy in (-20, 0, 20):
                out.append(cat[max(0, cy + dy - half) : cy + dy + half, max(0, cx + dx - half) : cx + dx + half])
    return out


def textures(n: int = 60, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w, h = (int(v) for v in rng.integers(200, 640, 2))
        kind = i % 4
        if kind == 0:  # smooth colour noise
            coarse = (rng.random((int(rng.integers(3, 20)), int(rng.integers(3, 20)), 3)) * 255).astype(np.uint8)
            image = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        elif kind == 1:  # blurred blobs
            image = np.full((h, w, 3), rng.integers(0, 255, 3), np.uint8)
            for _ in range(int(rng.integers(3, 30))):
                centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
                colour = tuple(int(v) for v in rng.integers(0, 255, 3))
                cv2.circle(image, centre, int(rng.integers(5, 80)), colour, -1)
            image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.5, 4)))
        elif kind == 2:  # white noise
            image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        else:  # waves
            yy, xx = np.mgrid[0:h, 0:w]
            f = rng.uniform(0.02, 0.3)
            image = rgb((np.sin(xx * f) * np.sin(yy * f * rng.uniform(0.5, 2)) * 127 + 128).astype(np.uint8))
        out.append(np.ascontiguousarray(image))
    return out


def non_face_groups() -> dict[str, list[np.ndarray]]:
    photos = [rgb(getattr(skimage.data, name)()) for name in SAMPLES]
    photos += [rgb(image) for image in load_sample_images().images]
    sample_data = Path(matplotlib.get_data_path()) / "sample_data"
    photos += [
        rgb(Image.open(sample_data / name).convert("RGB")) for name in ("logo2.png", "Minduka_Present_Blue_Pack.png")
    ]
    patches = skimage.data.lfw_subset()[100:]  # the second half of lfw_subset: patches that are not faces
    return {
        f"{len(photos)} sample photos without a person": photos,
        f"the same, {len(variants(photos[0]))} variants each": [v for p in photos for v in variants(p)],
        "scikit-image's cat, face cropped 45 ways": cat_faces(),
        "generated textures": textures(),
        "lfw_subset non-face patches": [
            rgb(cv2.resize((p * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC)) for p in patches
        ],
    }


def pasted(face: np.ndarray, scale: int = 5) -> tuple[np.ndarray, list[int]]:
    side = 48 * scale
    canvas = np.full((side * 2, side * 2), 128, np.uint8)
    canvas[side // 2 : side // 2 + side, side // 2 : side // 2 + side] = cv2.resize(
        face, (side, side), interpolation=cv2.INTER_CUBIC
    )
    return rgb(canvas), [[side // 2, side // 2, side, side]]


def group(faces: list[np.ndarray], columns: int, side: int) -> tuple[np.ndarray, list[list[int]]]:
    """Faces enlarged to `side` on a grid over a smooth background, as tests/conftest.py builds them."""
    gap, rows = 40, -(-len(faces) // columns)
    width, height = columns * side + (columns + 1) * gap, rows * side + (rows + 1) * gap
    yy, xx = np.mgrid[0:height, 0:width]
    photo = (90 + 60 * xx / width + 30 * yy / height).astype(np.uint8)
    boxes = []
    for i, face in enumerate(faces):
        x, y = gap + (i % columns) * (side + gap), gap + (i // columns) * (side + gap)
        photo[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        boxes.append([x, y, side, side])
    return rgb(photo), boxes


def found(result, boxes) -> int:
    centres = [(f.box.x + f.box.w / 2, f.box.y + f.box.h / 2) for f in result.faces]
    return sum(any(x <= cx <= x + w and y <= cy <= y + h for cx, cy in centres) for x, y, w, h in boxes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", help="dataset root (default: FER_DATA_DIR or ../shared/data)")
    parser.add_argument("--wild", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/wild_dev"))
    args = parser.parse_args()
    classifier = load_classifier()
    pipelines = {"before": Predictor(classifier, Unconfirmed()), "now": Predictor(classifier, FaceDetector())}

    def run(image: np.ndarray):
        return {name: p.predict_loaded(_loaded(image), "photo") for name, p in pipelines.items()}

    print(f"Boxes under {CONFIRM_BELOW} must be found again on a re-framed view (now) or not (before).\n")
    print("| non-face photos | photos | with a face, before | with a face, now |")
    print("|---|---:|---:|---:|")
    for name, images in non_face_groups().items():
        counts = np.array([[bool(r.faces) for r in run(image).values()] for image in images]).sum(axis=0)
        print(f"| {name} | {len(images)} | {counts[0]} | {counts[1]} |")

    wild = Path(args.wild)
    root = find_data_dir(args.data)
    test, val = load_folder(root, "test"), load_folder(root, "validation")
    rng = np.random.default_rng(0)
    sets = {
        "wild_dev faces/ (one person a photo)": [
            (_read(wild / "faces" / p), None) for p in list_images(wild / "faces")[0]
        ],
        "wild_dev other/": [(_read(p), None) for p in sorted((wild / "other").rglob("*.png"))],
        "test faces pasted alone": [pasted(f) for f in test.images],
        "400 validation faces pasted alone": [pasted(val.images[i]) for i in rng.permutation(len(val))[:400]],
        "group photos: 40 x 3 faces in a row": [
            group([val.images[i] for i in rng.choice(len(val), 3, replace=False)], 3, 200) for _ in range(40)
        ],
        "group photos: 20 x 6 faces on a grid": [
            group([val.images[i] for i in rng.choice(len(val), 6, replace=False)], 3, 110) for _ in range(20)
        ],
        "people in the package samples (astronaut, cameraman, Grace Hopper)": [
            (rgb(skimage.data.astronaut()), None),
            (rgb(skimage.data.camera()), None),
            (rgb(Image.open(Path(matplotlib.get_data_path()) / "sample_data/grace_hopper.jpg").convert("RGB")), None),
        ],
    }
    print("\n| faces | faces (photos) | found, before | found, now |")
    print("|---|---:|---:|---:|")
    for name, items in sets.items():
        total, counts = 0, np.zeros(2, int)
        for image, boxes in items:
            results = list(run(image).values())
            if boxes is None:  # one person a photo: found when the photo has a face
                total += 1
                counts += [bool(r.faces) for r in results]
            else:
                total += len(boxes)
                counts += [found(r, boxes) for r in results]
        print(f"| {name} | {total} | {counts[0]} | {counts[1]} |")


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _loaded(image: np.ndarray):
    from fer.images import LoadedImage

    return LoadedImage(Image.fromarray(image), "PNG")


if __name__ == "__main__":
    main()
