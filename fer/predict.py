"""Classification of faces and whole photos: the API the CLI and the app are built on.

classifier = load_classifier()               # shipped weights, sha256-checked
probs = classifier.predict_proba(faces)      # (N, 48, 48) uint8 -> (N, 4)
result = Predictor(classifier).predict(path_or_bytes)   # photo -> every face, boxed and classified
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fer import quantize
from fer.checkpoint import load_model, read_checkpoint, weights_path
from fer.config import CLASSES
from fer.errors import FerError, ImageError, WeightsError
from fer.faces import MAX_FACES, Box, Detector, Face, FaceDetector, align_face, reading_order
from fer.images import LoadedImage, load_image
from fer.model import FerNet, LogitsAndEmbedding, to_tensor
from fer.preprocess import FACE_SIZE, to_face_array

NO_FACE_NOTE = "no face found"
NO_FACE_HINT = (
    "faces must show both eyes and be at least ~2% of the photo's longer side; "
    "a photo that is already a cropped face can be classified whole (--no-detect)"
)
DEFAULT_UNCERTAINTY_THRESHOLD = 0.5  # for weights without a fitted threshold: top probability below 0.5


def uncertainty_scores(probs: np.ndarray) -> np.ndarray:
    """1 - top calibrated probability: 0 for a certain face, up to 0.75 for a uniform guess. The
    uncertainty of weights without an "another expression" head (see fer.calibrate)."""
    return 1.0 - np.asarray(probs).max(axis=1)


def other_expression_scores(embeddings, head: dict) -> np.ndarray:
    """The "another expression" head: a logistic score in [0, 1] from the pooled features (fer.calibrate)."""
    z = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32) @ torch.as_tensor(head["weight"]).float()
    return torch.sigmoid(z + float(head["bias"])).numpy()


def _inference_copy(model: FerNet, meta: dict) -> torch.nn.Module:
    """The fast copy used for predictions, x -> (logits, pooled features): the shipped int8 model where
    the CPU supports it, else fp32 with BatchNorm folded into the convolutions, in channels-last layout."""
    int8_state = meta.get("int8_state_dict")
    if int8_state and quantize.available():
        try:
            return quantize.from_state_dict(model, int8_state)
        except (KeyError, RuntimeError, TypeError) as error:
            raise WeightsError(f"The int8 part of the weights does not match the model: {error}") from error
    from torch.fx.experimental.optimization import fuse

    return fuse(LogitsAndEmbedding.of(model)).to(memory_format=torch.channels_last).eval()


class Classifier:
    """The trained model with its calibration: 48x48 grayscale faces in, class probabilities out.

    Thread-safe: inference runs on a frozen copy without hooks or state. `model` is the plain
    network (for Grad-CAM, which needs hooks and gradients).
    """

    classes = CLASSES

    def __init__(self, model: FerNet, meta: dict | None = None, tta: bool | None = None):
        self.model = model.eval()
        self.meta = meta or {}
        self.temperature = float(self.meta.get("temperature", 1.0))
        # The share of people who would call a face each class is these logits at another T (fer.calibrate).
        people = self.meta.get("people_temperature")
        self.people_temperature = float(people) if people is not None else None
        # Faces whose uncertainty reaches this are flagged "may be another expression". The uncertainty is
        # the "another expression" head's score where the weights have one, else 1 - top probability.
        self.other_expression_head = self.meta.get("other_expression_head")
        self.uncertainty_threshold = float(self.meta.get("uncertainty_threshold", DEFAULT_UNCERTAINTY_THRESHOLD))
        # Flip TTA: on or off as asked, else as the weights were shipped (`fer card --tta` calibrated them for it).
        self.tta = _served_with_tta(self.meta) if tta is None else tta
        # The network predictions run on: int8 where supported (a gain measured on whole photos and on
        # the Dataset page's splits, docs/reliability.md), else fp32 with BatchNorm folded.
        self.inference_network = _inference_copy(model, self.meta)
        self.precision = "int8" if self.meta.get("int8_state_dict") and quantize.available() else "fp32"

    def with_tta(self, tta: bool) -> Classifier:
        """This classifier (the same weights, no copy) with flip test-time augmentation on or off."""
        if tta == self.tta:
            return self
        other = copy.copy(self)
        other.tta = tta
        return other

    @staticmethod
    def to_batch(faces) -> torch.Tensor:
        """(N, 48, 48) uint8 (or a list of such arrays) -> float tensor (N, 1, 48, 48) in [0, 1]."""
        array = np.asarray(faces)
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3 or array.shape[1:] != (FACE_SIZE, FACE_SIZE):
            raise ImageError(f"Faces must be {FACE_SIZE}x{FACE_SIZE} grayscale arrays, got shape {array.shape}.")
        if array.dtype != np.uint8:
            raise ImageError(f"Faces must be uint8 arrays (0-255), got {array.dtype}.")
        return to_tensor(array)

    @torch.no_grad()
    def outputs(self, faces, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw logits (N, 4) and pooled features (N, C); with TTA both are averaged over the mirror image."""
        x = self.to_batch(faces)
        logits, embeddings = [], []
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size].contiguous(memory_format=torch.channels_last)
            if self.tta:  # the faces and their mirror images in one pass (cheaper than two), then averaged
                both_logits, both_embeddings = self.inference_network(torch.cat([batch, torch.flip(batch, dims=[3])]))
                n = len(batch)
                logits.append((both_logits[:n] + both_logits[n:]) / 2)
                embeddings.append((both_embeddings[:n] + both_embeddings[n:]) / 2)
            else:
                batch_logits, batch_embeddings = self.inference_network(batch)
                logits.append(batch_logits)
                embeddings.append(batch_embeddings)
        if not logits:
            return torch.zeros(0, len(CLASSES)), torch.zeros(0, self.model.config.widths[-1])
        return torch.cat(logits), torch.cat(embeddings)

    def logits(self, faces, batch_size: int = 256) -> torch.Tensor:
        return self.outputs(faces, batch_size)[0]

    @property
    def uncertainty_name(self) -> str:
        if self.other_expression_head is not None:
            return "another-expression score (logistic head on the pooled features, fitted on train)"
        return "1 - max calibrated probability"

    def uncertainty(self, probs: np.ndarray, embeddings) -> np.ndarray:
        """Per face: the "another expression" score where the weights have that head, else 1 - top probability."""
        if self.other_expression_head is not None:
            return other_expression_scores(embeddings, self.other_expression_head)
        return uncertainty_scores(probs)

    def predict(self, faces, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities (N, 4) in `CLASSES` order and each face's uncertainty (N,)."""
        logits, embeddings = self.outputs(faces, batch_size)
        probs = torch.softmax(logits / self.temperature, dim=1).numpy()
        return probs, self.uncertainty(probs, embeddings)

    def predict_proba(self, faces, batch_size: int = 256) -> np.ndarray:
        """Calibrated probabilities, shape (N, 4), columns in `CLASSES` order."""
        return self.predict(faces, batch_size)[0]


def load_classifier(weights: str | os.PathLike | None = None, tta: bool | None = None) -> Classifier:
    """The classifier for `weights` (default: `FER_WEIGHTS`, else the shipped weights/fer_net.pt, sha256-checked).

    `tta`: classify each face and its mirror image and average; None = as the weights were shipped."""
    model, meta = load_model(weights or weights_path())
    return Classifier(model, meta, tta=tta)


def served_with_tta(weights: str | os.PathLike | None = None) -> bool:
    """Whether `weights` are served with flip TTA by default (`fer card --tta`), as `load_classifier` would
    serve them, read from the checkpoint's metadata alone: no network is built (for a settings widget
    that must draw before the model has loaded)."""
    return _served_with_tta(read_checkpoint(weights or weights_path()))


def _served_with_tta(meta: dict) -> bool:
    return bool(meta.get("tta", False))  # weights from before `fer card --tta` were served on one view


# Written out (JSON, CSV, tables) by fer.record.
class Classified:
    """The label and confidence of anything with `probs` (4,) in CLASSES order: a face in a photo or a video."""

    probs: np.ndarray

    @property
    def label(self) -> str:
        return CLASSES[int(np.argmax(self.probs))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probs))


