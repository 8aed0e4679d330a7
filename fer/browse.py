"""Browsing a dataset split through the model's eyes: predictions, verdict filters, confusion cells, flags.

    probs = split_predictions(classifier, faces, progress=callback)   # once per model and split, then cached
    index = select(faces.labels, probs, true="sad", predicted="neutral")
    flags = duplicate_flags(faces, groups)                           # exact duplicates / conflicting labels

Predictions for a whole split are cached in memory and on disk (`.cache/predictions/`, or
`FER_CACHE_DIR`), keyed by a fingerprint of the weights and of the images, so new weights or a changed
dataset never reuse stale numbers. Only probabilities are written, never images. `fer card` ships the
validation split's predictions of the shipped weights in weights/predictions/ (the same file format
and key), so the Dataset page's first visit computes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer.config import CLASSES, WEIGHTS_DIR, environment
from fer.data import FaceSet
from fer.evaluate import score_faces
from fer.predict import Classifier

VERDICTS = ("all", "right", "wrong", "most confident mistakes", "least confident")
DUPLICATES_FILE = "duplicate_groups.csv"

SHIPPED_DIR = WEIGHTS_DIR / "predictions"
MEMORY_ENTRIES = 8  # split predictions kept in memory (a few hundred KB each); the disk cache keeps the rest
_memory: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_memory_lock = threading.Lock()


def _remember(key: tuple[str, str], probs: np.ndarray) -> None:
    with _memory_lock:
        _memory[key] = probs
        _memory.move_to_end(key)
        while len(_memory) > MEMORY_ENTRIES:
            _memory.popitem(last=False)


def cache_dir() -> Path:
    return environment().cache_dir


def model_fingerprint(classifier: Classifier) -> str:
    """sha1 of the weights, temperature, test-time augmentation and precision: what the probabilities depend on.

    The precision matters: the same weights give other probabilities in fp32 (where int8 is not
    available) than through their int8 copy, which `fer card` derives from these float weights."""
    digest = hashlib.sha1()
    for name, tensor in classifier.model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    digest.update(f"{classifier.temperature!r}|{classifier.tta!r}|{classifier.precision}".encode())
    return digest.hexdigest()


def faces_fingerprint(faces: FaceSet) -> str:
    """sha1 of the pixels and labels, in order."""
    digest = hashlib.sha1(np.ascontiguousarray(faces.images).tobytes())
    digest.update(np.asarray(faces.labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def _cache_file(folder: Path, key: tuple[str, str]) -> Path:
    return folder / f"probs-{key[0][:16]}-{key[1][:16]}.npy"


def cached_predictions(classifier: Classifier, faces: FaceSet, folder: Path | None = None) -> np.ndarray | None:
    """The split's probabilities if they were computed before (memory or disk), else None; computes nothing."""
    key = (model_fingerprint(classifier), faces_fingerprint(faces))
    return _lookup(key, folder or cache_dir(), len(faces))


def _lookup(key: tuple[str, str], folder: Path, n: int) -> np.ndarray | None:
    with _memory_lock:
        if key in _memory:
            _memory.move_to_end(key)
            return _memory[key]
    for place in (folder, SHIPPED_DIR):
        try:
            probs = np.load(_cache_file(place, key), allow_pickle=False)
        except (OSError, ValueError):
            continue
        if probs.shape == (n, len(CLASSES)):
            _remember(key, probs)
            return probs
    return None


def split_predictions(
    classifier: Classifier,
    faces: FaceSet,
    progress: Callable[[int, int], None] | None = None,
    folder: Path | None = None,
) -> np.ndarray:
    """(N, 4) probabilities for every face of the split; `progress(done, total)` is called while computing."""
    folder = folder or cache_dir()
    key = (model_fingerprint(classifier), faces_fingerprint(faces))
    probs = _lookup(key, folder, len(faces))
    if probs is not None:
        return probs
    probs = score_faces(classifier, faces.images, progress)[1]
    probs.setflags(write=False)
    _remember(key, probs)
    try:  # the disk cache is a convenience: a read-only checkout still works
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{os.getpid()}-{threading.get_ident()}.npy"
        np.save(tmp, probs, allow_pickle=False)
        os.replace(tmp, _cache_file(folder, key))
    except OSError:
        pass
    return probs


