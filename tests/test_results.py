"""app.results: the annotated photo, the reading order and the faces table, from real predictions."""

import csv
import io

import numpy as np
import pytest
from conftest import encode, expected_flags, iou, make_photo
from PIL import Image

from app.plots import CLASS_COLORS
from app.results import (
    DISPLAY_SIDE,
    THUMBNAIL_SIDE,
    annotate,
    escape_markdown,
    faces_table,
    for_display,
    in_reading_order,
    jpeg_to_png,
    png_bytes,
    sample_photo,
)
from fer.record import PROB_COLUMNS, results_to_csv


@pytest.fixture()
def photo_result(flagged_photo):
    return flagged_photo[0]


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


def test_faces_table_has_one_row_per_face_with_probabilities(flagged_photo, predictor):
    photo_result, threshold = flagged_photo
    blank = predictor.predict(encode(Image.new("RGB", (300, 200), "gray")), name="blank.png")
    table = faces_table([photo_result, blank])
    assert len(table) == 3
    assert list(table["face"]) == [1, 2, 3]
    assert set(table["file"]) == {"three faces.jpg"}
    assert list(table["uncertain"]) == expected_flags(photo_result.faces, threshold)
    in_percent = faces_table([photo_result], in_percent=True)
    np.testing.assert_allclose(in_percent[PROB_COLUMNS], table[PROB_COLUMNS] * 100)
    np.testing.assert_allclose(in_percent["confidence"], table["confidence"] * 100)
    # The downloads' values: four probabilities rounded to fer.record.DECIMALS each.
    np.testing.assert_allclose(table[PROB_COLUMNS].sum(axis=1), 1.0, atol=2e-4 + 1e-9)
    np.testing.assert_allclose(table[PROB_COLUMNS], [f.probs for f in photo_result.faces], atol=5e-5 + 1e-9)
    np.testing.assert_allclose(table["confidence"], [f.confidence for f in photo_result.faces], atol=5e-5 + 1e-9)
    assert list(table["label"]) == [face.label for face in photo_result.faces]
    assert table[["x", "y", "w", "h"]].values.tolist() == [f.box.as_list() for f in photo_result.faces]
    # The same values as the CSV's rows of these faces.
    rows = [row for row in csv.DictReader(io.StringIO(results_to_csv([photo_result, blank]))) if row["face"]]
    for column in ["file", "face", "label", *PROB_COLUMNS, "uncertainty", "uncertain", "x", "y", "w", "h"]:
        assert [str(value) for value in table[column]] == [row[column] for row in rows], column


@pytest.fixture(scope="module")
def two_rows(predictor, detectable_faces):
    """A photo of two rows of real faces, the lower row further left and larger: (result, pasted boxes by row)."""
    yy, xx = np.mgrid[0:760, 0:1000]
    photo = Image.fromarray((90 + 60 * xx / 1000 + 30 * yy / 760).astype(np.uint8)).convert("RGB")
    boxes = [[420, 40, 160, 160], [760, 70, 160, 160], [60, 400, 260, 260], [520, 430, 220, 220]]
    for face, (x, y, w, _) in zip(detectable_faces, boxes, strict=True):
        photo.paste(Image.fromarray(face).resize((w, w), Image.Resampling.BICUBIC).convert("RGB"), (x, y))
    result = predictor.predict(encode(photo, "PNG"), name="two rows.png")
    assert len(result.faces) == 4, [f.box.as_list() for f in result.faces]
    return result, boxes


def test_faces_are_numbered_across_the_photo_then_down(two_rows):
    result, boxes = two_rows
    ordered = in_reading_order(result)
    assert [f.index for f in ordered.faces] == [0, 1, 2, 3]
    for face, pasted in zip(ordered.faces, boxes, strict=True):
        assert iou(face.box.as_list(), pasted) > 0.5, (face.box.as_list(), pasted)
    # The same faces with the same numbers: nothing else about them changes, and fer's result is left alone.
    by_box = {tuple(f.box.as_list()): f for f in result.faces}
    for face in ordered.faces:
        original = by_box[tuple(face.box.as_list())]
        assert face.label == original.label and np.array_equal(face.probs, original.probs)
    assert [f.index for f in result.faces] == list(range(4))