@dataclass
class FaceResult(Classified):
    index: int
    box: Box  # the detector's box on the photo (the whole image with detection off)
    face: np.ndarray  # the 48x48 aligned crop the model saw
    probs: np.ndarray  # (4,) in CLASSES order
    uncertainty: float = 0.0  # the classifier's uncertainty score (Classifier.uncertainty)
    uncertain: bool = False  # uncertainty >= the classifier's threshold: may be another expression
    detection: Face | None = None  # the detector's score and landmarks (None with detection off)


@dataclass
class PhotoResult:
    file: str
    faces: list[FaceResult] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    image: Image.Image | None = None  # the upright RGB photo (None when it could not be read)
    faces_found: int = 0  # before MAX_FACES was applied


class Predictor:
    """The whole photo pipeline: safe decode -> detect faces -> align each to 48x48 -> classify.

    `detector`: any fer.faces.Detector; YuNet's FaceDetector by default."""

    def __init__(self, classifier: Classifier, detector: Detector | None = None):
        self.classifier = classifier
        self.detector = detector or FaceDetector()

    def predict(self, source, name: str | None = None, detect: bool = True) -> PhotoResult:
        """Never raises for a bad file: the result carries an `error` message instead."""
        file = name or (Path(source).name if isinstance(source, str | os.PathLike) else "upload")
        try:
            loaded = load_image(source, name=file)
            return self.predict_loaded(loaded, file, detect)
        except FerError as error:
            return PhotoResult(file=file, error=str(error))
        except MemoryError:
            # Several large photos at once can exhaust memory; that photo fails, the server lives on.
            return PhotoResult(file=file, error=f"Not enough memory to process {file}; use a smaller photo.")

    def predict_loaded(self, loaded: LoadedImage, file: str, detect: bool = True) -> PhotoResult:
        gray = np.asarray(loaded.image.convert("L"))
        notes = list(loaded.notes)
        detections: list[Face | None]
        if detect:
            photo = np.asarray(loaded.image)  # RGB: the detector reads colour
            found_faces = self.detector.detect(photo)
            found = len(found_faces)
            if found > MAX_FACES:
                notes.append(f"{found} faces found: only the {MAX_FACES} largest were classified")
                found_faces = found_faces[:MAX_FACES]
            # The cap keeps the largest; number them as read.
            detections = [
                self.detector.refine(photo, found_faces[i]) for i in reading_order([f.box for f in found_faces])
            ]
            boxes = [f.box for f in detections]
            crops = [align_face(gray, f.landmarks) for f in detections]
        else:
            height, width = gray.shape
            boxes, found, detections = [Box(0, 0, width, height)], 1, [None]
            crops = [to_face_array(Image.fromarray(gray))]
        probs, uncertainty = self.classifier.predict(np.stack(crops)) if crops else (np.zeros((0, len(CLASSES))), [])
        threshold = self.classifier.uncertainty_threshold
        faces = [
            FaceResult(i, box, crop, p, float(u), bool(u >= threshold), detection)
            for i, (box, crop, p, u, detection) in enumerate(zip(boxes, crops, probs, uncertainty, detections))
        ]
        if detect and not faces:
            notes.append(NO_FACE_NOTE)
        return PhotoResult(file=file, faces=faces, notes=notes, image=loaded.image, faces_found=found)
