"""The face dataset: image folders of 48x48 grayscale faces, loaded into memory once.

Two layouts are read: a root with split folders (`train/ validation/ test/`) each holding class
folders, or a plain folder of class folders. Classes are fixed (`CLASSES`); a class folder that is
missing simply has no images. The whole dataset is ~20k tiny images, so it is decoded once into a
uint8 array and training never touches the disk again.
"""

from __future__ import annotations

import csv
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from fer.config import CLASSES, DEFAULT_DATA_DIR, SPLITS, environment
from fer.errors import DataError
from fer.preprocess import to_face_array

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
VOTES_FILE = "ferplus_votes.csv"
# FERPlus vote columns for our four classes, in CLASSES order.
VOTE_COLUMNS = ("happiness", "sadness", "surprise", "neutral")
OUT_OF_SCOPE_VOTES = ("anger", "disgust", "fear", "contempt")
# Every FERPlus vote column: our four, the other expressions, then "unknown" and "not a face".
ALL_VOTE_COLUMNS = VOTE_COLUMNS + OUT_OF_SCOPE_VOTES + ("unknown", "NF")


def find_data_dir(cli_value: str | os.PathLike | None = None) -> Path:
    """The dataset root: a CLI option, else `FER_DATA_DIR`, else ../shared/data/Facial_emotion_images."""
    if cli_value:
        source, path = "--data", Path(cli_value)
    elif environment().data_dir:
        source, path = "FER_DATA_DIR", environment().data_dir
    else:
        source, path = "the default location", DEFAULT_DATA_DIR
    try:
        found = path.is_dir()
    except OSError as error:  # e.g. a name too long for the file system
        raise DataError(
            f"Dataset folder {str(path)[:200]!r} (from {source}) cannot be used: {error.strerror}."
        ) from error
    if not found:
        raise DataError(
            f"Dataset folder not found: {path} (from {source}). Pass --data DIR or set FER_DATA_DIR to a "
            f"folder holding {'/'.join(SPLITS)} split folders or {'/'.join(CLASSES)} class folders."
        )
    return path


def has_splits(root: Path) -> bool:
    return any((root / split).is_dir() for split in SPLITS)


@dataclass
class FaceSet:
    """Faces of one folder: images (N, 48, 48) uint8, labels (N,) class indices, paths relative to `folder`."""

    folder: Path
    images: np.ndarray
    labels: np.ndarray
    paths: list[str]
    split: str | None = None
    _hashes: list[str] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(CLASSES))
        return {name: int(n) for name, n in zip(CLASSES, counts)}

    @property
    def pixel_hashes(self) -> list[str]:
        """sha1 of each image's decoded pixels: equal hashes mean pixel-identical images."""
        if self._hashes is None:
            self._hashes = [hashlib.sha1(image.tobytes()).hexdigest() for image in self.images]
        return self._hashes

    @property
    def keys(self) -> list[str]:
        """Paths relative to the dataset root (`train/happy/1.jpg`), as in the dataset's CSV files."""
        prefix = f"{self.split}/" if self.split else ""
        return [prefix + path for path in self.paths]

    def subset(self, index) -> FaceSet:
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        hashes = [self.pixel_hashes[i] for i in index] if self._hashes is not None else None
        return FaceSet(
            self.folder,
            self.images[index],
            self.labels[index],
            [self.paths[i] for i in index],
            self.split,
            hashes,
        )


