"""Every cache of the app, and every model call and disk read a page needs: the model, explainer, model
card, photo and face results, saliency maps, dataset splits and the report's export, each cached
(st.cache_resource / st.cache_data; one cache per kind of answer) and keyed by the weights file's stamp,
so new weights dropped in while the app runs are picked up on the next rerun. What a session keeps
between reruns is in app.session."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import streamlit as st

from app import session
from fer.checkpoint import card_path_for, read_card, weights_path
from fer.config import environment
from fer.errors import DataError, FerError


def _file_stamp(path: Path) -> tuple[str, int, int]:
    """Path, mtime and size: new weights dropped in while the app runs are picked up on the next rerun."""
    try:
        stat = path.stat()
        return str(path), stat.st_mtime_ns, stat.st_size
    except OSError:
        return str(path), 0, 0


def weights_stamp() -> tuple[str, int, int]:
    return _file_stamp(weights_path())


@st.cache_resource(show_spinner="Loading the model...", max_entries=2)
def _classifier(stamp):
    from app.setup import use_torch_threads
    from fer.predict import load_classifier

    use_torch_threads()  # before the first torch work of the process
    return load_classifier()


def classifier():
    return _classifier(weights_stamp())


@st.cache_resource(show_spinner=False, max_entries=4)
def _predictor(stamp, tta: bool):
    from fer.predict import Predictor

    return Predictor(_classifier(stamp).with_tta(tta))


def _resolved(tta: bool | None) -> bool:
    """None means as the weights are served: resolved before the caches, so one setting is one entry."""
    return shipped_tta() if tta is None else tta


def predictor(tta: bool | None = None):
    """The photo pipeline; `tta` also classifies each face mirrored and averages (one batch of two: about
    twice the model time); None: as the weights are served."""
    return _predictor(weights_stamp(), _resolved(tta))


@st.cache_resource(show_spinner=False, max_entries=2)
def _explainer(stamp):
    from fer.explain import Explainer

    return Explainer.for_classifier(_classifier(stamp))


def explainer():
    return _explainer(weights_stamp())


@st.cache_data(show_spinner=False, max_entries=2)
def _card(stamp) -> dict | None:
    return read_card(weights_path())


def card() -> dict | None:
    """The model card beside the shipped weights (None when there is none)."""
    return _card(_file_stamp(card_path_for(weights_path())))


def people_reading() -> dict | None:
    """What `app.results.people_would_say` needs from the model card: the probabilities' temperature, the
    people's temperature and its share reliability (None where the weights were not calibrated to the
    crowd's votes)."""
    found = card() or {}
    people = (found.get("calibration") or {}).get("people") or {}
    if not people.get("share_reliability") or found.get("temperature") is None:
        return None
    return {
        "bins": people["share_reliability"],
        "temperature": float(found["temperature"]),
        "people_temperature": float(people["temperature"]),
    }


def digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


@st.cache_resource(show_spinner=False, max_entries=16, ttl=3600)
def _predict(data: bytes, name: str, detect: bool, stamp, tta: bool):
    # In memory only (uploads never touch the disk); the same bytes are not decoded twice.
    return _predictor(stamp, tta).predict(data, name=name, detect=detect)


def predict_photo(data: bytes, name: str, detect: bool = True, tta: bool | None = None):
    return _predict(data, name, detect, weights_stamp(), _resolved(tta))


@st.cache_resource(show_spinner=False, max_entries=16, ttl=3600)
def _photo_for_display(data: bytes, name: str, detect: bool, stamp, tta: bool):
    from app.results import for_display

    return for_display(_predict(data, name, detect, stamp, tta))


def photo_for_display(data: bytes, name: str, detect: bool = True, tta: bool | None = None):
    """The photo's result as the Predict page shows it (app.results.ShownPhoto), cached like `predict_photo`."""
    return _photo_for_display(data, name, detect, weights_stamp(), _resolved(tta))


