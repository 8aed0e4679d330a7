"""From untrusted image bytes to upright RGB photos, face boxes, and 48x48 face crops.

`load_image` is the only door for user files: it identifies the format from the bytes, refuses
non-images, decompression bombs and unsupported formats with an `ImageError` (before decoding pixels
where it can), takes the first frame of animations, applies the EXIF orientation and converts any
mode (CMYK, 16-bit, RGBA, palette, ...) to RGB. `FaceDetector` finds faces and five landmarks each
with YuNet (OpenCV's `FaceDetectorYN`, weights shipped in weights/); `align_face` levels the eyes and
frames the face the way the training faces are framed.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from fer.errors import ImageError
from fer.preprocess import FACE_SIZE, to_face_array

# Limits for untrusted files. A 48 MP phone photo (8000x6000) passes; a 100 MP panorama is refused
# with a message before its pixels are decoded (decoding it would take ~300 MB of RGB memory).
MAX_PIXELS = 50_000_000
MAX_FILE_BYTES = 50 * 1024 * 1024  # 50 MB, the same as the app's upload limit
MIN_SIDE = 16  # smaller images cannot hold a face the model could read
MAX_FACES = 50  # the largest faces are kept when a photo holds more
DETECT_MAX_SIDE = 640  # photos are shrunk to this for detection (YuNet finds faces from ~10 px); boxes are mapped back
DETECT_MIN_SHORT = 128  # ...but a long strip keeps at least this short side, so its faces stay findable
DETECT_MAX_PIXELS = 4_000_000  # ...within this many pixels
# MPO is how Pillow names phone JPEGs that carry extra images (depth maps, previews). ICO is left out:
# an icon can embed a PNG of any size behind a small declared size, and icons hold no faces.
_PARSERS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "PPM")  # Pillow's JPEG parser also opens MPO
FORMATS_HINT = "use a JPEG, PNG, WebP, GIF or BMP image"
# The face detector, shipped in weights/ with its licences (weights/FACE_DETECTOR.md); checked at load.
DETECTOR_FILE = Path(__file__).resolve().parents[1] / "weights" / "face_detection_yunet_2023mar.onnx"
DETECTOR_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
MIN_FACE_SCORE = 0.6  # YuNet's score below which a box is dropped as not a face (benchmarks/face_detectors.py)
# Where the training faces have their five landmarks in the 48x48 frame: the median over the validation
# faces YuNet finds when they are enlarged and pasted on a plain background (benchmarks/face_framing.py).
FACE_TEMPLATE = ((14.99, 18.70), (32.81, 18.66), (23.92, 28.81), (16.50, 36.12), (31.85, 35.95))
REFINE_SIDE = 320  # a tilted face is detected again on a square this size, turned upright
REFINE_ROUNDS = 4  # each round a detection on a REFINE_SIDE square: a few ms
REFINE_MIN_TILT = 15.0  # degrees; below this the landmarks are taken as they are (training turns faces by up to 12)
ALIGN_OVERSAMPLE = 4  # the face is warped at 4x (192 px) and area-averaged to 48, as a camera would

# load_image refuses anything above MAX_PIXELS (below Pillow's warning threshold of ~89 MP) before
# decoding, so Pillow's DecompressionBombWarning only adds noise. It is silenced once here because
# warnings.catch_warnings() is not thread-safe (the app decodes photos in many threads).
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

# File signatures -> (what the file is, what to do), to say what a file that is not a usable image
# really is. Signatures of supported formats come first: Pillow failing on those means a damaged header.
_SIGNATURES = [
    (b"\xff\xd8\xff", "a JPEG whose header is damaged", "re-save or re-download the photo"),
    (b"\x89PNG", "a PNG whose header is damaged", "re-save or re-download the image"),
    (b"GIF8", "a GIF whose header is damaged", "re-save or re-download the image"),
    (b"II*\x00", "a TIFF whose header is damaged", "re-save it as PNG"),
    (b"MM\x00*", "a TIFF whose header is damaged", "re-save it as PNG"),
    (b"%PDF", "a PDF document, not an image", "export the page as a PNG or JPEG image"),
    (b"%!PS", "a PostScript/EPS document, not a supported image", "export it as a PNG"),
    (b"PK\x03\x04", "a ZIP archive, not an image", "unpack it, or pass it with a .zip name to read every photo inside"),
    (b"PK\x05\x06", "an empty ZIP archive, not an image", "use a JPEG or PNG photo"),
    (b"\x1f\x8b", "a gzip archive, not an image", "unpack it first"),
    (b"Rar!", "a RAR archive, not an image", "unpack it first"),
    (b"7z\xbc\xaf", "a 7-Zip archive, not an image", "unpack it first"),
    (b"8BPS", "a Photoshop (PSD) file, which is not supported", "save it as JPEG or PNG"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 image, which is not supported", "save it as JPEG or PNG"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image, which is not supported", "save it as JPEG or PNG"),
    (b"\xff\x0a", "a JPEG XL image, which is not supported", "save it as JPEG or PNG"),
    (b"\x00\x00\x00\x0cJXL ", "a JPEG XL image, which is not supported", "save it as JPEG or PNG"),
    (b"\x00\x00\x01\x00", "an icon (ICO) file, which is not supported", "save it as PNG"),
    (b"<?xml", "an XML document, not an image", FORMATS_HINT),
]
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis")
# EXIF orientation -> the transpose that turns the stored pixels upright (EXIF 2.3, tag 0x0112).
_EXIF_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass
class LoadedImage:
    """An upright RGB photo and what was done to make it so (shown to the user)."""

    image: Image.Image
    format: str
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def describe_non_image(head: bytes) -> tuple[str, str]:
    """(what the file is, what to do) for bytes Pillow could not open as a supported image."""
    if b"<svg" in head.lower():  # often after an XML declaration or a comment
        return "an SVG vector drawing, which is not supported", "export it as a PNG"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")  # a BOM or blank lines may precede a signature
    for signature, what, todo in _SIGNATURES:
        if stripped.startswith(signature) or head.startswith(signature):
            return what, todo
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return (
            "a HEIC/HEIF or AVIF photo, which cannot be decoded here",
            "convert it to JPEG (phones can share photos as JPEG: on an iPhone, Settings > Camera > Formats > Most Compatible)",
        )
    if _looks_like_text(head):
        return "a text file, not an image", FORMATS_HINT
    return "not an image that can be read here", FORMATS_HINT


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as error:  # a character cut at the end of the sample is still text
        return error.reason == "unexpected end of data"


def read_bytes(source: str | os.PathLike | bytes | io.IOBase, label: str | None = None) -> bytes:
    """All bytes of a path, bytes-like or binary file object; ImageError when missing, unreadable or over MAX_FILE_BYTES."""
    too_big = f"is larger than {MAX_FILE_BYTES // 2**20} MB; use a smaller image (e.g. export it as JPEG)."
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif hasattr(source, "read"):
        try:
            data = source.read(MAX_FILE_BYTES + 1)
        except OSError as error:
            raise ImageError(
                f"{label or 'The file'} could not be read ({error.strerror or error}); try again."
            ) from error
        if not isinstance(data, bytes | bytearray):
            raise ImageError(f"{label or 'The file'} was opened as text; open it in binary mode ('rb').")
        data = bytes(data)
    else:
        path = Path(source)
        label = label or str(path)
        try:
            if path.is_dir():
                raise ImageError(f"{label} is a folder, not an image file; pass the image files inside it.")
            if not path.is_file():
                raise ImageError(f"File not found: {label}; check the path.")
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ImageError(f"{label} {too_big}")
            data = path.read_bytes()
        except OSError as error:
            raise ImageError(
                f"{label} could not be read ({error.strerror or error}); check that it is readable."
            ) from error
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{label or 'The file'} {too_big}")
    return data


def _to_rgb(image: Image.Image, label: str) -> Image.Image:
    """Any Pillow mode to 8-bit RGB, scaling high bit depths and flattening transparency onto white."""
    if image.mode.startswith("I;16"):
        # 16-bit: keep the high byte (65535 -> 255), as Pillow does for 16-bit RGB PNGs; never clip.
        gray = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode in ("I", "F"):
        # 32-bit integer or float pixels: the range is guessed from the values (0-1, 0-255 or 0-65535).
        pixels = np.asarray(image, dtype=np.float32)
        peak = float(np.nanmax(pixels)) if pixels.size else 0.0
        top = 1.0 if image.mode == "F" and peak <= 1.0 else 255.0 if peak <= 255 else 65535.0
        gray = np.nan_to_num(np.clip(pixels * (255.0 / top), 0, 255)).round().astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode in ("P", "PA", "RGBA", "LA", "RGBa", "La") and (image.mode != "P" or "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as error:  # a colour mode Pillow cannot convert
        raise ImageError(
            f"{label} uses the {image.mode} colour mode, which is not supported; save it as an RGB JPEG or PNG."
        ) from error


def _frames_note(image: Image.Image, fmt: str) -> str | None:
    """A note when the file holds more than one picture (only the first is used)."""
    if fmt == "MPO" or not getattr(image, "is_animated", False):  # an MPO's extra images are not photos to read
        return None
    if fmt in ("GIF", "WEBP", "PNG"):
        return f"animated {fmt if fmt != 'WEBP' else 'WebP'}: only the first frame was used"
    return f"the {fmt} file holds several images: only the first was used"


def _upright(image: Image.Image, notes: list[str]) -> Image.Image:
    """The image turned as its EXIF orientation says; a broken EXIF block leaves it as stored."""
    try:
        orientation = image.getexif().get(0x0112)
    except Exception:  # Pillow's EXIF parser can raise anything on a damaged block
        notes.append("its EXIF data is damaged: the photo was used as stored (it may be sideways)")
        return image
    method = _EXIF_UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    if method is None:
        return image
    notes.append("turned upright using its EXIF orientation")
    return image.transpose(method)


def load_image(source: str | os.PathLike | bytes | io.IOBase, name: str | None = None) -> LoadedImage:
    """Decode an untrusted image safely; raises ImageError with a message a user can act on.

    Refused before any pixel is decoded: empty files, files over MAX_FILE_BYTES, non-images and
    unsupported formats, images over MAX_PIXELS (decompression bombs) or under MIN_SIDE.
    """
    label = name or (str(source) if isinstance(source, str | os.PathLike) else "The file")
    data = read_bytes(source, label)
    if not data:
        raise ImageError(f"{label} is empty (0 bytes); check that it was saved or downloaded completely.")
    notes: list[str] = []
    try:
        # Only the supported formats' parsers ever see the bytes; open() reads the header only.
        image = Image.open(io.BytesIO(data), formats=_PARSERS)
    except Image.DecompressionBombError as error:
        raise ImageError(
            f"{label} has far more pixels than the {MAX_PIXELS / 1e6:.0f} MP limit (a possible decompression "
            "bomb); resize it and try again."
        ) from error
    except Exception as error:  # UnidentifiedImageError, or any other failure of a parser on malformed bytes
        what, todo = describe_non_image(data[:512])
        raise ImageError(f"{label} is {what}; {todo}.") from error
    fmt = image.format or "unknown"
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{label} is {width}x{height} pixels ({width * height / 1e6:.0f} MP); the limit is "
            f"{MAX_PIXELS / 1e6:.0f} MP. Resize it (e.g. to 8000x6000) and try again."
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(
            f"{label} is only {width}x{height} pixels; a face needs at least {MIN_SIDE}x{MIN_SIDE}. Use a larger photo."
        )
    try:
        note = _frames_note(image, fmt)
        if note:
            image.seek(0)
            notes.append(note)
        image.load()
        rgb = _to_rgb(_upright(image, notes), label)
    except ImageError:
        raise
    except MemoryError as error:
        raise ImageError(f"{label} needs too much memory to decode; use a smaller image.") from error
    except Exception as error:  # Pillow's decoders raise many types (OSError, SyntaxError, zlib.error, ...) on bad data
        raise ImageError(
            f"{label} is truncated or corrupt and cannot be decoded ({type(error).__name__}); "
            "re-save or re-download it, or use another image."
        ) from error
    return LoadedImage(rgb, fmt, notes)


# -- face detection -------------------------------------------------------------------------------


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


class FaceDetector:
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

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in a uint8 RGB (H, W, 3) or grayscale (H, W) image, largest first (callers apply MAX_FACES).

        The image is shrunk so its longer side is at most DETECT_MAX_SIDE; boxes and landmarks are mapped back."""
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
            faces.append(Face(Box(left, top, right - left, bottom - top), float(row[14]), points))
        return sorted(faces, key=lambda f: (-f.box.w * f.box.h, f.box.y, f.box.x))

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
            found = self.detect(upright)
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
