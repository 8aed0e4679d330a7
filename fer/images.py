"""From untrusted image bytes to an upright RGB photo: the only door for user files.

`load_image` identifies the format from the bytes, refuses non-images, decompression bombs and
unsupported formats with an `ImageError` (before decoding pixels where it can), takes the first frame
of animations, applies the EXIF orientation and converts any mode (CMYK, 16-bit, RGBA, palette, ...)
to RGB. Faces are found in the photo by fer.faces.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from fer.errors import ImageError

# Limits for untrusted files. A 48 MP phone photo (8000x6000) passes; a 100 MP panorama is refused
# with a message before its pixels are decoded (decoding it would take ~300 MB of RGB memory).
MAX_PIXELS = 50_000_000
MAX_FILE_BYTES = 50 * 1024 * 1024  # 50 MB, the same as the app's upload limit
MIN_SIDE = 16  # smaller images cannot hold a face the model could read
# MPO is how Pillow names phone JPEGs that carry extra images (depth maps, previews). ICO is left out:
# an icon can embed a PNG of any size behind a small declared size, and icons hold no faces.
_PARSERS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "PPM")  # Pillow's JPEG parser also opens MPO
FORMATS_HINT = "use a JPEG, PNG, WebP, GIF or BMP image"

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