def classify(files: list[tuple[str, bytes]], tta: bool) -> list:
    """Every photo given, and every photo inside a zip, through fer.batch with a progress bar: the Predict
    page's app.results.Photo list. Done once per set of files and setting in a session (kept in its memory,
    and dropped as soon as the files are removed: app.session.forget_photos)."""
    from app.results import Photo, escape_markdown, for_display
    from fer.batch import is_archive_name, predict_batch

    signature = (weights_stamp(), tta, tuple((name, digest(data)) for name, data in files))
    done = session.classified(signature)
    if done is not None:
        return done
    bar = st.progress(0.0, text="Finding and classifying faces...")
    photos = []
    for n, (name, data) in enumerate(files):

        def progress(finished: int, total: int, file: str, n=n) -> None:
            count = f" ({finished:,} of {total:,})" if total > 1 else ""
            bar.progress((n + finished / total) / len(files), text=f"Classified {escape_markdown(file)}{count}")

        shown = predict_batch(predictor(tta), [(name, data)], progress=progress, keep=for_display)
        key = digest(data)
        if is_archive_name(name):
            photos += [Photo(f"{key}-{i}", member, None) for i, member in enumerate(shown)]
        else:
            photos.append(Photo(key, shown[0], data))
    bar.empty()
    session.keep_classified(signature, photos)
    return photos


def with_whole_images(photos: list, tta: bool) -> list:
    """The photos, those the user asked to classify as one face classified so (app.session.classify_whole)."""
    whole = session.whole_images()
    return [
        photo._replace(shown=photo_for_display(photo.data, photo.shown.result.file, detect=False, tta=tta))
        if photo.data is not None and photo.key in whole
        else photo
        for photo in photos
    ]


@st.cache_data(show_spinner=False, max_entries=64)
def _face_probs(face: np.ndarray, tta: bool, stamp) -> np.ndarray:
    return _classifier(stamp).with_tta(tta).predict_proba(face[None])[0]


def face_probs(face: np.ndarray, tta: bool | None = None) -> np.ndarray:
    """One 48x48 face's probabilities (`tta`: also the mirrored face; None: as served)."""
    return _face_probs(np.asarray(face, dtype=np.uint8), _resolved(tta), weights_stamp())


@st.cache_data(show_spinner=False, max_entries=256)
def _cams(faces: np.ndarray, method: str, targets: tuple, layer: str, stamp) -> np.ndarray:
    return _explainer(stamp).cams(faces, method, list(targets), layer)


def cams(faces: np.ndarray, method: str, targets, layer: str) -> np.ndarray:
    """Saliency maps for a batch of faces (cached: moving the opacity slider recomputes nothing)."""
    return _cams(np.asarray(faces, dtype=np.uint8), method, tuple(int(t) for t in targets), layer, weights_stamp())


@st.cache_data(show_spinner=False)
def sample_photo() -> bytes:
    from app.results import sample_photo as load

    return load()


@st.cache_data(show_spinner=False, max_entries=2)
def _served_with_tta(stamp) -> bool:
    from fer.predict import served_with_tta

    return served_with_tta()


def shipped_tta() -> bool:
    """Whether the weights are served with flip TTA by default (`fer card --tta`); False if they do not load.

    Read from the checkpoint's metadata, not the loaded classifier: the sidebar draws at once on a first
    visit, while the model loads in the background warm-up or for the first photo."""
    try:
        return _served_with_tta(weights_stamp())
    except FerError:  # the page that needs the model says what is wrong with it
        return False


def data_dir_setting_allowed() -> bool:
    return environment().allow_data_dir_setting


def data_root() -> tuple[Path | None, str | None]:
    """The dataset folder (the page's setting where allowed, else FER_DATA_DIR, else ../shared/data/...) or why there is none.

    The reason may name server paths: pages show it only in the "Dataset location" expander.
    """
    from fer.data import find_data_dir

    setting = None
    if data_dir_setting_allowed():
        setting = session.data_dir_setting()
    try:
        root = find_data_dir(setting)
    except DataError as error:
        return None, str(error)
    if not _has_images(root):
        from fer.config import CLASSES

        return None, f"No {'/'.join(CLASSES)} image folders under {root}."
    return root, None


