"""Faces in real photos: many faces, tilted and turned faces, sizes, non-face photos, the detector's
file check, alignment onto the training faces' template, and the reading order of the faces.
"""

import numpy as np
import pytest
from conftest import HaarDetector, assert_boxes_match, cat_face, encode, face_grid, found_boxes, iou, make_photo
from PIL import Image

from fer.config import CLASSES
from fer.errors import ImageError
from fer.faces import (
    CONFIRM_BELOW,
    FACE_TEMPLATE,
    LANDMARK_NAMES,
    MAX_FACES,
    MIN_FACE_SCORE,
    Box,
    Detector,
    Face,
    FaceDetector,
    align_face,
    reading_order,
)
from fer.images import MIN_SIDE, load_image
from fer.predict import NO_FACE_NOTE
from fer.preprocess import FACE_SIZE

# -- many faces -------------------------------------------------------------------------------------


def missed_faces(detector, faces: list[np.ndarray], columns: int) -> set[int]:
    """Indices of the faces that the detector does not find on their grid."""
    photo, boxes = face_grid(faces, columns)
    found = [f.box.as_list() for f in detector.detect(np.asarray(photo))]
    return {i for i, box in enumerate(boxes) if not any(iou(box, other) > 0.5 for other in found)}


@pytest.fixture(scope="module")
def crowd_faces(framed_faces, predictor) -> list[np.ndarray]:
    """60 framed faces that the detector also finds together: all 60 on 8 columns, the first 30 on 6 columns.

    Crowds can confuse a detector (a neighbour or the background shifts a box), so faces it misses
    in these grids are swapped for spare ones.
    """
    chosen, spare = framed_faces[:60], framed_faces[60:]
    for _ in range(5):
        missed = missed_faces(predictor.detector, chosen, columns=8) | missed_faces(predictor.detector, chosen[:30], 6)
        if not missed:
            return chosen
        chosen = [spare.pop() if i in missed and spare else face for i, face in enumerate(chosen)]
    pytest.fail("could not build grids of 30 and 60 faces that the detector finds")


def test_thirty_faces_are_all_found_and_classified(predictor, crowd_faces):
    photo, boxes = face_grid(crowd_faces[:30], columns=6)
    assert MAX_FACES > 30

    result = predictor.predict(encode(photo, "JPEG", quality=95), name="class_photo.jpg")

    assert result.error is None and result.faces_found == len(result.faces)
    assert_boxes_match(found_boxes(result), boxes)
    assert not any("largest were classified" in note for note in result.notes)
    assert [face.index for face in result.faces] == list(range(30))
    for face in result.faces:
        assert face.face.shape == (FACE_SIZE, FACE_SIZE)
        assert face.label in CLASSES and face.probs.sum() == pytest.approx(1, abs=1e-5)


def test_more_faces_than_the_cap_keeps_the_largest_and_says_so(predictor, crowd_faces):
    photo, boxes = face_grid(crowd_faces, columns=8)
    result = predictor.predict(encode(photo, "PNG"), name="stadium.png")

    assert result.error is None
    assert result.faces_found == 60 > MAX_FACES
    assert len(result.faces) == MAX_FACES
    assert f"{result.faces_found} faces found: only the {MAX_FACES} largest were classified" in result.notes
    # The cap keeps the largest faces, then numbers them as people read the photo.
    boxes_kept = [face.box for face in result.faces]
    assert reading_order(boxes_kept) == list(range(MAX_FACES))
    every_box = [f.box for f in predictor.detector.detect(np.asarray(photo))]
    smallest_kept = min(b.w * b.h for b in boxes_kept)
    assert sum(b.w * b.h >= smallest_kept for b in every_box) >= MAX_FACES
    assert all(b in boxes_kept for b in every_box if b.w * b.h > smallest_kept)


def test_cap_keeps_the_largest_faces(predictor, crowd_faces, monkeypatch):
    data = encode(face_grid(crowd_faces[:30], columns=6)[0], "PNG")
    uncapped = predictor.predict(data, name="group.png")
    monkeypatch.setattr("fer.predict.MAX_FACES", 5)

    capped = predictor.predict(data, name="group.png")

    assert capped.faces_found == 30 and len(capped.faces) == 5
    assert "30 faces found: only the 5 largest were classified" in capped.notes
    assert {tuple(b) for b in found_boxes(capped)} <= {tuple(b) for b in found_boxes(uncapped)}
    smallest_kept = min(face.box.w * face.box.h for face in capped.faces)
    dropped = [f for f in uncapped.faces if f.box.as_list() not in found_boxes(capped)]
    assert len(dropped) == 25 and all(face.box.w * face.box.h <= smallest_kept for face in dropped)


