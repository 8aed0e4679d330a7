"""Prediction results as people see them and take them away: faces in reading order, the annotated photo, tables.

    ordered = in_reading_order(result)        # faces numbered 1, 2, 3 across the photo, then down
    shown = for_display(result)               # that, plus the annotated photo as JPEG (the full photo dropped)
    table = faces_table(results)              # one row per face of every photo, for the screen
    png_bytes(annotate(result))
    fer.record.results_json(results), fer.record.csv_bytes(results)   # the downloads: the CLI's very files

Used by the app's Predict and Explain pages; nothing here keeps a photo anywhere but in memory.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, replace
from typing import NamedTuple

from PIL import Image, ImageDraw, ImageFont

from fer.calibrate import people_shares
from fer.config import CLASS_COLORS
from fer.faces import reading_order
from fer.predict import FaceResult, PhotoResult
from fer.record import FLAT_COLUMNS, PROB_COLUMNS, flat_rows

SAMPLE_NAME = "astronaut.png"
SAMPLE_CREDIT = "Sample photo: astronaut Eileen Collins (NASA, public domain), bundled with scikit-image."
UNCERTAIN_TEXT = "may be another expression"
PEOPLE_HELP = (
    "Ten people labelled each FER2013 face (the FERPlus crowd). The percentages say how likely most of them "
    "would call the face that; this line says how many of the ten would, on average, for faces like it. A "
    "70% majority is the majority far more often than 7 times in 10, so the two numbers differ."
)
DISPLAY_SIDE = 1600  # the annotated photo on screen and in the PNG download
# A smaller photo (a 48x48 crop) is enlarged to this before its labels are drawn: drawn on the photo's own
# pixels, the smallest legible label covered the top third of a 48x48 face.
MIN_ANNOTATED_SIDE = 480
THUMBNAIL_SIDE = 480  # a photo in a gallery of several
JPEG_QUALITY = 92


def sample_photo() -> bytes:
    """A public-domain portrait (NASA) that ships inside scikit-image, as PNG bytes; never stored in the repo."""
    from skimage import data as skimage_data

    return png_bytes(Image.fromarray(skimage_data.astronaut()))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(image: Image.Image) -> bytes:
    # 4:4:4 (no chroma subsampling) keeps the thin class-coloured box lines true to their colour.
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()


def jpeg_to_png(data: bytes) -> bytes:
    """The PNG download of a stored JPEG picture (made only when someone asks for it)."""
    return png_bytes(Image.open(io.BytesIO(data)))


def is_uncertain(face: FaceResult) -> bool:
    """The classifier's own flag that the face may show an expression it does not know."""
    return bool(face.uncertain)


def face_title(face: FaceResult) -> str:
    return f"Face {face.index + 1}: {face.label} ({face.confidence:.0%})"


PEOPLE_TOLERANCE = 0.05  # half a person in ten: how close the mean share of people must be to the probability
PEOPLE_MIN_FACES = 30  # validation faces a probability bin needs before its agreement counts


def people_would_say(face: FaceResult, reading: dict | None) -> str | None:
    """The people's reading of the top class ("About 7 in 10 people would call this neutral."), only where
    it is true. `reading` is the model card's (`app.state.people_reading`): the probabilities' temperature,
    the people's temperature (fer.calibrate.people_shares) and the share reliability at the latter, which
    must show that on validation faces given about this share, about that share of the crowd chose the
    class. Nothing is said for a face flagged as maybe another expression (the shares cover four classes)."""
    if not reading or is_uncertain(face):
        return None
    share = float(people_shares(face.probs, reading["temperature"], reading["people_temperature"]).max())
    found = next((b for b in reading["bins"] if b["low"] <= share <= b["high"]), None)
    if found is None or found["count"] < PEOPLE_MIN_FACES:
        return None
    if abs(found["confidence"] - found["share"]) > PEOPLE_TOLERANCE:
        return None
    people = round(share * 10)
    if people >= 10:
        return f"Nearly everyone would call this {face.label}."
    return f"About {people} in 10 people would call this {face.label}."


def in_reading_order(result: PhotoResult) -> PhotoResult:
    """A copy of `result` whose faces are numbered as people read the photo (fer.faces.reading_order).

    fer's Predictor already returns faces in this order; results built elsewhere (or older ones) get
    the same numbering on screen and in the downloads. The given result is left unchanged.
    """
    order = reading_order([face.box for face in result.faces])
    return replace(result, faces=[replace(result.faces[k], index=i) for i, k in enumerate(order)])


@dataclass
class ShownPhoto:
    """A photo as the app shows it: faces in reading order, and the annotated picture instead of the photo.

    The full-size photo is not kept (a zip of hundreds of photos would not fit in memory): the annotated
    picture, at most DISPLAY_SIDE pixels a side, and a gallery thumbnail are kept as JPEG bytes.
    """

    result: PhotoResult  # faces in reading order and numbered so; its `image` is None
    picture: bytes | None  # None when the file could not be read
    thumbnail: bytes | None


