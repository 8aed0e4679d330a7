"""fer.results: the annotated photo, the faces table and the CSV/JSON downloads, from real predictions."""

import io
import json

import numpy as np
import pandas as pd
import pytest
from conftest import encode
from PIL import Image

from fer.data import CLASSES
from fer.plots import CLASS_COLORS
from fer.results import (
    annotate,
    escape_markdown,
    faces_table,
    png_bytes,
    results_csv,
    results_json,
    sample_photo,
)


@pytest.fixture()
def photo_result(predictor, photo_with_faces):
    photo, _ = photo_with_faces
    result = predictor.predict(encode(photo), name="three faces.jpg")
    assert len(result.faces) == 3
    return result


def _rgb(hex_color):
    return tuple(int(hex_color[i : i + 2], 16) for i in (1, 3, 5))


def test_annotate_boxes_each_face_in_its_class_colour(photo_result):
    picture = annotate(photo_result)
    assert picture.size == photo_result.image.size
    pixels = np.asarray(picture)
    for face in photo_result.faces:
        x, y, w, h = face.box.as_list()
        edge = pixels[y + h // 2, x]  # middle of the left edge of the box
        assert tuple(edge) == _rgb(CLASS_COLORS[face.label])
    assert (pixels != np.asarray(photo_result.image)).any()
    assert photo_result.image is not picture  # the original photo is left alone


def test_annotate_shrinks_big_photos(photo_result):
    small = annotate(photo_result, max_side=450)
    assert max(small.size) == 450


def test_faces_table_has_one_row_per_face_with_probabilities(photo_result, predictor):
    blank = predictor.predict(encode(Image.new("RGB", (300, 200), "gray")), name="blank.png")
    table = faces_table([photo_result, blank])
    assert len(table) == 3
    assert list(table["face"]) == [1, 2, 3]
    assert set(table["file"]) == {"three faces.jpg"}
    np.testing.assert_allclose(table[list(CLASSES)].sum(axis=1), 1.0, atol=1e-5)
    assert list(table["label"]) == [face.label for face in photo_result.faces]
    assert table[["x", "y", "width", "height"]].values.tolist() == [f.box.as_list() for f in photo_result.faces]


def test_csv_and_json_downloads_carry_boxes_and_probabilities(photo_result):
    table = pd.read_csv(io.StringIO(results_csv([photo_result])))
    assert len(table) == 3 and {"file", "label", *CLASSES, "x", "y", "width", "height"} <= set(table.columns)
    photos = json.loads(results_json([photo_result]))
    assert photos[0]["file"] == "three faces.jpg"
    faces = photos[0]["faces"]
    assert [f["box"] for f in faces] == [f.box.as_list() for f in photo_result.faces]
    assert [f["face"] for f in faces] == [1, 2, 3]
    assert all(abs(sum(f["probs"].values()) - 1) < 1e-3 for f in faces)


def test_png_bytes_round_trip(photo_result):
    picture = annotate(photo_result)
    assert Image.open(io.BytesIO(png_bytes(picture))).size == picture.size


def test_the_sample_photo_has_a_face(predictor):
    data = sample_photo()
    assert data.startswith(b"\x89PNG")
    result = predictor.predict(data, name="astronaut.png")
    assert result.error is None and len(result.faces) >= 1


def test_escape_markdown_neutralises_links_and_formatting():
    assert escape_markdown("a_b*c.jpg") == r"a\_b\*c\.jpg"
    escaped = escape_markdown("[click](javascript:alert(1))<b>x</b>")
    assert "[" not in escaped.replace("\\[", "") and "<" not in escaped.replace("\\<", "")