# -- detector and crop on edge cases ------------------------------------------------------------------


def test_align_face_at_the_photo_edges_replicates_pixels():
    gray = np.tile(np.arange(100, dtype=np.uint8), (80, 1))
    template = np.asarray(FACE_TEMPLATE)
    for shift, scale in (((-30, -30), 1.0), ((70, 50), 1.5), ((0, 0), 2.0), ((90, 70), 0.2), ((40, 30), 20.0)):
        face = align_face(gray, template * scale + shift)
        assert face.shape == (FACE_SIZE, FACE_SIZE) and face.dtype == np.uint8
    # A face hanging over the left edge: the missing columns repeat the edge value (0), not wrap around.
    assert align_face(gray, template - (40, 0))[:, :10].max() == 0


def test_align_face_maps_the_landmarks_onto_the_template():
    """A photo that is the template face drawn 4x larger, turned by 30 degrees and moved: aligned, each
    landmark's dot lands on its template point."""
    template = np.asarray(FACE_TEMPLATE)
    angle = np.radians(30)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = template @ turn.T * 4 + (150, 90)
    photo = np.zeros((400, 400), np.uint8)
    for x, y in points:
        photo[round(y) - 3 : round(y) + 4, round(x) - 3 : round(x) + 4] = 255
    face = align_face(photo, points)
    for x, y in template:
        assert face[round(y) - 1 : round(y) + 2, round(x) - 1 : round(x) + 2].max() > 100, (x, y)
    assert face.mean() < 40  # and nowhere else


def eye_tilt(face) -> float:
    """Degrees by which the line from the person's right eye to their left eye falls (clockwise)."""
    (rx, ry), (lx, ly) = face.landmarks[:2]
    return float(np.degrees(np.arctan2(ly - ry, lx - rx)))


@pytest.fixture(scope="module")
def level_faces(framed_faces, predictor) -> list[np.ndarray]:
    """Framed faces whose own eyes are level (within 4 degrees) when shown alone: turned by a known angle
    in a test, their tilt is that angle."""
    level = []
    for face in framed_faces:
        photo, _ = make_photo([face], size=(500, 500))
        found = predictor.detector.detect(np.asarray(photo))
        if len(found) == 1 and abs(eye_tilt(predictor.detector.refine(np.asarray(photo), found[0]))) < 4:
            level.append(face)
    assert len(level) >= 8
    return level


@pytest.mark.slow
def test_a_face_turned_by_a_known_angle_comes_out_level(predictor, level_faces):
    """Level faces turned by 30 degrees in the photo: the refined landmarks see about 30 degrees, and the
    aligned face, enlarged and detected again, has level eyes (within 8 degrees). At least 3 of 4 faces:
    YuNet's landmarks understate a tilt, and refining does not always recover all of it."""
    level = 0
    for face in level_faces[:4]:
        upright, _ = make_photo([face], size=(500, 500))
        turned = upright.rotate(-30, resample=Image.Resampling.BICUBIC, fillcolor=(120, 120, 120))  # clockwise
        (found,) = predictor.detector.detect(np.asarray(turned))
        refined = predictor.detector.refine(np.asarray(turned), found)
        aligned = align_face(np.asarray(turned.convert("L")), refined.landmarks)
        again, _ = make_photo([aligned], size=(500, 500))
        (seen,) = predictor.detector.detect(np.asarray(again))
        level += eye_tilt(refined) == pytest.approx(30, abs=8) and abs(eye_tilt(seen)) < 8
    assert level >= 3


def test_detector_finds_the_sample_photo_face_with_landmarks():
    from app.results import sample_photo

    photo = np.asarray(load_image(sample_photo()).image)
    (face,) = FaceDetector().detect(photo)
    assert face.score > 0.8
    box, points = face.box, dict(zip(LANDMARK_NAMES, face.landmarks))
    assert all(box.x <= x <= box.x + box.w and box.y <= y <= box.y + box.h for x, y in points.values())
    # The person's right eye is on the photo's left; eyes above the nose above the mouth.
    assert points["right_eye"][0] < points["left_eye"][0] and points["mouth_right"][0] < points["mouth_left"][0]
    assert max(points["right_eye"][1], points["left_eye"][1]) < points["nose"][1]
    assert points["nose"][1] < min(points["mouth_right"][1], points["mouth_left"][1])