def ship_predictions(classifier: Classifier, faces: FaceSet, folder: Path = SHIPPED_DIR) -> Path:
    """Write the split's predictions where the app looks after its own cache (`fer card`), replacing any
    shipped for other weights; returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("probs-*.npy"):
        old.unlink()
    probs = score_faces(classifier, faces.images)[1]
    file = _cache_file(folder, (model_fingerprint(classifier), faces_fingerprint(faces)))
    np.save(file, probs.astype(np.float32), allow_pickle=False)
    return file


def clear_memory_cache() -> None:
    with _memory_lock:
        _memory.clear()


def select(
    labels: np.ndarray,
    probs: np.ndarray,
    true: str | None = None,
    predicted: str | None = None,
    verdict: str = "all",
    only: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of the faces matching every filter, in browsing order.

    true / predicted: a class name or None for any. verdict: one of VERDICTS; 'most confident mistakes'
    sorts the wrong ones by confidence (highest first), 'least confident' sorts all by confidence
    (lowest first); otherwise dataset order. only: an optional boolean mask (e.g. flagged images).
    A label below 0 means the face has none in this truth (no crowd label): it is neither right nor wrong.
    """
    if verdict not in VERDICTS:
        raise ValueError(f"Unknown verdict {verdict!r}; choose one of {VERDICTS}.")
    labels = np.asarray(labels)
    preds = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    mask = np.ones(len(labels), dtype=bool)
    if true is not None:
        mask &= labels == CLASSES.index(true)
    if predicted is not None:
        mask &= preds == CLASSES.index(predicted)
    if verdict == "right":
        mask &= preds == labels
    elif verdict in ("wrong", "most confident mistakes"):
        mask &= (preds != labels) & (labels >= 0)
    if only is not None:
        mask &= np.asarray(only, dtype=bool)
    index = np.flatnonzero(mask)
    if verdict == "most confident mistakes":
        index = index[np.argsort(-confidence[index], kind="stable")]
    elif verdict == "least confident":
        index = index[np.argsort(confidence[index], kind="stable")]
    return index


# -- duplicates and conflicting labels ---------------------------------------------------------------


@dataclass(frozen=True)
class DuplicateGroup:
    """Pixel-identical images: their sha1 and members as dataset keys ('train/happy/1.jpg')."""

    pixel_sha1: str
    members: tuple[str, ...]

    @property
    def labels(self) -> list[str]:
        return sorted({member.split("/")[-2] for member in self.members})

    @property
    def splits(self) -> list[str]:
        return sorted({member.split("/")[0] for member in self.members if member.count("/") >= 2})

    @property
    def conflicting(self) -> bool:
        return len(self.labels) > 1


def find_duplicates_file(data_root: Path) -> Path | None:
    """The dataset's duplicate_groups.csv, inside the dataset root or beside it."""
    for candidate in (Path(data_root) / DUPLICATES_FILE, Path(data_root).parent / DUPLICATES_FILE):
        if candidate.is_file():
            return candidate
    return None


def read_duplicate_groups(csv_path: Path) -> list[DuplicateGroup]:
    with open(csv_path, newline="") as f:
        return [DuplicateGroup(row["pixel_sha1"], tuple(row["members"].split())) for row in csv.DictReader(f)]


def groups_from_pixels(splits: dict[str, FaceSet]) -> list[DuplicateGroup]:
    """Duplicate groups computed from the pixel hashes of the given splits (for a dataset without the CSV)."""
    members: dict[str, list[str]] = {}
    for faces in splits.values():
        for key, digest in zip(faces.keys, faces.pixel_hashes, strict=True):
            members.setdefault(digest, []).append(key)
    return [DuplicateGroup(digest, tuple(sorted(keys))) for digest, keys in members.items() if len(keys) > 1]


def duplicate_flags(faces: FaceSet, groups: list[DuplicateGroup]) -> list[str]:
    """Per face, a short flag ('' when none): exact duplicates and where the copies are, conflicting labels.

    A CSV group is applied to a face only when the face's own pixels have the group's sha1, so a list
    made for another version of the dataset cannot flag the wrong images.
    """
    by_key = {member: group for group in groups for member in group.members}
    flags = []
    for key, digest in zip(faces.keys, faces.pixel_hashes, strict=True):
        group = by_key.get(key)
        if group is None or group.pixel_sha1 != digest:
            flags.append("")
            continue
        others = [m for m in group.members if m != key]
        where = ", ".join(sorted({m.split("/")[0] for m in others if m.count("/") >= 2})) or "this split"
        flag = f"duplicate of {len(others)} ({where})"
        if group.conflicting:
            flag = f"conflicting labels ({' / '.join(group.labels)}); " + flag
        flags.append(flag)
    return flags
