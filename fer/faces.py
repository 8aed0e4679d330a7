"""Faces in a photo: YuNet finds each face and five landmarks, `align_face` frames it like the training faces.

`FaceDetector` runs YuNet (OpenCV's `FaceDetectorYN`, weights shipped in weights/ and sha256-checked);
`align_face` levels the eyes and puts the landmarks where FER2013's faces have theirs, giving the 48x48
face the network reads. Photos come from fer.images.load_image. Another detector plugs in wherever YuNet
does (`Predictor(classifier, detector)`, `evaluate_photos(..., detector=detector)`) by implementing
`Detector`.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from fer.errors import ImageError
from fer.preprocess import FACE_SIZE, to_face_array

MAX_FACES = 50  # the largest faces are kept when a photo holds more
DETECT_MAX_SIDE = 640  # photos are shrunk to this for detection (YuNet finds faces from ~10 px); boxes are mapped back
DETECT_MIN_SHORT = 128  # ...but a long strip keeps at least this short side, so its faces stay findable
DETECT_MAX_PIXELS = 4_000_000  # ...within this many pixels
# The face detector, shipped in weights/ with its licences (weights/FACE_DETECTOR.md); checked at load.
DETECTOR_FILE = Path(__file__).resolve().parents[1] / "weights" / "face_detection_yunet_2023mar.onnx"
DETECTOR_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
MIN_FACE_CONTRAST = 1.0  # levels (std, per colour channel) below which a box is flat, not a face
MIN_FACE_SCORE = 0.6  # YuNet's score below which a box is dropped as not a face (benchmarks/face_detectors.py)
# A box scoring less than this is a face only if YuNet finds it again, at MIN_FACE_SCORE, on the photo re-framed
# around it: false boxes (an animal's face, an object turned over) vanish when framed anew, real faces stay
# (benchmarks/non_faces.py, docs/evaluation.md). Every false box measured scored below it.
CONFIRM_BELOW = 0.8
CONFIRM_CONTEXTS = (1.5, 2.5)  # the re-framed views: a square this many times the box's size around its centre...
CONFIRM_SIDE = 320  # ...scaled to this side, as it is and mirrored
# Where the training faces have their five landmarks in the 48x48 frame: the median over the validation
# faces YuNet finds when they are enlarged and pasted on a plain background (benchmarks/face_framing.py).
FACE_TEMPLATE = ((14.99, 18.70), (32.81, 18.66), (23.92, 28.81), (16.50, 36.12), (31.85, 35.95))
REFINE_SIDE = 320  # a tilted face is detected again on a square this size, turned upright
REFINE_ROUNDS = 4  # each round a detection on a REFINE_SIDE square: a few ms
REFINE_MIN_TILT = 15.0  # degrees; below this the landmarks are taken as they are (training turns faces by up to 12)
ALIGN_OVERSAMPLE = 4  # the face is warped at 4x (192 px) and area-averaged to 48, as a camera would


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


# The five landmarks YuNet gives, in its order; "right" and "left" are the person's own.
LANDMARK_NAMES = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")


@dataclass(frozen=True)
class Face:
    """One detected face: its box, the detector's score (0-1) and five landmarks in photo pixels."""

    box: Box
    score: float
    landmarks: tuple[tuple[float, float], ...]  # (x, y) for each of LANDMARK_NAMES

    def landmarks_dict(self) -> dict[str, list[float]]:
        return {name: [round(x, 1), round(y, 1)] for name, (x, y) in zip(LANDMARK_NAMES, self.landmarks)}


@runtime_checkable
class Detector(Protocol):
    """What fer.predict.Predictor, and so `fer evaluate --detect`, needs of a face detector; `FaceDetector` is one."""

    def detect(self, image: np.ndarray) -> list[Face]:
        """The faces in a uint8 RGB (H, W, 3) photo, largest first (Predictor keeps the first MAX_FACES): each
        a Box on the photo, a score in [0, 1] and five (x, y) landmarks in LANDMARK_NAMES order, in photo pixels
        (`align_face` frames the face by them)."""
        ...

    def refine(self, image: np.ndarray, face: Face) -> Face:
        """`face` with its landmarks measured again for alignment, called on each face kept; a detector that has
        no better measure returns `face`."""
        ...


