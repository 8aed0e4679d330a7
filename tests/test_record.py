"""fer.record: a face's record in the JSON, its flat form in the CSV, formula-safe cells, from real predictions."""

import csv
import io
import json

import numpy as np
import pytest
from conftest import encode, expected_flags, flagging_some, make_photo
from PIL import Image

from fer.batch import predict_batch
from fer.config import CLASSES
from fer.errors import FerError
from fer.faces import LANDMARK_NAMES
from fer.record import (
    FLAT_COLUMNS,
    FORMULA_STARTS,
    LANDMARK_COLUMNS,
    PROB_COLUMNS,
    csv_bytes,
    results_json,
    results_to_csv,
    safe_csv_cell,
    write_csv,
)

FACE_KEYS = ["face", "box", "label", "probs", "uncertainty", "uncertain", "detector_score", "landmarks"]


@pytest.fixture(scope="module")
def single_face(detectable_faces) -> bytes:
    image, _ = make_photo(detectable_faces[2:3], size=(400, 400))
    return encode(image, "PNG")


def read_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


# -- the record --------------------------------------------------------------------------------------


def test_a_face_record_holds_its_number_box_label_probabilities_uncertainty_and_detection(flagged_photo):
    result, threshold = flagged_photo
    (photo,) = json.loads(results_json([result]))
    assert list(photo) == ["file", "faces", "error", "notes"]
    assert photo["file"] == "three faces.jpg" and photo["error"] is None and photo["notes"] == []
    records = photo["faces"]
    assert [list(record) for record in records] == [FACE_KEYS] * 3
    assert [record["face"] for record in records] == [1, 2, 3]  # numbered from 1, as shown to users
    assert [record["box"] for record in records] == [face.box.as_list() for face in result.faces]
    assert [record["label"] for record in records] == [face.label for face in result.faces]
    assert [record["uncertain"] for record in records] == expected_flags(result.faces, threshold)
    for record, face in zip(records, result.faces, strict=True):
        assert list(record["probs"]) == list(CLASSES)
        np.testing.assert_allclose(list(record["probs"].values()), face.probs, atol=5e-5 + 1e-9)
        assert record["uncertainty"] == pytest.approx(face.uncertainty, abs=5e-5 + 1e-9)
        assert record["detector_score"] == pytest.approx(face.detection.score, abs=5e-5 + 1e-9)
        assert list(record["landmarks"]) == list(LANDMARK_NAMES)
        np.testing.assert_allclose(list(record["landmarks"].values()), face.detection.landmarks, atol=0.05 + 1e-9)


def test_the_csv_rows_are_the_json_records_flattened(flagged_photo, predictor, validation):
    result, _ = flagged_photo
    whole = predictor.predict(encode(Image.fromarray(validation.images[0]), "PNG"), name="crop.png", detect=False)
    unreadable = predictor.predict(b"just text", name="notes.jpg")
    results = [result, whole, unreadable]

    photos = json.loads(results_json(results))
    rows = read_csv(results_to_csv(results))

    assert list(rows[0]) == FLAT_COLUMNS
    faces = [(photo, record) for photo in photos for record in photo["faces"]]
    assert len(rows) == len(faces) + 1  # the file without a face has a row of its own
    for row, (photo, record) in zip(rows, faces, strict=False):
        assert row["file"] == photo["file"] and row["label"] == record["label"]
        assert row["error"] == "" and row["notes"] == "; ".join(photo["notes"])
        # Numbers are written as in the JSON, so the two files carry the same values.
        numbers = {"face": record["face"], **dict(zip("xywh", record["box"], strict=True))}
        numbers.update(zip(PROB_COLUMNS, record["probs"].values(), strict=True))
        numbers.update({key: record[key] for key in ("uncertainty", "detector_score")})
        for name, point in (record["landmarks"] or {}).items():
            numbers.update({f"{name}_x": point[0], f"{name}_y": point[1]})
        for column, value in numbers.items():
            assert row[column] == ("" if value is None else json.dumps(value)), column
        assert row["uncertain"] == str(record["uncertain"])
    crop = rows[3]
    assert crop["file"] == "crop.png" and [crop[k] for k in "xywh"] == ["0", "0", "48", "48"]
    assert crop["detector_score"] == "" and all(crop[column] == "" for column in LANDMARK_COLUMNS)
    notes = rows[4]
    assert notes["file"] == "notes.jpg" and notes["error"] == unreadable.error
    assert all(notes[column] == "" for column in FLAT_COLUMNS if column not in ("file", "error"))


# -- the CSV -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20"])
def test_safe_csv_cell_defuses_formula_starts(start):
    assert safe_csv_cell(start + 'HYPERLINK("http://evil")') == "'" + start + 'HYPERLINK("http://evil")'


