"""From untrusted image bytes to upright RGB photos, face boxes, and 48x48 face crops.

`load_image` is the only door for user files: it identifies the format from the bytes, refuses
non-images, decompression bombs and unsupported formats with an `ImageError` (before decoding pixels
where it can), takes the first frame of animations, applies the EXIF orientation and converts any
mode (CMYK, 16-bit, RGBA, palette, ...) to RGB. `FaceDetector` finds faces with OpenCV's Haar cascade
(bundled with opencv-python, works offline); `crop_face` cuts a box out the way the training faces
were framed.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fer.errors import ImageError
from fer.preprocess import to_face_array

MAX_PIXELS = 50_000_000  # ~50 megapixels: larger images are refused before their pixels are decoded
MAX_FILE_BYTES = 50 * 1024 * 1024  # 50 MB, the same as the app's upload limit
MIN_SIDE = 16  # smaller images cannot hold a face the model could read
MAX_FACES = 50  # the largest faces are kept when a photo holds more
DETECT_MAX_SIDE = 1280  # photos are shrunk to this for detection; boxes are mapped back
SUPPORTED_FORMATS = {"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MPO", "PPM", "ICO"}
# A Haar box frames a face almost exactly as the training faces are framed (frame/box side 1.03,
# median over 188 detected validation faces: benchmarks/face_framing.py), so the box is grown only a little.
CROP_MARGIN = 0.02

# Signatures of common files that are not images, to say what the file really is.
_KNOWN_NON_IMAGES = [
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"<svg", "an SVG drawing (vector images are not supported; export it as PNG)"),
    (b"<?xml", "an XML/SVG document (vector images are not supported; export it as PNG)"),
    (b"GIF8", "a GIF that could not be decoded"),
]


@dataclass
class LoadedImage:
    """An upright RGB photo and what was done to make it so (shown to the user)."""

    image: Image.Image
    format: str
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def _describe_non_image(head: bytes) -> str:
    stripped = head.lstrip()
    for signature, description in _KNOWN_NON_IMAGES:
        if stripped[: len(signature)].lower() == signature.lower():
            return description
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"heim", b"hevc", b"avif"):
        return "a HEIC/AVIF photo, which this app cannot decode (convert it to JPEG or PNG)"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "not an image this app can read"


def read_bytes(source: str | os.PathLike | bytes | io.IOBase) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if hasattr(source, "read"):
        return source.read(MAX_FILE_BYTES + 1)
    path = Path(source)
    if not path.is_file():
        raise ImageError(f"File not found: {path}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ImageError(f"The file is larger than {MAX_FILE_BYTES // 2**20} MB; use a smaller image.")
    return path.read_bytes()


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB, scaling high bit depths and flattening transparency onto white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or pixels.max() > 255 else 255.0
        gray = np.clip(pixels / top * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode == "P" or image.mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def load_image(source: str | os.PathLike | bytes | io.IOBase, name: str | None = None) -> LoadedImage:
    """Decode an untrusted image safely; raises ImageError with a message a user can act on."""
    data = read_bytes(source)
    label = name or (str(source) if isinstance(source, str | os.PathLike) else "the file")
    if not data:
        raise ImageError(f"{label} is empty (0 bytes).")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{label} is larger than {MAX_FILE_BYTES // 2**20} MB; use a smaller image.")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
            fmt = image.format or "unknown"
            if fmt not in SUPPORTED_FORMATS:
                raise ImageError(f"{label} is a {fmt} image, which is not supported; use JPEG, PNG, WebP, GIF or BMP.")
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError(
                    f"{label} is {width}x{height} pixels ({width * height / 1e6:.0f} MP); the limit is "
                    f"{MAX_PIXELS / 1e6:.0f} MP. Resize it and try again."
                )
            if min(width, height) < MIN_SIDE:
                raise ImageError(f"{label} is only {width}x{height} pixels; a face needs at least {MIN_SIDE}x{MIN_SIDE}.")
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)
                notes.append(f"animated image with {image.n_frames} frames: the first frame was used")
            image.load()
            if _orientation(image) not in (None, 1):
                notes.append("turned upright using its EXIF orientation")
            rgb = _to_rgb(ImageOps.exif_transpose(image))
    except ImageError:
        raise
    except UnidentifiedImageError as error:
        raise ImageError(f"{label} is {_describe_non_image(data[:64])}, not an image; upload a JPEG or PNG photo.") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(f"{label} is too large to decode safely ({error}).") from error
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, struct.error) as error:
        raise ImageError(f"{label} is truncated or corrupt and cannot be decoded ({type(error).__name__}).") from error
    except MemoryError as error:
        raise ImageError(f"{label} needs too much memory to decode.") from error
    return LoadedImage(rgb, fmt, notes)


def _orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(0x0112)
    except Exception:  # a broken EXIF block must not stop the photo from loading
        return None


# -- face detection -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


class FaceDetector:
    """OpenCV Haar cascade for frontal faces; one cascade per thread (OpenCV's is not thread-safe)."""

    def __init__(self, min_face_fraction: float = 0.04, min_neighbors: int = 5, scale_factor: float = 1.1):
        import cv2  # imported here: only detection needs OpenCV

        self._cv2 = cv2
        self.cascade_path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        if not os.path.isfile(self.cascade_path):
            raise ImageError(f"OpenCV's face cascade is missing ({self.cascade_path}); reinstall opencv-python-headless<5.")
        self.min_face_fraction = min_face_fraction
        self.min_neighbors = min_neighbors
        self.scale_factor = scale_factor
        self._local = threading.local()

    def _cascade(self):
        if not hasattr(self._local, "cascade"):
            self._local.cascade = self._cv2.CascadeClassifier(self.cascade_path)
        return self._local.cascade

    def detect(self, gray: np.ndarray) -> list[Box]:
        """All face boxes in a uint8 grayscale image, largest first (callers apply MAX_FACES)."""
        cv2 = self._cv2
        height, width = gray.shape
        scale = min(1.0, DETECT_MAX_SIDE / max(height, width))
        small = cv2.resize(gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else gray
        small = cv2.equalizeHist(small)
        min_side = max(20, int(self.min_face_fraction * min(small.shape)))
        found = self._cascade().detectMultiScale(
            small, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side)
        )
        boxes = [Box(*(round(v / scale) for v in box)) for box in np.asarray(found).reshape(-1, 4)]
        return sorted(boxes, key=lambda b: (-b.w * b.h, b.y, b.x))


def crop_face(gray: Image.Image, box: Box, margin: float = CROP_MARGIN) -> np.ndarray:
    """The 48x48 face for `box`, grown by `margin` on each side; edges are replicated outside the photo."""
    pad = round(max(box.w, box.h) * margin)
    side = max(box.w, box.h) + 2 * pad
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    pixels = np.asarray(gray)
    h, w = pixels.shape
    outside = max(0, -left, -top, left + side - w, top + side - h)
    if outside:
        pixels = np.pad(pixels, outside, mode="edge")
        left, top = left + outside, top + outside
    crop = pixels[top : top + side, left : left + side]
    return to_face_array(Image.fromarray(crop))
