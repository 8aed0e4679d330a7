"""Shared fixtures: the real dataset (../shared/data), the shipped weights, and photos built from real faces.

Dataset images are only read from ../shared/data (or FER_DATA_DIR) and copied into pytest's temp
folders; none is ever stored in the repository.
"""

from __future__ import annotations

import copy
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer import data
from fer.config import CLASSES
from fer.errors import DataError


@pytest.fixture()
def isolated_app(monkeypatch, tmp_path):
    """For the app's tests: predictions cached in a temp folder, no background import thread, and torch's
    thread count restored after (the app sets it)."""
    import torch

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FER_NO_WARMUP", "1")
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real dataset; tests that need it are skipped, with the reason, on a machine without it."""
    try:
        return data.find_data_dir()
    except DataError as error:
        pytest.skip(f"needs the FER dataset (../shared/data or FER_DATA_DIR): {error}")


@pytest.fixture(scope="session")
def validation(data_root) -> data.FaceSet:
    return data.load_folder(data_root, "validation")


@pytest.fixture(scope="session")
def val_subset(validation) -> data.FaceSet:
    """A fixed, class-stratified subset of validation: the first 100 files of each class (sorted by name)."""
    index = np.concatenate([np.flatnonzero(validation.labels == k)[:100] for k in range(len(CLASSES))])
    return validation.subset(index)


@pytest.fixture(scope="session")
def classifier():
    from fer import load_classifier

    return load_classifier()


@pytest.fixture(scope="session")
def validation_outputs(classifier, validation) -> tuple[np.ndarray, np.ndarray]:
    """The served classifier's raw logits (N, 4) and pooled features for every validation face, scored once."""
    logits, embeddings = classifier.outputs(validation.images)
    return logits.numpy(), embeddings.numpy()


@pytest.fixture(scope="session")
def card() -> dict:
    """The model card of the weights the tests load (the shipped ones unless FER_WEIGHTS says otherwise)."""
    from fer.checkpoint import read_card, weights_path

    found = read_card(weights_path())
    assert found, f"no model card beside {weights_path()}"
    return found


@pytest.fixture(scope="session")
def predictor(classifier):
    from fer import Predictor

    return Predictor(classifier)


def flagging_some(predictor, photo: bytes):
    """The same model and detector with the uncertainty threshold set in the widest gap between the
    uncertainties of `photo`'s faces, so that some of its faces are flagged "may be another expression"
    and some are not: a check of the flag needs faces on both sides of the threshold."""
    from fer import Predictor

    scores = sorted(face.uncertainty for face in predictor.predict(photo).faces)
    assert len(scores) >= 2 and scores[0] < scores[-1], scores
    low, high = max(zip(scores, scores[1:]), key=lambda pair: pair[1] - pair[0])
    classifier = copy.copy(predictor.classifier)
    classifier.uncertainty_threshold = (low + high) / 2
    return Predictor(classifier, predictor.detector)


def copy_images(source: Path, target: Path, per_class: int, offset: int = 0) -> int:
    """Copy `per_class` images of each class folder of `source` into `target`; returns how many."""
    copied = 0
    for name in CLASSES:
        files = sorted((source / name).glob("*.jpg"))[offset : offset + per_class]
        (target / name).mkdir(parents=True, exist_ok=True)
        for file in files:
            shutil.copy(file, target / name / file.name)
            copied += 1
    return copied


@pytest.fixture(scope="session")
def tiny_dataset(data_root, tmp_path_factory) -> Path:
    """A split-layout dataset of real faces: train 80 per class, validation 25 per class, test 10 per class.

    The FERPlus votes file sits beside it, as beside the real dataset, so crowd options take effect.
    """
    root = tmp_path_factory.mktemp("tiny_dataset")
    copy_images(data_root / "train", root / "train", 80)
    copy_images(data_root / "validation", root / "validation", 25)
    copy_images(data_root / "test", root / "test", 10)
    shutil.copy(data.find_votes_file(data_root), root / data.VOTES_FILE)
    return root


def make_photo(faces: list[np.ndarray], size=(900, 700), face_side=200, seed=0):
    """Paste 48x48 faces, enlarged to `face_side`, onto a smooth background in a row.

    Returns the RGB photo and the pasted boxes [x, y, w, h] (left to right).
    """
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    background = (90 + 60 * xx / width + 30 * yy / height).astype(np.uint8)
    photo = Image.fromarray(background).convert("RGB")
    gap = (width - len(faces) * face_side) // (len(faces) + 1)
    boxes = []
    for i, face in enumerate(faces):
        x, y = gap + i * (face_side + gap), (height - face_side) // 2 + (seed * 37 + i * 23) % 40 - 20
        big = Image.fromarray(face).resize((face_side, face_side), Image.Resampling.BICUBIC).convert("RGB")
        photo.paste(big, (x, y))
        boxes.append([x, y, face_side, face_side])
    return photo, boxes


