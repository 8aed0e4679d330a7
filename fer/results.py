"""Prediction results as people take them away: the annotated photo, one table of all faces, CSV/JSON.

    picture = annotate(result)                # the photo with every face boxed, numbered and labelled
    table = faces_table(results)              # one row per face of every photo
    results_csv(results), results_json(results), png_bytes(picture)

Used by the app's Predict page; nothing here keeps a photo anywhere but in memory.
"""

from __future__ import annotations

import io
import json
import re

from PIL import Image, ImageDraw, ImageFont

from fer.data import CLASSES
from fer.plots import CLASS_COLORS
from fer.predict import FaceResult, PhotoResult

SAMPLE_NAME = "astronaut.png"
SAMPLE_CREDIT = "Sample photo: astronaut Eileen Collins (NASA, public domain), bundled with scikit-image."
UNCERTAIN_TEXT = "may be another expression"


def sample_photo() -> bytes:
    """A public-domain portrait (NASA) that ships inside scikit-image, as PNG bytes; never stored in the repo."""
    from skimage import data as skimage_data

    return png_bytes(Image.fromarray(skimage_data.astronaut()))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def is_uncertain(face: FaceResult) -> bool:
    """The classifier's own flag, where it has one, that the face may show an expression it does not know."""
    return bool(getattr(face, "uncertain", False))


def face_title(face: FaceResult) -> str:
    return f"Face {face.index + 1}: {face.label} ({face.confidence:.0%})"


def annotate(result: PhotoResult, max_side: int = 1600) -> Image.Image:
    """The photo (shrunk to `max_side`) with each face boxed in its class colour and tagged '#n label'."""
    image = result.image.copy() if result.image is not None else Image.new("RGB", (480, 360), "white")
    scale = min(1.0, max_side / max(image.size))
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(image)
    line = max(2, round(min(image.size) / 220))
    font = ImageFont.load_default(size=max(12, round(min(image.size) / 28)))
    for face in result.faces:
        x, y, w, h = (round(v * scale) for v in face.box.as_list())
        color = CLASS_COLORS[face.label]
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=color, width=line)
        # A thin dark rim keeps the box visible on a background of its own colour.
        draw.rectangle([x - 1, y - 1, x + w, y + h], outline="#1B1F24", width=1)
        tag = f"{face.index + 1} {face.label}" + (" ?" if is_uncertain(face) else "")
        left, top, right, bottom = draw.textbbox((0, 0), tag, font=font)
        pad = line + 1
        tag_w, tag_h = right - left + 2 * pad, bottom - top + 2 * pad
        tag_y = y - tag_h if y - tag_h >= 0 else y  # above the box, or inside it at the top edge
        draw.rectangle([x, tag_y, x + tag_w, tag_y + tag_h], fill=color)
        draw.text((x + pad - left, tag_y + pad - top), tag, fill="white", font=font)
    return image


def faces_table(results: list[PhotoResult]):
    """A pandas DataFrame with one row per face: file, face number, label, confidence, probabilities, box."""
    import pandas as pd

    rows = []
    for result in results:
        for face in result.faces:
            x, y, w, h = face.box.as_list()
            row = {"file": result.file, "face": face.index + 1, "label": face.label, "confidence": face.confidence}
            row.update({name: float(p) for name, p in zip(CLASSES, face.probs, strict=True)})
            row.update({"uncertain": is_uncertain(face), "uncertainty": getattr(face, "uncertainty", None)})
            row.update({"x": x, "y": y, "width": w, "height": h})
            rows.append(row)
    columns = ["file", "face", "label", "confidence", *CLASSES, "uncertain", "uncertainty", "x", "y", "width", "height"]
    return pd.DataFrame(rows, columns=columns)


def results_csv(results: list[PhotoResult]) -> str:
    return faces_table(results).to_csv(index=False, float_format="%.4f")


def results_json(results: list[PhotoResult]) -> str:
    """Every photo with its faces (box, label, probabilities), error and notes, as in `python -m fer predict --json`."""
    photos = []
    for result in results:
        photo = result.to_dict()
        for face, entry in zip(result.faces, photo["faces"], strict=True):
            entry.setdefault("face", face.index + 1)
            entry.setdefault("uncertain", is_uncertain(face))
        photos.append(photo)
    return json.dumps(photos, indent=2)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def escape_markdown(text: str) -> str:
    """User text (a file name) made safe to show where Streamlit renders Markdown: no links, no formatting."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")