def test_another_detector_plugs_into_the_predictor(predictor):
    """A second detector, written against fer.faces.Detector only (conftest.HaarDetector), reads photos for
    Predictor unchanged: the same face of the sample photo, classified the same."""
    from app.results import sample_photo
    from fer.predict import Predictor

    haar = HaarDetector()
    assert isinstance(haar, Detector) and isinstance(predictor.detector, Detector)
    photo = sample_photo()

    result = Predictor(predictor.classifier, haar).predict(photo, name="astronaut.png")

    assert haar.photos == 1
    (face,) = result.faces
    (yunet,) = predictor.predict(photo).faces
    assert face.detection.score == 1.0 and face.detection.score != yunet.detection.score  # Haar's box, not YuNet's
    assert iou(face.box.as_list(), yunet.box.as_list()) > 0.5
    assert face.face.shape == (FACE_SIZE, FACE_SIZE) and face.label == yunet.label == "happy"


def test_faces_of_different_sizes_and_tilts_are_all_found(level_faces):
    """Four real faces, 80 to 240 px wide and turned by 0 to 20 degrees, on one photo."""
    photo = Image.fromarray(np.full((600, 1000), 110, np.uint8)).convert("RGB")
    centres = []
    for i, (side, tilt) in enumerate(((240, 0), (160, -20), (110, 20), (80, 10))):
        face = Image.fromarray(level_faces[i + 1]).resize((side, side), Image.Resampling.BICUBIC)
        turned = face.convert("RGBA").rotate(tilt, resample=Image.Resampling.BICUBIC, expand=True)
        x, y = 40 + 240 * i, 300 - turned.height // 2
        photo.paste(turned, (x, y), turned)
        centres.append((x + turned.width / 2, y + turned.height / 2))
    found = FaceDetector().detect(np.asarray(photo))
    assert len(found) == 4
    for cx, cy in centres:
        assert any(abs(f.box.x + f.box.w / 2 - cx) < 30 and abs(f.box.y + f.box.h / 2 - cy) < 30 for f in found)


@pytest.mark.parametrize(
    "name", ["chelsea", "coffee", "rocket", "moon", "brick", "horse", "clock", "hubble_deep_field"]
)
def test_non_face_photos_get_no_label(predictor, name):
    """A cat, a cup of coffee, textures and a galaxy field: no face found, so no label at all (flagged or not)."""
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    result = predictor.predict(encode(Image.fromarray(image), "PNG"), name=f"{name}.png")
    assert result.error is None
    assert found_boxes(result) == [] and result.faces_found == 0  # no face at all, flagged or not
    assert NO_FACE_NOTE in result.notes


@pytest.mark.parametrize(
    "photo",
    [
        pytest.param(lambda: cat_face(120, 20, 20), id="cat-face-close"),
        pytest.param(lambda: cat_face(120, 20, 0), id="cat-face"),
        pytest.param(lambda: cat_face(150, -20, -20), id="cat-face-wider"),
    ],
)
def test_an_animal_or_object_that_yunet_boxes_is_not_announced_as_a_face(predictor, photo):
    image = np.asarray(photo().convert("RGB"))
    # YuNet does box it (a score between MIN_FACE_SCORE and CONFIRM_BELOW)...
    (box,) = predictor.detector.detect(image, confirm=False)
    assert MIN_FACE_SCORE <= box.score < CONFIRM_BELOW
    # ...but does not find it again when the photo is framed around it, so it is no face.
    assert not predictor.detector.found_again(image, box)
    result = predictor.predict(encode(Image.fromarray(image), "PNG"), name="animal.png")
    assert result.error is None and result.faces == [] and "no face found" in result.notes


def test_real_faces_that_score_low_are_still_found(predictor, validation):
    # Pasted dataset faces that YuNet scores under CONFIRM_BELOW: found again on the re-framed photo, kept.
    kept = []
    for i in range(0, len(validation), 7):
        photo, boxes = make_photo([validation.images[i]], size=(400, 400))
        found = predictor.detector.detect(np.asarray(photo), confirm=False)
        if len(found) == 1 and found[0].score < CONFIRM_BELOW and iou(found[0].box.as_list(), boxes[0]) > 0.3:
            assert predictor.detector.detect(np.asarray(photo)) == found
            kept.append(found[0].score)
        if len(kept) == 3:
            break
    assert len(kept) == 3, kept


def test_the_people_in_the_sample_photos_are_still_found(predictor):
    import skimage.data

    for name in ("astronaut", "camera"):
        result = predictor.predict(encode(Image.fromarray(getattr(skimage.data, name)()), "PNG"), name=name)
        assert len(result.faces) == 1, name