def data_dir_placeholder() -> str:
    """What the Dataset folder field shows while empty: FER_DATA_DIR, else the default folder."""
    from fer.config import DEFAULT_DATA_DIR

    return str(environment().data_dir or DEFAULT_DATA_DIR)


def _has_images(root: Path) -> bool:
    from fer.config import CLASSES, SPLITS

    folders = [root / s for s in SPLITS] + [root]
    return any((folder / name).is_dir() and any((folder / name).iterdir()) for folder in folders for name in CLASSES)


def splits_in(root: Path) -> list[str]:
    """Split folders of the dataset; [''] for a plain folder of class folders."""
    from fer.config import SPLITS

    found = [s for s in SPLITS if (root / s).is_dir()]
    return found or [""]


@st.cache_resource(show_spinner=False, max_entries=6)
def load_split(root: str, split: str):
    from fer.data import load_folder

    return load_folder(root, split or None)


def class_images(root: str, split: str, name: str) -> np.ndarray:
    """Indices of the split's images in the class folder `name`."""
    from fer.config import CLASSES

    return np.flatnonzero(load_split(root, split).labels == CLASSES.index(name))


@st.cache_data(show_spinner=False, max_entries=4)
def class_balance(root: str) -> dict[str, dict[str, int]]:
    """Images per class in each split folder ("all" for a plain folder of class folders), counted from the
    file names (no image is decoded)."""
    from fer.config import CLASSES
    from fer.data import list_images

    balance = {}
    for split in splits_in(Path(root)):
        _, labels = list_images(Path(root) / split if split else Path(root))
        balance[split or "all"] = {name: labels.count(i) for i, name in enumerate(CLASSES)}
    return balance


@st.cache_data(show_spinner=False, max_entries=6)
def split_flags(root: str, split: str) -> list[str]:
    """Duplicate / conflicting-label flags for the split, from duplicate_groups.csv or the pixels."""
    from fer import browse

    faces = load_split(root, split)
    csv_file = browse.find_duplicates_file(Path(root))
    if csv_file is not None:
        groups = browse.read_duplicate_groups(csv_file)
    else:
        groups = browse.groups_from_pixels({s: load_split(root, s) for s in splits_in(Path(root))})
    return browse.duplicate_flags(faces, groups)