def test_for_display_keeps_the_annotated_picture_not_the_photo(two_rows):
    result, _ = two_rows
    shown = for_display(result)
    assert shown.result.image is None and result.image is not None
    assert shown.result.faces == in_reading_order(result).faces
    picture = Image.open(io.BytesIO(shown.picture))
    assert picture.format == "JPEG" and picture.size == result.image.size  # 1000 px: under DISPLAY_SIDE
    assert max(Image.open(io.BytesIO(shown.thumbnail)).size) == THUMBNAIL_SIDE < DISPLAY_SIDE
    # Boxes keep their class colour through JPEG (no chroma subsampling).
    pixels = np.asarray(picture, dtype=np.float32)
    for face in shown.result.faces:
        x, y, w, h = face.box.as_list()
        edge = pixels[y + h // 2, x + 1]
        assert np.abs(edge - np.array(_rgb(CLASS_COLORS[face.label]))).mean() < 25, (face.label, edge)
    assert Image.open(io.BytesIO(jpeg_to_png(shown.picture))).format == "PNG"
    unreadable = for_display(type(result)(file="notes.jpg", error="notes.jpg is a text file, not an image."))
    assert unreadable.picture is None and unreadable.result.error


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


def test_for_display_shrinks_a_large_photo_and_keeps_the_boxes_in_photo_pixels(predictor, detectable_faces):
    photo, pasted = make_photo(detectable_faces[:2], size=(2400, 1800), face_side=400)
    result = predictor.predict(encode(photo), name="large.jpg")
    shown = for_display(result)
    picture = Image.open(io.BytesIO(shown.picture))
    assert picture.size == (DISPLAY_SIDE, DISPLAY_SIDE * 1800 // 2400)
    assert [f.box.as_list() for f in shown.result.faces] == [f.box.as_list() for f in in_reading_order(result).faces]
    # Each box is drawn where the face is, at the picture's scale.
    pixels = np.asarray(picture, dtype=np.float32)
    scale = DISPLAY_SIDE / 2400
    for face in shown.result.faces:
        x, y, w, h = (round(v * scale) for v in face.box.as_list())
        edge = pixels[y + h // 2, x + 1]
        assert np.abs(edge - np.array(_rgb(CLASS_COLORS[face.label]))).mean() < 25, (face.label, edge)
    assert len(pasted) == len(shown.result.faces)


def share_bins(share_at_07: float, count: int = 500) -> list[dict]:
    """Share reliability bins where the crowd agrees with the probability, but for the 0.7-0.8 bin."""
    bins = [{"low": k / 10, "high": (k + 1) / 10, "count": count, "confidence": k / 10 + 0.05} for k in range(10)]
    for b in bins:
        b["share"] = share_at_07 if b["low"] == 0.7 else b["confidence"] - 0.01
    return bins


def reading(bins: list[dict] | None, temperature: float = 0.8, people_temperature: float = 0.8) -> dict | None:
    return bins and {"bins": bins, "temperature": temperature, "people_temperature": people_temperature}


@pytest.mark.parametrize(
    ("probs", "uncertain", "people", "said"),
    [
        ([0.05, 0.2, 0.03, 0.72], False, reading(share_bins(0.74)), "About 7 in 10 people would call this neutral."),
        ([0.04, 0.46, 0.05, 0.45], False, reading(share_bins(0.74)), "About 5 in 10 people would call this sad."),
        ([0.97, 0.01, 0.01, 0.01], False, reading(share_bins(0.74)), "Nearly everyone would call this happy."),
        # Probabilities for the majority (T 0.5) are sharper than people's shares (T 0.8): 72% is 6 in 10.
        (
            [0.05, 0.2, 0.03, 0.72],
            False,
            reading(share_bins(0.74), 0.5),
            "About 6 in 10 people would call this neutral.",
        ),
        ([0.05, 0.2, 0.03, 0.72], True, reading(share_bins(0.74)), None),  # maybe another expression: shares cover four
        ([0.05, 0.2, 0.03, 0.72], False, None, None),  # probabilities not calibrated to people
        ([0.05, 0.2, 0.03, 0.72], False, reading(share_bins(0.62)), None),  # here 0.75 meant 6 in 10 people: not said
        ([0.05, 0.2, 0.03, 0.72], False, reading(share_bins(0.74, count=10)), None),  # too few faces to know
    ],
)
def test_people_would_say_only_where_the_crowd_agrees(probs, uncertain, people, said):
    from app.results import people_would_say
    from fer.faces import Box
    from fer.predict import FaceResult

    face = FaceResult(0, Box(0, 0, 48, 48), np.zeros((48, 48), np.uint8), np.array(probs), uncertain=uncertain)
    assert people_would_say(face, people) == said


def test_the_shipped_card_says_where_people_agree_with_their_shares(card):
    from app.results import PEOPLE_TOLERANCE

    people = card["calibration"]["people"]
    bins = [b for b in people["share_reliability"] if b["count"] >= 30]
    assert people["target"] == "crowd_vote_shares" and len(bins) >= 5
    # A majority of 7 in 10 is the majority more often than 7 times in 10: people's T is the softer one.
    assert people["temperature"] > card["temperature"]
    agreeing = [b for b in bins if abs(b["confidence"] - b["share"]) <= PEOPLE_TOLERANCE]
    assert sum(b["count"] for b in agreeing) >= 0.8 * sum(b["count"] for b in bins)


def test_on_a_48x48_photo_the_label_does_not_cover_the_face(predictor, validation):
    # A dataset face uploaded as it is: its box fills the photo, so the label cannot go above or below it.
    for i in range(0, 400, 10):
        result = predictor.predict(encode(Image.fromarray(validation.images[i]), "PNG"), name="small.png")
        if len(result.faces) == 1 and result.faces[0].box.y < 10 and result.faces[0].box.h > 40:
            break
    else:
        pytest.fail("no 48x48 validation face was found filling its photo")
    (face,) = result.faces
    picture = annotate(result)
    scale = picture.width / 48
    # The label is a block of the class colour (white letters on it): rows with more coloured pixels than
    # the box's two sides, short of the box's own top and bottom lines, which span the photo.
    colour = np.all(np.asarray(picture) == _rgb(CLASS_COLORS[face.label]), axis=2).sum(axis=1)
    banner_rows = np.flatnonzero((colour > 12) & (colour < 0.9 * picture.width))
    eyes = min(y for _, y in face.detection.landmarks[:2]) * scale
    assert len(banner_rows) > 0 and banner_rows.max() < eyes - 0.05 * picture.height, (banner_rows, eyes)
    assert picture.size == (480, 480)  # enlarged before drawing, so the label is small next to the face
    assert Image.open(io.BytesIO(for_display(result).picture)).size == (480, 480)