class FaceDetector(Detector):
    """YuNet (OpenCV's `FaceDetectorYN`, weights/face_detection_yunet_2023mar.onnx): a small CNN face
    detector that gives a score and five landmarks per face. One network per thread (OpenCV's dnn nets
    are not thread-safe); the file's sha256 is checked once, when the detector is made."""

    def __init__(self, min_score: float = MIN_FACE_SCORE, model: str | os.PathLike = DETECTOR_FILE):
        import cv2  # imported here: only detection and alignment need OpenCV

        self._cv2 = cv2
        self.model = Path(model)
        if not self.model.is_file():
            raise ImageError(f"The face detector {self.model} is missing; restore weights/ from the repository.")
        if self.model.resolve() == DETECTOR_FILE.resolve():
            digest = hashlib.sha256(self.model.read_bytes()).hexdigest()
            if digest != DETECTOR_SHA256:
                raise ImageError(
                    f"The face detector {self.model} is corrupt or was modified (sha256 {digest[:12]}..., "
                    f"expected {DETECTOR_SHA256[:12]}...); restore it from the repository."
                )
        self.min_score = min_score
        self._local = threading.local()

    def _network(self):
        if not hasattr(self._local, "net"):
            # Below min_score nothing is kept; NMS 0.3 and top_k as in OpenCV's own YuNet sample.
            self._local.net = self._cv2.FaceDetectorYN.create(
                str(self.model), "", (320, 320), self.min_score, 0.3, 5000
            )
        return self._local.net

    def detect(self, image: np.ndarray, confirm: bool = True) -> list[Face]:
        """All faces in a uint8 RGB (H, W, 3) or grayscale (H, W) image, largest first (callers apply MAX_FACES).

        The image is shrunk so its longer side is at most DETECT_MAX_SIDE; boxes and landmarks are mapped back.
        `confirm`: a box scoring under CONFIRM_BELOW is kept only if it is found again (`found_again`)."""
        cv2 = self._cv2
        height, width = image.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(height, width))
        if min(height, width) * scale < DETECT_MIN_SHORT:  # a panorama strip: shrink it less
            scale = min(1.0, DETECT_MIN_SHORT / min(height, width), (DETECT_MAX_PIXELS / (height * width)) ** 0.5)
        if min(height, width) * scale < 10:  # YuNet's smallest face; on a few-pixel strip it reports nonsense
            return []
        small = image
        if scale < 1:
            size = (round(width * scale), round(height * scale))
            # Area averaging where the photo shrinks by more than half (fine detail would alias); a
            # milder shrink is bilinear, several times cheaper at the same detections (docs/evaluation.md).
            interpolation = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
            small = cv2.resize(image, size, interpolation=interpolation)
        bgr = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR if small.ndim == 2 else cv2.COLOR_RGB2BGR)
        net = self._network()
        net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, found = net.detect(bgr)
        sx, sy = width / bgr.shape[1], height / bgr.shape[0]
        faces = []
        rows = np.asarray(found if found is not None else [], dtype=np.float64).reshape(-1, 15)
        for row in rows[np.isfinite(rows).all(axis=1)]:  # on flat images YuNet can return infinite boxes
            x, y, w, h = row[0] * sx, row[1] * sy, row[2] * sx, row[3] * sy
            # YuNet's boxes may reach past the photo; clip them so a box always lies on the photo.
            left, top = max(0, round(x)), max(0, round(y))
            right, bottom = min(width, round(x + w)), min(height, round(y + h))
            if right - left < 2 or bottom - top < 2:
                continue
            points = tuple((float(px * sx), float(py * sy)) for px, py in row[4:14].reshape(5, 2))
            cx, cy = np.mean(points, axis=0)
            if not (x <= cx <= x + w and y <= cy <= y + h):  # a face's landmarks lie in its box
                continue
            # A face has contrast: on flat areas (a blank strip) YuNet can report confident boxes.
            sx0, sy0 = max(0, int(row[0])), max(0, int(row[1]))  # the box on the shrunk image
            region = bgr[sy0 : max(sy0 + 1, int(row[1] + row[3])), sx0 : max(sx0 + 1, int(row[0] + row[2]))]
            if region.size == 0 or float(region.reshape(-1, 3).std(axis=0).max()) < MIN_FACE_CONTRAST:
                continue
            faces.append(Face(Box(left, top, right - left, bottom - top), float(row[14]), points))
        if confirm:
            faces = [f for f in faces if f.score >= CONFIRM_BELOW or self.found_again(image, f)]
        return sorted(faces, key=lambda f: (-f.box.w * f.box.h, f.box.y, f.box.x))

    def found_again(self, image: np.ndarray, face: Face) -> bool:
        """Whether YuNet finds `face` again on the photo re-framed around it (CONFIRM_CONTEXTS, each as it
        is and mirrored): a box whose centre lies near the view's centre, at the detector's own bar."""
        cx, cy = face.box.x + face.box.w / 2, face.box.y + face.box.h / 2
        side = CONFIRM_SIDE
        for context in CONFIRM_CONTEXTS:
            scale = side / (context * max(face.box.w, face.box.h))
            view = _warp(image, np.array([[scale, 0, side / 2 - scale * cx], [0, scale, side / 2 - scale * cy]]), side)
            for candidate in (view, np.ascontiguousarray(view[:, ::-1])):
                for found in self.detect(candidate, confirm=False):
                    x, y = found.box.x + found.box.w / 2, found.box.y + found.box.h / 2
                    if abs(x - side / 2) < side / 8 and abs(y - side / 2) < side / 8:
                        return True
        return False

    def refine(self, image: np.ndarray, face: Face, rounds: int = REFINE_ROUNDS) -> Face:
        """`face` with its landmarks measured again on the face turned upright.

        YuNet's landmarks understate a tilt (a face turned by 40 degrees reads as about 20-25), so a face
        that reads as tilted by REFINE_MIN_TILT or more is turned by the tilt its landmarks show and
        detected again, until the turned face reads as level or `rounds` are done; the last landmarks are
        mapped back onto the photo. The box and score stay the first detection's."""
        cv2 = self._cv2
        points = np.asarray(face.landmarks, dtype=np.float64)
        if abs(_tilt(points)) < REFINE_MIN_TILT:
            return face
        side = REFINE_SIDE
        for _ in range(rounds):
            tilt, centre = _tilt(points), points.mean(axis=0)
            scale = side / (2.5 * max(face.box.w, face.box.h))
            turn = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), tilt, scale)
            turn[:, 2] += side / 2 - centre
            upright = _warp(image, turn, side)
            found = self.detect(upright, confirm=False)  # only the landmarks are wanted here
            if not found:
                break
            nearest = min(found, key=lambda f: np.hypot(*(np.mean(f.landmarks, axis=0) - side / 2)))
            back = cv2.invertAffineTransform(turn)
            points = np.asarray(nearest.landmarks) @ back[:, :2].T + back[:, 2]
            if abs(_tilt(np.asarray(nearest.landmarks))) < 2:  # level once turned: done
                break
        return Face(face.box, face.score, tuple((float(x), float(y)) for x, y in points))