def face_grid(faces: list[np.ndarray], columns: int, side: int = 110, gap: int = 40):
    """Faces enlarged to `side` on a grid over a smooth background: (photo, boxes in grid order)."""
    rows = -(-len(faces) // columns)
    width, height = columns * side + (columns + 1) * gap, rows * side + (rows + 1) * gap
    yy, xx = np.mgrid[0:height, 0:width]
    photo = Image.fromarray((90 + 60 * xx / width + 30 * yy / height).astype(np.uint8)).convert("RGB")
    boxes = []
    for i, face in enumerate(faces):
        x, y = gap + (i % columns) * (side + gap), gap + (i // columns) * (side + gap)
        photo.paste(Image.fromarray(face).resize((side, side), Image.Resampling.BICUBIC).convert("RGB"), (x, y))
        boxes.append([x, y, side, side])
    return photo, boxes


def encode(image: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def detectable_faces(validation, predictor) -> list[np.ndarray]:
    """One validation face per class that the detector finds surely (score > 0.85), tightly boxed, when shown alone.

    A few 48x48 crops get a loose box (the detector boxes the face, not the whole crop); tests that check boxes use these.
    """
    chosen = []
    for k in range(len(CLASSES)):
        for i in np.flatnonzero(validation.labels == k)[:60]:
            photo, (pasted,) = make_photo([validation.images[i]], size=(400, 400))
            found = predictor.detector.detect(np.asarray(photo))
            if len(found) == 1 and found[0].score > 0.85 and iou(found[0].box.as_list(), pasted) > 0.6:
                chosen.append(validation.images[i])
                break
    assert len(chosen) == len(CLASSES), "could not find a detectable face of every class"
    return chosen


@pytest.fixture()
def photo_with_faces(detectable_faces):
    """A 900x700 photo holding three real faces at known boxes."""
    return make_photo(detectable_faces[:3])


@pytest.fixture()
def flagged_photo(predictor, photo_with_faces):
    """Three faces, some flagged "may be another expression" and some not (flagging_some), and the
    threshold used."""
    photo = encode(photo_with_faces[0])
    chosen = flagging_some(predictor, photo)
    result = chosen.predict(photo, name="three faces.jpg")
    assert len(result.faces) == 3
    return result, chosen.classifier.uncertainty_threshold


def expected_flags(faces, threshold: float) -> list[bool]:
    """The flag as the classifier defines it, computed here from each face's uncertainty; both values occur."""
    expected = [bool(face.uncertainty >= threshold) for face in faces]
    assert set(expected) == {True, False}
    return expected


class HaarDetector:
    """A second face detector, written against fer.faces.Detector: OpenCV's bundled Haar cascade. It gives
    boxes only, so each face's landmarks are FACE_TEMPLATE's points placed in its box, and its score is 1."""

    def __init__(self):
        import cv2

        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        assert not self.cascade.empty()
        self.photos = 0  # photos it was asked to read

    def detect(self, image: np.ndarray) -> list:
        import cv2

        from fer.faces import FACE_TEMPLATE, Box, Face
        from fer.preprocess import FACE_SIZE

        self.photos += 1
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        found = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40))
        faces = [
            Face(
                Box(int(x), int(y), int(w), int(h)),
                1.0,
                tuple((float(x + tx * w / FACE_SIZE), float(y + ty * h / FACE_SIZE)) for tx, ty in FACE_TEMPLATE),
            )
            for x, y, w, h in found
        ]
        return sorted(faces, key=lambda f: -f.box.w * f.box.h)

    def refine(self, image: np.ndarray, face):
        return face


def iou(a, b) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    inter = max(0, min(ax2, bx2) - max(a[0], b[0])) * max(0, min(ay2, by2) - max(a[1], b[1]))
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture(scope="session")
def framed_faces(validation, predictor) -> list[np.ndarray]:
    """80 different validation faces that the detector finds alone with a box close to the pasted one.

    The detector boxes the face inside a 48x48 crop, more or less tightly, so faces are picked by
    detection, not by hand.
    """
    chosen = []
    for i in range(0, len(validation), 5):
        photo, boxes = face_grid([validation.images[i]], columns=1)
        found = predictor.detector.detect(np.asarray(photo))
        if len(found) == 1 and found[0].score > 0.85 and iou(found[0].box.as_list(), boxes[0]) > 0.6:
            chosen.append(validation.images[i])
        if len(chosen) == 80:
            return chosen
    pytest.fail("fewer than 80 validation faces are framed well by the detector")


def found_boxes(result) -> list[list[int]]:
    return [face.box.as_list() for face in result.faces]


def assert_boxes_match(found: list[list[int]], expected: list[list[int]], min_iou: float = 0.5):
    assert len(found) == len(expected), (found, expected)
    for box in expected:
        assert max(iou(box, other) for other in found) > min_iou, (box, found)


def cat_face(half: int = 120, dx: int = 20, dy: int = 20) -> Image.Image:
    """scikit-image's cat (read at test time, never stored) cropped close around its face: YuNet boxed
    these crops as faces at up to 0.75 (docs/evaluation.md, "Boxes that are not human faces")."""
    import skimage.data

    cx, cy = 225 + dx, 115 + dy  # about the middle of the cat's face
    return Image.fromarray(skimage.data.chelsea()[max(0, cy - half) : cy + half, max(0, cx - half) : cx + half])


def make_clip(
    frames,
    fps: float = 10,
    fmt: str = "mp4",
    codec: str = "libx264",
    times=None,
    rotation: int = 0,
    audio: bool = False,
    size: tuple[int, int] | None = None,
) -> bytes:
    """Encode RGB uint8 frames into a video in memory (PyAV). `times`: each frame's seconds (a variable
    frame rate); `rotation`: a display-matrix rotation tag (degrees counter-clockwise); `audio`: add a
    silent sound track; `size` (width, height): add the video track before any frame (so a clip of no
    frames still has one). Frames are given as an iterable, so a long clip is never all in memory."""
    from fractions import Fraction

    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=fmt) as container:
        stream = None
        if size is not None:
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
            stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        sound = container.add_stream("aac", rate=16000) if audio else None
        for i, frame in enumerate(frames):
            if stream is None:
                stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "yuv420p"
                if times is not None:
                    stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
                if rotation:
                    stream.set_display_rotation(rotation)
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            if times is not None:
                picture.pts, picture.time_base = round(times[i] * 1000), Fraction(1, 1000)
            for packet in stream.encode(picture):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
        if sound is not None:
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            samples.sample_rate, samples.pts = 16000, 0
            for packet in [*sound.encode(samples), *sound.encode()]:
                container.mux(packet)
    return buffer.getvalue()


