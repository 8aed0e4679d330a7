"""Predictions written out: one record per face, nested for JSON, flattened for CSV and tables.

    results_json(results)        # `fer predict --json` and the app's JSON download: the same text
    csv_bytes(results)           # `fer predict --csv` and the app's CSV download: the same bytes
    flat_rows(results)           # one flat dict per face (and per file without a face): the CSV's rows, the app's table

A face's record holds its number (from 1, as shown to users), box, label, the four probabilities, the
uncertainty and its "may be another expression" flag, the detector's score and five landmarks (None with
detection off). Numbers are rounded here, once, so that every output shows the same values.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Iterator

from fer.config import CLASSES
from fer.errors import write_user_file
from fer.faces import LANDMARK_NAMES
from fer.predict import FaceResult, PhotoResult

DECIMALS = 4  # probabilities, uncertainty and detector score; landmarks keep one (Face.landmarks_dict)
PROB_COLUMNS = [f"p_{name}" for name in CLASSES]
LANDMARK_COLUMNS = [f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy"]
FLAT_COLUMNS = [
    "file",
    "face",
    "x",
    "y",
    "w",
    "h",
    "label",
    *PROB_COLUMNS,
    "uncertainty",
    "uncertain",
    "detector_score",
    *LANDMARK_COLUMNS,
    "error",
    "notes",
]
# Spreadsheet apps run a cell as a formula when it starts with one of these (OWASP "CSV injection");
# the full-width forms are included because some spreadsheet locales treat them the same way.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
CSV_ENCODING = "utf-8-sig"  # with a byte-order mark, so that Excel shows accented file names right


def face_record(face: FaceResult) -> dict:
    detection = face.detection
    return {
        "face": face.index + 1,
        "box": face.box.as_list(),
        "label": face.label,
        "probs": {name: round(float(p), DECIMALS) for name, p in zip(CLASSES, face.probs, strict=True)},
        "uncertainty": round(float(face.uncertainty), DECIMALS),
        "uncertain": bool(face.uncertain),
        "detector_score": round(float(detection.score), DECIMALS) if detection else None,
        "landmarks": detection.landmarks_dict() if detection else None,
    }


def photo_record(result: PhotoResult) -> dict:
    return {
        "file": result.file,
        "faces": [face_record(face) for face in result.faces],
        "error": result.error,
        "notes": list(result.notes),
    }


def results_json(results: Iterable[PhotoResult]) -> str:
    """A list of photo records: file, faces (face records), error, notes."""
    return json.dumps([photo_record(result) for result in results], indent=2) + "\n"


def flat_rows(results: Iterable[PhotoResult]) -> Iterator[dict]:
    """The records flattened, keyed by FLAT_COLUMNS: one row per face, and one per file without a face (its
    face, box and probabilities None). Notes are joined with "; "."""
    for result in results:
        photo = photo_record(result)
        blank = {**dict.fromkeys(FLAT_COLUMNS), "file": photo["file"], "error": photo["error"]}
        blank["notes"] = "; ".join(photo["notes"])
        if not photo["faces"]:
            yield blank
        for face in photo["faces"]:
            row = {**blank, "face": face["face"], "label": face["label"]}
            row.update(zip("xywh", face["box"], strict=True))
            row.update(zip(PROB_COLUMNS, face["probs"].values(), strict=True))
            row.update({key: face[key] for key in ("uncertainty", "uncertain", "detector_score")})
            for name, (x, y) in (face["landmarks"] or {}).items():
                row[f"{name}_x"], row[f"{name}_y"] = x, y
            yield row


def safe_csv_cell(value) -> str:
    """A cell that spreadsheet apps show as text: one starting like a formula gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def results_to_csv(results: Iterable[PhotoResult]) -> str:
    """FLAT_COLUMNS, then the flat rows. Every cell goes through `safe_csv_cell`: file names are user text
    and may start like a formula. Numbers are written as in the JSON."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FLAT_COLUMNS)
    writer.writerows([safe_csv_cell(row[column]) for column in FLAT_COLUMNS] for row in flat_rows(results))
    return buffer.getvalue()


def csv_bytes(results: Iterable[PhotoResult]) -> bytes:
    """The CSV file as written by `write_csv` (the app's download)."""
    return results_to_csv(results).encode(CSV_ENCODING)


def write_csv(results: Iterable[PhotoResult], path: str | os.PathLike) -> None:
    write_user_file(path, results_to_csv(results), encoding=CSV_ENCODING)