class Photo(NamedTuple):
    """A photo on the Predict page: one file given, or one member of a zip."""

    key: str  # names the photo across reruns (from its bytes)
    shown: ShownPhoto
    data: bytes | None  # the file as given, to classify it again as a whole (None for a member of a zip)


def for_display(result: PhotoResult) -> ShownPhoto:
    ordered = in_reading_order(result)
    if ordered.image is None:
        return ShownPhoto(ordered, None, None)
    # The photo is shrunk once; the thumbnail comes from that, not from the full-size photo again.
    display, scale = _shrunk(ordered.image, DISPLAY_SIDE)
    small, small_scale = _shrunk(display, THUMBNAIL_SIDE)
    picture = jpeg_bytes(_draw_faces(display, ordered.faces, scale))
    thumbnail = jpeg_bytes(_draw_faces(small, ordered.faces, scale * small_scale))
    return ShownPhoto(replace(ordered, image=None), picture, thumbnail)


def annotate(result: PhotoResult, max_side: int = DISPLAY_SIDE) -> Image.Image:
    """The photo (shrunk to `max_side`) with each face boxed in its class colour and tagged 'n label'."""
    image = result.image if result.image is not None else Image.new("RGB", (480, 360), "white")
    picture, scale = _shrunk(image, max_side)
    return _draw_faces(picture, result.faces, scale)


def _shrunk(image: Image.Image, max_side: int, min_side: int = MIN_ANNOTATED_SIDE) -> tuple[Image.Image, float]:
    """A new RGB copy of `image`, at most `max_side` pixels a side (and a small one enlarged so its longer
    side is `min_side`), and the scale it was resized by."""
    scale = min(1.0, max_side / max(image.size))
    if max(image.size) < min(min_side, max_side):
        scale = min(min_side, max_side) / max(image.size)
    if scale != 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        if scale < 1:
            copy = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)  # fast on 50 MP photos
        else:
            copy = image.resize(size, Image.Resampling.BICUBIC)
    else:
        copy = image.copy()
    return (copy if copy.mode == "RGB" else copy.convert("RGB")), scale


def _draw_faces(image: Image.Image, faces: list[FaceResult], scale: float) -> Image.Image:
    """Box each face (its box in photo pixels, times `scale`) in its class colour and tag it; draws on `image`."""
    draw = ImageDraw.Draw(image)
    line = max(2, round(min(image.size) / 220))
    font = ImageFont.load_default(size=max(12, round(min(image.size) / 28)))
    for face in faces:
        x, y, w, h = (round(v * scale) for v in face.box.as_list())
        color = CLASS_COLORS[face.label]
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=color, width=line)
        # A thin dark rim keeps the box visible on a background of its own colour.
        draw.rectangle([x - 1, y - 1, x + w, y + h], outline="#1B1F24", width=1)
        tag = f"{face.index + 1} {face.label}" + (" ?" if is_uncertain(face) else "")
        tag_font = font
        left, top, right, bottom = draw.textbbox((0, 0), tag, font=tag_font)
        pad = line + 1
        tag_w, tag_h = right - left + 2 * pad, bottom - top + 2 * pad
        if y - tag_h >= 0:  # above the box
            tag_y = y - tag_h
        elif y + h + tag_h <= image.height:  # else below it
            tag_y = y + h
        else:  # else inside it at the top edge, no taller than a tenth of the face: over the hair, not the eyes
            tag_font = ImageFont.load_default(size=max(8, min(font.size, round(h / 10) - 2 * pad)))
            left, top, right, bottom = draw.textbbox((0, 0), tag, font=tag_font)
            tag_w, tag_h, tag_y = right - left + 2 * pad, bottom - top + 2 * pad, y
        draw.rectangle([x, tag_y, x + tag_w, tag_y + tag_h], fill=color)
        draw.text((x + pad - left, tag_y + pad - top), tag, fill="white", font=tag_font)
    return image


# fer.record's flat columns shown on screen, and the top probability as `confidence`.
FACES_TABLE_COLUMNS = [
    "file",
    "face",
    "label",
    "confidence",
    *PROB_COLUMNS,
    "uncertain",
    "uncertainty",
    "x",
    "y",
    "w",
    "h",
]


def faces_table(results: list[PhotoResult], in_percent: bool = False):
    """A pandas DataFrame with one row per face (for the screen): the CSV's rows (fer.record.flat_rows) of the
    faces, with the same values, and their top probability as `confidence`.

    `in_percent`: confidence and probabilities in percent (85.2 for 85.2%), for app.report.PERCENT_FORMAT.
    """
    import pandas as pd

    rows = [row for row in flat_rows(results) if row["face"] is not None]
    table = pd.DataFrame(rows, columns=FLAT_COLUMNS)
    table["confidence"] = table[PROB_COLUMNS].max(axis=1)
    if in_percent:
        table[[*PROB_COLUMNS, "confidence"]] *= 100.0
    return table[FACES_TABLE_COLUMNS]


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def escape_markdown(text: str) -> str:
    """User text (a file name) made safe to show where Streamlit renders Markdown: no links, no formatting."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")