CLIP_SIZE = (640, 480)
CLIP_FACE_SIDE = 160


@pytest.fixture(scope="session")
def segment_faces(validation, predictor) -> dict[str, np.ndarray]:
    """A validation face of happy, surprise and neutral that the photo pipeline finds and labels right
    when pasted alone on a 640x480 frame: the video must give the same labels frame after frame."""
    from fer.images import LoadedImage

    chosen = {}
    for name in ("happy", "surprise", "neutral"):
        for i in np.flatnonzero(validation.labels == CLASSES.index(name))[:100]:
            photo, _ = make_photo([validation.images[i]], size=CLIP_SIZE, face_side=CLIP_FACE_SIDE)
            result = predictor.predict_loaded(LoadedImage(photo, "PNG"), "face")
            if len(result.faces) == 1 and result.faces[0].label == name and result.faces[0].confidence > 0.8:
                chosen[name] = validation.images[i]
                break
    assert len(chosen) == 3, f"no clearly {set(CLASSES) - set(chosen)} face among the first 100"
    return chosen


def pasted(faces_at: list[tuple[np.ndarray, int, int]], size=CLIP_SIZE, side=CLIP_FACE_SIDE) -> np.ndarray:
    """A frame: a smooth background with each 48x48 face enlarged to `side` at (x, y)."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    frame = Image.fromarray((90 + 60 * xx / width + 30 * yy / height).astype(np.uint8)).convert("RGB")
    for face, x, y in faces_at:
        frame.paste(Image.fromarray(face).resize((side, side), Image.Resampling.BICUBIC).convert("RGB"), (x, y))
    return np.asarray(frame)


def segments_clip(faces: dict[str, np.ndarray], seconds: int = 4, fps: int = 10) -> bytes:
    """happy for `seconds`, then surprise, then neutral: one person drifting slowly across the frame."""

    def frames():
        for k, name in enumerate(("happy", "surprise", "neutral")):
            for i in range(seconds * fps):
                t = k * seconds * fps + i
                yield pasted([(faces[name], 200 + t, 140 + (t % 7))])

    return make_clip(frames(), fps=fps)