def test_safe_csv_cell_leaves_plain_values_alone():
    for value, expected in [
        ("photo.jpg", "photo.jpg"),
        ("a=b", "a=b"),
        (" =1", " =1"),
        ("", ""),
        (None, ""),
        (3, "3"),
        (0.25, "0.25"),
    ]:
        assert safe_csv_cell(value) == expected


def test_csv_has_one_row_per_face_and_one_per_faceless_file(predictor, photo_with_faces):
    photo = encode(photo_with_faces[0], "JPEG", quality=92)
    predictor = flagging_some(predictor, photo)
    threshold = predictor.classifier.uncertainty_threshold
    results = predict_batch(
        predictor,
        [("group.jpg", photo), ("notes.jpg", b"just text"), ("blank.png", encode(make_photo([])[0], "PNG"))],
    )

    rows = read_csv(results_to_csv(results))

    assert list(rows[0]) == FLAT_COLUMNS
    assert FLAT_COLUMNS[:7] == ["file", "face", "x", "y", "w", "h", "label"]
    assert FLAT_COLUMNS[7:11] == [f"p_{name}" for name in CLASSES]
    assert FLAT_COLUMNS[11:14] == ["uncertainty", "uncertain", "detector_score"]
    assert FLAT_COLUMNS[14:24] == [
        "right_eye_x",
        "right_eye_y",
        "left_eye_x",
        "left_eye_y",
        "nose_x",
        "nose_y",
        "mouth_right_x",
        "mouth_right_y",
        "mouth_left_x",
        "mouth_left_y",
    ]
    assert FLAT_COLUMNS[24:] == ["error", "notes"]
    faces = [row for row in rows if row["file"] == "group.jpg"]
    assert [row["face"] for row in faces] == ["1", "2", "3"]
    for row, face in zip(faces, results[0].faces, strict=True):
        assert [int(row[k]) for k in "xywh"] == face.box.as_list()
        assert row["label"] == face.label and row["error"] == ""
        assert float(row["uncertainty"]) == pytest.approx(face.uncertainty, abs=1e-4)
        assert row["uncertain"] == str(face.uncertainty >= threshold)
        probs = [float(row[f"p_{name}"]) for name in CLASSES]
        assert sum(probs) == pytest.approx(1, abs=1e-3)
        assert CLASSES[int(np.argmax(probs))] == face.label
        assert float(row["detector_score"]) >= 0.6
        x, y, w, h = face.box.as_list()
        assert all(
            x <= float(row[f"{name}_x"]) <= x + w and y <= float(row[f"{name}_y"]) <= y + h for name in LANDMARK_NAMES
        )
    assert {row["uncertain"] for row in faces} == {"True", "False"}
    (notes_row,) = [row for row in rows if row["file"] == "notes.jpg"]
    assert (
        notes_row["error"].startswith("notes.jpg is a text file")
        and notes_row["label"] == ""
        and notes_row["face"] == ""
        and notes_row["uncertainty"] == ""
    )
    (blank_row,) = [row for row in rows if row["file"] == "blank.png"]
    assert blank_row["error"] == "" and blank_row["notes"] == "no face found"


def test_csv_cells_are_safe_and_names_survive_quoting(predictor, single_face):
    names = [
        '=HYPERLINK("http://evil","x").png',
        "+1+cmd.png",
        "-2.png",
        "@SUM(A1).png",
        "\tx.png",
        'comma, "quote"\nline.png',
    ]
    results = predict_batch(predictor, [(name, single_face) for name in names])

    rows = read_csv(results_to_csv(results))

    assert [row["file"] for row in rows] == [safe_csv_cell(name) for name in names]
    for row in rows:
        assert not row["file"].startswith(FORMULA_STARTS)
        assert all(not cell.startswith(FORMULA_STARTS) for cell in row.values())
    assert rows[-1]["file"] == 'comma, "quote"\nline.png'


def test_write_csv_writes_utf8_for_spreadsheets_and_reports_bad_paths(predictor, single_face, tmp_path):
    results = predict_batch(predictor, [("café.png", single_face)])
    out = tmp_path / "out.csv"

    write_csv(results, out)

    assert out.read_bytes().startswith("\ufeff".encode())  # Excel needs the BOM to read UTF-8
    assert out.read_bytes() == csv_bytes(results)  # the app's download: the same bytes
    assert read_csv(out.read_text(encoding="utf-8-sig"))[0]["file"] == "café.png"
    with pytest.raises(FerError, match=r"^Cannot write .*out\.csv \(No such file or directory\); choose a folder"):
        write_csv(results, tmp_path / "missing" / "out.csv")