def _warp(image: np.ndarray, matrix: np.ndarray, side: int) -> np.ndarray:
    """cv2.warpAffine of `image` by the 2x3 `matrix` onto a `side` x `side` square, edges replicated.

    Only the part of the image the square maps onto is passed to OpenCV, which refuses images with a
    side of 32,767 pixels or more (a long panorama strip passes load_image's limits)."""
    import cv2

    corners = np.array([[0, 0], [side, 0], [0, side], [side, side]], np.float64)
    back = cv2.invertAffineTransform(matrix)
    mapped = corners @ back[:, :2].T + back[:, 2]
    height, width = image.shape[:2]
    # Two pixels of margin for the bilinear neighbours; at least one pixel so a face off the photo still
    # samples the replicated edge, as a warp of the whole photo would.
    x0 = int(np.clip(np.floor(mapped[:, 0].min()) - 2, 0, width - 1))
    y0 = int(np.clip(np.floor(mapped[:, 1].min()) - 2, 0, height - 1))
    x1 = int(np.clip(np.ceil(mapped[:, 0].max()) + 3, x0 + 1, width))
    y1 = int(np.clip(np.ceil(mapped[:, 1].max()) + 3, y0 + 1, height))
    shifted = matrix.astype(np.float64).copy()
    shifted[:, 2] += shifted[:, :2] @ np.array([x0, y0], np.float64)
    region = np.ascontiguousarray(image[y0:y1, x0:x1])
    return cv2.warpAffine(region, shifted, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _tilt(points: np.ndarray) -> float:
    """Degrees by which the line from the person's right eye to their left eye falls (clockwise on screen)."""
    return float(np.degrees(np.arctan2(points[1, 1] - points[0, 1], points[1, 0] - points[0, 0])))


def reading_order(boxes: list[Box]) -> list[int]:
    """Indices of `boxes` as people read a photo: rows top to bottom, each row left to right.

    A box joins the current row when its centre lies above the lowest bottom of the boxes already in it,
    so a row of people that slopes across the photo stays one row.
    """
    rows: list[list[int]] = []
    row_bottom = 0.0
    for i in sorted(range(len(boxes)), key=lambda i: (boxes[i].y + boxes[i].h / 2, boxes[i].x)):
        box = boxes[i]
        if rows and box.y + box.h / 2 <= row_bottom:
            rows[-1].append(i)
            row_bottom = max(row_bottom, box.y + box.h)
        else:
            rows.append([i])
            row_bottom = box.y + box.h
    return [i for row in rows for i in sorted(row, key=lambda i: boxes[i].x)]


def align_face(gray: np.ndarray, landmarks) -> np.ndarray:
    """The 48x48 face the network reads: turned so the eyes are level, then scaled and moved so its five
    landmarks fall, in the least-squares sense, where FER2013's faces have theirs (FACE_TEMPLATE).

    `gray` is the uint8 (H, W) photo, `landmarks` five (x, y) points in LANDMARK_NAMES order."""
    import cv2

    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    target = np.asarray(FACE_TEMPLATE, dtype=np.float64) * ALIGN_OVERSAMPLE
    right_eye, left_eye = points[0], points[1]
    angle = np.arctan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0])  # 0 when the eyes are level
    cos, sin = np.cos(-angle), np.sin(-angle)
    rotated = points @ np.array([[cos, sin], [-sin, cos]])  # each point turned by -angle
    # The scale and shift that best place the turned points on the template (closed-form least squares).
    p, q = rotated - rotated.mean(0), target - target.mean(0)
    scale = float((p * q).sum() / max((p**2).sum(), 1e-9))
    matrix = np.array([[cos, -sin], [sin, cos]]) * scale
    shift = target.mean(0) - matrix @ points.mean(0)
    side = FACE_SIZE * ALIGN_OVERSAMPLE
    source = np.asarray(gray)
    if scale < 0.5:
        # A face much larger than the output: shrink the region around it first (area average), so the
        # warp does not alias. The region is what the output square covers, plus a little.
        corners = np.array([[0, 0], [side, 0], [0, side], [side, side]], np.float64)
        inverse = np.linalg.inv(matrix)
        mapped = (corners - shift) @ inverse.T
        x0, y0 = np.floor(mapped.min(0)).astype(int) - 2
        x1, y1 = np.ceil(mapped.max(0)).astype(int) + 2
        height, width = source.shape
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            factor = 2 * scale
            region = source[y0:y1, x0:x1]
            size = (max(1, round(region.shape[1] * factor)), max(1, round(region.shape[0] * factor)))
            source = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
            fx, fy = size[0] / region.shape[1], size[1] / region.shape[0]
            # Output = matrix @ (photo point) + shift, and photo point = (x0, y0) + region point / (fx, fy).
            shift = shift + matrix @ np.array([x0, y0], np.float64)
            matrix = matrix / np.array([fx, fy])
    face = _warp(source, np.hstack([matrix, shift[:, None]]), side)
    return to_face_array(Image.fromarray(face))