def _read_face(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return to_face_array(image)
    except (OSError, ValueError) as error:
        raise DataError(f"Cannot read dataset image {path}: {error}") from error


def list_images(folder: Path) -> tuple[list[str], list[int]]:
    """Relative paths and class indices of the images under `folder`'s class folders, sorted."""
    paths, labels = [], []
    for label, name in enumerate(CLASSES):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        for file in sorted(class_dir.iterdir(), key=lambda p: p.name):
            if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(f"{name}/{file.name}")
                labels.append(label)
    return paths, labels


def load_folder(root: str | os.PathLike, split: str | None = None) -> FaceSet:
    """Load `root/split` (or `root` itself when split is None) as a FaceSet."""
    root = Path(root)
    folder = root / split if split else root
    if not folder.is_dir():
        raise DataError(f"Dataset folder not found: {folder}")
    if not any((folder / name).is_dir() for name in CLASSES):
        hint = (
            f" It has split folders: use --split {next(s for s in SPLITS if (folder / s).is_dir())}."
            if has_splits(folder)
            else ""
        )
        raise DataError(f"No class folders ({', '.join(CLASSES)}) in {folder}.{hint}")
    paths, labels = list_images(folder)
    if not paths:
        raise DataError(f"No images in the class folders of {folder}.")
    with ThreadPoolExecutor(max_workers=4) as pool:
        images = list(pool.map(_read_face, (folder / p for p in paths)))
    return FaceSet(
        folder=folder,
        images=np.stack(images).astype(np.uint8),
        labels=np.asarray(labels, dtype=np.int64),
        paths=paths,
        split=split,
    )


def load_splits(root: str | os.PathLike, splits=SPLITS) -> dict[str, FaceSet]:
    """Load the named split folders that exist under `root`."""
    root = Path(root)
    loaded = {split: load_folder(root, split) for split in splits if (root / split).is_dir()}
    if not loaded:
        raise DataError(f"No split folders ({', '.join(splits)}) in {root}.")
    return loaded


def twins_in(faces: FaceSet, reference: FaceSet) -> np.ndarray:
    """Boolean mask: which of `faces` have a pixel-identical twin in `reference` (e.g. train)."""
    known = set(reference.pixel_hashes)
    return np.array([h in known for h in faces.pixel_hashes], dtype=bool)


def find_votes_file(data_root: Path) -> Path | None:
    """FERPlus votes CSV next to the dataset root (or inside it), if there is one."""
    for candidate in (data_root / VOTES_FILE, data_root.parent / VOTES_FILE):
        if candidate.is_file():
            return candidate
    return None


def load_votes(csv_path: Path) -> dict[str, dict[str, str]]:
    """FERPlus rows keyed by the image path relative to the dataset root."""
    with open(csv_path, newline="") as f:
        return {row["path"]: row for row in csv.DictReader(f)}


def vote_counts(faces: FaceSet, votes: dict[str, dict[str, str]] | None) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the crowd's vote counts in ALL_VOTE_COLUMNS order (zeros without a row), and a mask of
    images that have a row. Every crowd helper below reads the votes through this one."""
    counts = np.zeros((len(faces), len(ALL_VOTE_COLUMNS)), dtype=np.float32)
    has_row = np.zeros(len(faces), dtype=bool)
    for i, key in enumerate(faces.keys):
        row = (votes or {}).get(key)
        if row is not None:
            counts[i] = [float(row[c]) for c in ALL_VOTE_COLUMNS]
            has_row[i] = True
    return counts, has_row


def _shares(counts: np.ndarray) -> np.ndarray:
    """Counts divided by their row total; rows without votes stay zero."""
    total = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def crowd_distribution(faces: FaceSet, votes: dict[str, dict[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the crowd's vote share over our four classes, and a mask of images that have votes.

    Votes for other expressions, 'unknown' and 'not a face' are left out; an image with no vote for
    any of the four classes (or no row at all) gets mask False.
    """
    four = vote_counts(faces, votes)[0][:, : len(VOTE_COLUMNS)]
    return _shares(four), four.sum(axis=1) > 0


def crowd_vote_shares(faces: FaceSet, votes: dict[str, dict[str, str]] | None) -> np.ndarray:
    """Per image, the crowd's vote share over all ten FERPlus columns (ALL_VOTE_COLUMNS); zeros without votes.

    The target of the auxiliary crowd head in training (`fer train --crowd-aux`): all-zero rows add no loss.
    """
    return _shares(vote_counts(faces, votes)[0])


NO_CROWD_LABEL = -1
# Why a face has no crowd label, in the order crowd_labels checks: no row or no votes at all, two or more
# columns share the top count, or the top column is not one of our four classes.
NO_LABEL_REASONS = ("no_votes", "tie", "other_expression", "unknown", "not_a_face")


def crowd_labels(faces: FaceSet, votes: dict[str, dict[str, str]] | None) -> tuple[np.ndarray, dict[str, int]]:
    """Per image, the crowd's label (`crowd_labels_of_counts` on its votes), and how many images lack one,
    by reason. An image without a votes row counts as one without votes."""
    labels, reasons = crowd_labels_of_counts(vote_counts(faces, votes)[0])
    return labels, {reason: int(reasons[reason].sum()) for reason in NO_LABEL_REASONS}


def crowd_labels_of_counts(counts: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The crowd-label rule on vote counts (rows in ALL_VOTE_COLUMNS order): the single most-voted of the
    ten columns when it is one of our four classes (a class index), else NO_CROWD_LABEL; and per reason in
    NO_LABEL_REASONS, a mask of the rows it leaves unlabelled.

    A tie for the top count, a top vote for another expression, "unknown" or "not a face", and a row
    without votes give no label: the crowd did not call it one of our four."""
    top = counts.max(axis=1)
    tied = (counts == top[:, None]).sum(axis=1) > 1
    winner = counts.argmax(axis=1)
    n_four, n_expressions = len(VOTE_COLUMNS), len(VOTE_COLUMNS) + len(OUT_OF_SCOPE_VOTES)
    single = (top > 0) & ~tied
    reasons = {
        "no_votes": top == 0,
        "tie": (top > 0) & tied,
        "other_expression": single & (winner >= n_four) & (winner < n_expressions),
        "unknown": single & (winner == ALL_VOTE_COLUMNS.index("unknown")),
        "not_a_face": single & (winner == ALL_VOTE_COLUMNS.index("NF")),
    }
    labels = np.where(single & (winner < n_four), winner, NO_CROWD_LABEL).astype(np.int64)
    return labels, reasons


def crowd_out_of_scope(faces: FaceSet, votes: dict[str, dict[str, str]]) -> np.ndarray:
    """Mask of images whose crowd majority is an expression outside our four (anger/disgust/fear/contempt).

    None when there are no votes for these images.
    """
    counts, has_row = vote_counts(faces, votes)
    expressions = counts[:, : len(VOTE_COLUMNS) + len(OUT_OF_SCOPE_VOTES)]
    return has_row & (expressions.argmax(axis=1) >= len(VOTE_COLUMNS)) if has_row.any() else None


def crowd_agrees(faces: FaceSet, votes: dict[str, dict[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Masks of images whose crowd majority among our four classes is / is not the folder label.

    Images without a crowd vote for any of the four are in neither. The folder labels are FER2013's own;
    where the crowd reads the face differently (sad faces it calls neutral, above all) no model can be
    right by both, so accuracy on the two groups says how much of the error is label noise.
    """
    dist, has_votes = crowd_distribution(faces, votes)
    same = dist.argmax(axis=1) == faces.labels
    return has_votes & same, has_votes & ~same


VOTE_NAMES = dict(zip(ALL_VOTE_COLUMNS, (*CLASSES, *OUT_OF_SCOPE_VOTES, "unknown", "not a face"), strict=True))


def vote_summary(counts: np.ndarray) -> str:
    """One face's ten vote counts in words, most votes first: 'neutral 6 · sad 3 · anger 1' ('' with none)."""
    order = np.argsort(-np.asarray(counts), kind="stable")
    return " · ".join(f"{VOTE_NAMES[ALL_VOTE_COLUMNS[i]]} {int(counts[i])}" for i in order if counts[i] > 0)


def fer2013_usage(faces: FaceSet, votes: dict[str, dict[str, str]]) -> np.ndarray:
    """Per image, its FER2013 usage (Training / PublicTest / PrivateTest), or '' when unknown."""
    return np.array([votes.get(key, {}).get("fer2013_usage", "") for key in faces.keys])