@st.cache_data(show_spinner=False, max_entries=6)
def split_votes(root: str, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The FERPlus crowd's ten vote counts (N, 10) and labels (N,; data.NO_CROWD_LABEL where none) for the
    split's faces; None where there is no votes file or it has no row for them."""
    from fer import data

    votes_file = data.find_votes_file(Path(root))
    if votes_file is None:
        return None
    faces = load_split(root, split)
    votes = data.load_votes(votes_file)
    counts, has_row = data.vote_counts(faces, votes)
    return (counts, data.crowd_labels(faces, votes)[0]) if has_row.any() else None


def split_predictions(root: str, split: str, tta: bool | None = None) -> np.ndarray:
    """The split's probabilities (`tta`: with the mirrored face too; None: as served); a progress bar shows
    while they are computed the first time."""
    from fer import browse

    faces = load_split(root, split)
    placeholder = st.empty()

    def progress(done: int, total: int) -> None:
        placeholder.progress(done / total, text=f"Classifying the {split or 'dataset'} images: {done:,} of {total:,}")

    probs = browse.split_predictions(classifier().with_tta(_resolved(tta)), faces, progress=progress)
    placeholder.empty()
    return probs


RANDOM = "Random map (baseline)"  # the best of fer.explain.RANDOM_MAPS random maps on the face


@st.cache_data(show_spinner=False, max_entries=64)
def _all_methods(face: np.ndarray, target: int, layer: str, stamp) -> tuple[dict, dict, dict]:
    """Maps and faithfulness scores of every method for one face, under RANDOM the best-scoring random map,
    and the random baseline: {"bar": score to beat, "mean", "sd", "count"} (fer.explain.random_bar)."""
    from fer.explain import METHODS

    explainer = _explainer(stamp)
    maps = {method: explainer.cams(face[None], method, [target], layer)[0] for method in METHODS}
    names = list(maps)
    scores = explainer.faithfulness(
        np.repeat(face[None], len(names), axis=0), np.stack([maps[n] for n in names]), [target] * len(names)
    )
    best_map, best_score, baseline = _random_baseline(face, target, stamp)
    return {**maps, RANDOM: best_map}, {**dict(zip(names, scores, strict=True)), RANDOM: best_score}, baseline


@st.cache_data(show_spinner=False, max_entries=64)
def _random_baseline(face: np.ndarray, target: int, stamp) -> tuple[np.ndarray, dict, dict]:
    """The random maps scored on one face (they do not depend on the layer): the best one, its score, and
    the bar a method must beat."""
    from fer.explain import random_bar, random_maps

    maps = random_maps(shape=face.shape)
    scores = _explainer(stamp).faithfulness(np.repeat(face[None], len(maps), axis=0), maps, [target] * len(maps))
    road = np.array([s["road"] for s in scores])
    best = int(road.argmax())
    baseline = {"bar": random_bar(road), "mean": float(road.mean()), "sd": float(road.std(ddof=1)), "count": len(road)}
    return maps[best], scores[best], baseline


@st.cache_data(show_spinner=False, max_entries=64)
def _maps_per_class(face: np.ndarray, method: str, layer: str, stamp) -> np.ndarray:
    """One map per class (CLASSES order) for one face."""
    return _explainer(stamp).class_maps(face, method, layer)


def all_methods(face: np.ndarray, target: int, layer: str) -> tuple[dict, dict, dict]:
    """Maps and faithfulness scores of every method and of the best random map (RANDOM) for one 48x48 face,
    and the random baseline ({"bar", "mean", "sd", "count"})."""
    return _all_methods(face, target, layer, weights_stamp())


def maps_per_class(face: np.ndarray, method: str, layer: str) -> np.ndarray:
    """(4, 48, 48): one map per class, in CLASSES order, for one face."""
    return _maps_per_class(face, method, layer, weights_stamp())


def validation_reliability() -> dict | None:
    """Reliability bins from the validation predictions, when the Dataset page already computed them."""
    from fer import browse
    from fer.metrics import expected_calibration_error, reliability_bins

    root, _ = data_root()
    if root is None or "validation" not in splits_in(root):
        return None
    faces = load_split(str(root), "validation")
    probs = browse.cached_predictions(classifier(), faces)
    if probs is None:
        return None
    return {
        "bins": reliability_bins(probs, faces.labels),
        "bins_before": None,
        "ece": expected_calibration_error(probs, faces.labels),
        "split": "validation",
    }


def weights_size() -> int | None:
    """The weights file's size in bytes; None where there is no file."""
    path, _, size = weights_stamp()
    return size if Path(path).is_file() else None


@st.cache_data(show_spinner=False, max_entries=2)
def report_download(card: dict, size: int | None, reliability: dict | None) -> bytes:
    """The Model report as one self-contained HTML file (app.report.report_html)."""
    from app.report import report_html

    return report_html(card, weights_bytes=size, reliability=reliability).encode("utf-8")


@st.cache_data(show_spinner=False, max_entries=32)
def _video_frame(digest: str, _data: bytes, name: str, time: float, faces_key: tuple, _faces) -> bytes:
    from PIL import Image

    from app.results import jpeg_bytes
    from fer.video import draw_faces, frame_at

    return jpeg_bytes(Image.fromarray(draw_faces(frame_at(_data, time, name), _faces)))


def video_frame(data: bytes, name: str, frame) -> bytes:
    """The video's frame at that sampled moment with its faces boxed and labelled, as JPEG (decoded again
    from the upload in memory: frames are not kept)."""
    faces_key = tuple((f.person, *f.box.as_list(), f.label) for f in frame.faces)
    return _video_frame(digest(data), data, name, round(frame.time, 3), faces_key, frame.faces)