def test_detector_file_is_checked(monkeypatch):
    monkeypatch.setattr("fer.faces.DETECTOR_SHA256", "0" * 64)
    with pytest.raises(ImageError, match="corrupt or was modified"):
        FaceDetector()


def test_low_scores_are_dropped(framed_faces):
    photo, _ = make_photo([framed_faces[0]], size=(400, 400))
    (face,) = FaceDetector().detect(np.asarray(photo))
    assert FaceDetector(min_score=min(0.99, face.score + 0.01)).detect(np.asarray(photo)) == []


def test_detector_on_tiny_and_flat_images(predictor):
    for gray in (np.zeros((MIN_SIDE, MIN_SIDE), np.uint8), np.full((300, 5000), 200, np.uint8)):
        assert predictor.detector.detect(gray) == []


def test_extreme_aspect_ratios_are_read_without_error(predictor):
    # Detection shrinks photos to DETECT_MAX_SIDE: a long thin strip must not shrink to zero pixels.
    for size in ((40_000, MIN_SIDE), (MIN_SIDE, 40_000)):
        data = encode(Image.new("RGB", size, (90, 120, 150)), "PNG")
        result = predictor.predict(data, name="strip.png")
        assert result.error is None and result.faces == [] and "no face found" in result.notes
        assert len(predictor.predict(data, name="strip.png", detect=False).faces) == 1


def test_a_confident_box_on_a_flat_area_is_not_a_face(predictor, monkeypatch):
    # YuNet reported this box (score 0.998) at the end of a blank 16 x 40,000 strip in some runs (CI's,
    # and one fresh-clone run here), not in others. Its output is replayed to check that it is dropped.
    strip = np.full((40_000, 16, 3), (90, 120, 150), np.uint8)
    row = [-16, 39915, 32, 77, -8, 39934, 6, 39934, -3, 39947, -10, 39959, 4, 39959, 0.998]

    class Replayed:
        def setInputSize(self, size):
            pass

        def detect(self, image):
            return 1, np.array([row], np.float32)

    detector = FaceDetector()
    monkeypatch.setattr(detector, "_network", lambda: Replayed())
    assert detector.detect(strip) == []
    textured = strip.copy()
    textured[39900:, :] = np.random.default_rng(0).integers(0, 255, (100, 16, 3))
    assert len(detector.detect(textured)) == 1  # the same box on a textured area stays: only contrast differs


def test_a_face_in_a_long_panorama_strip_is_found(predictor, framed_faces):
    # Shrinking a 40,000-pixel-wide strip to DETECT_MAX_SIDE would leave its faces a few pixels tall.
    photo, (box,) = make_photo([framed_faces[0]], size=(800, 300), face_side=200)
    strip = Image.new("RGB", (40_000, 300), photo.getpixel((0, 0)))
    strip.paste(photo, (20_000, 0))
    result = predictor.predict(encode(strip, "PNG"), name="strip.png")
    (face,) = result.faces
    assert abs(face.box.x - (20_000 + box[0])) < 40 and abs(face.box.w - box[2]) < 60


def test_turning_and_aligning_a_face_on_a_very_long_strip(predictor):
    # OpenCV's warp refuses images with a side of 32,767 pixels or more; only the face's region is warped.
    strip = np.full((16, 40_000), 120, np.uint8)
    strip[:, 20_000:20_016] = 30
    landmarks = ((20_002.0, 4.0), (20_012.0, 9.0), (20_007.0, 9.0), (20_003.0, 12.0), (20_010.0, 14.0))
    assert align_face(strip, landmarks).shape == (FACE_SIZE, FACE_SIZE)
    face = Face(Box(20_000, 0, 16, 16), 0.9, landmarks)
    assert predictor.detector.refine(np.dstack([strip] * 3), face).box == face.box


def test_reading_order_numbers_rows_top_to_bottom_then_left_to_right():
    boxes = [Box(300, 20, 50, 50), Box(10, 30, 60, 60), Box(150, 200, 40, 40), Box(20, 210, 50, 50)]
    assert reading_order(boxes) == [1, 0, 3, 2]


def test_reading_order_keeps_a_sloping_row_together():
    # Three people on a slope, each half a face lower than the last: one row, read left to right.
    sloping = [Box(0, 60, 100, 100), Box(200, 30, 100, 100), Box(400, 0, 100, 100)]
    assert reading_order(sloping) == [0, 1, 2]
    # Below them, a second row that starts under the row's lowest face.
    second = [Box(50, 200, 100, 100), Box(300, 190, 100, 100)]
    assert reading_order(sloping + second) == [0, 1, 2, 3, 4]
