"""The real app in Streamlit's AppTest: every page, with and without a dataset, with real photos."""

import io
import json
import re
import zipfile
from collections import Counter

import numpy as np
import pytest
from conftest import cat_face, encode, make_photo
from PIL import Image
from streamlit.testing.v1 import AppTest

from app import navigation
from app.results import in_reading_order, people_would_say
from app.session import Key
from fer import data
from fer.batch import predict_batch
from fer.config import CLASSES
from fer.metrics import compute_metrics
from fer.record import PROB_COLUMNS

pytestmark = pytest.mark.slow  # the real model and dataset end to end (AppTest, training, calibration)

NAVIGATION_NOTE = "Knows 4 expressions: happy, sad, surprise, neutral. A demo, not for decisions about people."
PAGES = [navigation.PREDICT, navigation.EXPLAIN, navigation.DATASET, navigation.REPORT]
TITLES = {
    navigation.PREDICT: "Predict emotions in a photo",
    navigation.EXPLAIN: "Explain a prediction",
    navigation.DATASET: "Dataset explorer",
    navigation.REPORT: "Model report",
}


@pytest.fixture(autouse=True)
def isolated(isolated_app):
    """Every test here runs the app in isolation (conftest.isolated_app)."""


@pytest.fixture()
def no_dataset(monkeypatch, tmp_path):
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path / "no-such-folder"))


@pytest.fixture()
def folder_setting_allowed(monkeypatch):
    monkeypatch.setenv("FER_ALLOW_DATA_DIR_SETTING", "1")


@pytest.fixture()
def with_dataset(monkeypatch, tiny_dataset):
    monkeypatch.setenv("FER_DATA_DIR", str(tiny_dataset))
    return tiny_dataset


def open_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=180)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.message for e in at.exception]
    # Drawn by streamlit_app.py: the page ran inside the app's navigation.
    assert NAVIGATION_NOTE in texts(at.sidebar.caption)
    return at


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def upload(at: AppTest, *files) -> AppTest:
    at.file_uploader(key=Key.UPLOADS).set_value(list(files))
    return rerun(at)


# -- every page -----------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_a_dataset(no_dataset, page):
    at = open_app(page)
    assert texts(at.title) == [TITLES[page]]
    assert not at.error


def test_dataset_page_without_a_dataset_shows_the_stored_results_and_how_to_add_one(no_dataset):
    at = open_app(navigation.DATASET)
    assert any("FER_DATA_DIR" in text for text in texts(at.info))
    assert "Stored results" in texts(at.header)
    assert [m.label for m in at.metric][:2] == ["Images", "Accuracy"]
    # Visitors cannot point the server at a folder unless the operator allows it.
    assert [t for t in at.text_input if t.key == "data_dir"] == []
    assert any("FER_ALLOW_DATA_DIR_SETTING=1" in text for text in texts(at.caption))


def test_dataset_page_with_an_empty_dataset_folder(monkeypatch, tmp_path):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path / "empty"))
    at = open_app(navigation.DATASET)
    (location,) = at.expander
    assert location.label == "Dataset location"
    assert any("No happy/sad/surprise/neutral image folders" in t.replace("\\", "") for t in texts(location.markdown))
    # The server's path is named in the "Dataset location" expander only.
    outside = texts(at.info) + texts(at.main.caption) + texts(at.main.markdown)
    inside = texts(location.markdown) + texts(location.caption)
    assert any(str(tmp_path) in text.replace("\\", "") for text in inside)
    assert not [text for text in outside if str(tmp_path) in text.replace("\\", "") and text not in inside]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_a_dataset(with_dataset, page):
    at = open_app(page)
    assert texts(at.title) == [TITLES[page]]
    assert not at.error


# -- predict ----------------------------------------------------------------------------------------


def test_the_server_keeps_every_upload_it_accepts_in_memory(no_dataset):
    import tomllib
    from pathlib import Path

    from starlette.formparsers import MultiPartParser

    server = tomllib.loads((Path(__file__).parents[1] / ".streamlit" / "config.toml").read_text())["server"]
    open_app()
    # Starlette spools a file part bigger than this to a temp file on disk.
    assert MultiPartParser.spool_max_size > server["maxUploadSize"] * 2**20


def test_predict_page_starts_with_a_helpful_empty_state(no_dataset):
    at = open_app()
    assert texts(at.title) == [TITLES[navigation.PREDICT]]
    assert any("sample photo" in text for text in texts(at.info))
    assert at.radio(key=Key.PREDICT_SOURCE).options == ["Upload photos", "Take a photo", "Try a sample photo"]
    assert at.file_uploader(key=Key.UPLOADS).accept_multiple_files


def test_an_uploaded_photo_shows_every_face_boxed_with_label_probabilities_and_cam(
    no_dataset, photo_with_faces, predictor, card
):
    photo, _ = photo_with_faces
    jpeg = encode(photo)
    expected = in_reading_order(predictor.predict(jpeg, name="group.jpg"))
    at = upload(open_app(), ("group.jpg", jpeg, "image/jpeg"))
    assert "3 faces found" in texts(at.subheader)
    assert [t for t in texts(at.subheader) if t.startswith("Face ")] == [
        f"Face {f.index + 1}: {f.label} ({f.confidence:.0%})" for f in expected.faces
    ]
    captions = [c for image in at.image for c in image.captions]
    assert captions.count("Grad-CAM for " + expected.faces[0].label) >= 1
    assert len([c for c in captions if c.startswith("Grad-CAM for ")]) == 3
    assert len(at.get("plotly_chart")) == 3  # one probability chart per face
    # How many of ten people would call each face that: the people's temperature from the card, not the bars'.
    people = card["calibration"]["people"]
    reading = {"bins": people["share_reliability"], "temperature": card["temperature"]}
    said = [people_would_say(f, {**reading, "people_temperature": people["temperature"]}) for f in expected.faces]
    shown = [c for c in texts(at.caption) if "would call this" in c]
    assert shown == [s for s in said if s] and shown
    labels = [b.label for b in at.download_button]
    assert {"Download annotated image (PNG)", "Download results (CSV)", "Download results (JSON)"} <= set(labels)
    # Numbered as read, left to right: the pasted faces are in a row.
    assert [f.box.x for f in expected.faces] == sorted(f.box.x for f in expected.faces)


@pytest.fixture()
def served_file(monkeypatch):
    """The bytes Streamlit serves at a download button's URL: the file a user gets (`served_file(button)`)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    stores = []  # AppTest makes a new in-memory store for each run
    made = MemoryMediaFileStorage.__init__

    def keep(self, *args, **kwargs):
        made(self, *args, **kwargs)
        stores.append(self)

    monkeypatch.setattr(MemoryMediaFileStorage, "__init__", keep)
    return lambda button: stores[-1].get_file(button.proto.url.rsplit("/", 1)[-1]).content


def test_the_downloads_are_the_files_the_cli_writes_for_the_same_photo(no_dataset, served_file, tmp_path, capsys):
    from app.results import SAMPLE_NAME, sample_photo
    from fer.cli import main

    at = open_app()
    at.radio(key=Key.PREDICT_SOURCE).set_value("Try a sample photo")
    rerun(at)
    buttons = {b.label: b for b in at.download_button}
    photo, out_csv = tmp_path / SAMPLE_NAME, tmp_path / "faces.csv"
    photo.write_bytes(sample_photo())
    capsys.readouterr()  # only the CLI's output from here

    assert main(["predict", str(photo), "--json", "--csv", str(out_csv)]) == 0
    cli_json = capsys.readouterr().out.encode("utf-8")

    (entry,) = json.loads(cli_json)
    assert entry["file"] == SAMPLE_NAME and len(entry["faces"]) == 1 and entry["faces"][0]["face"] == 1
    assert served_file(buttons["Download results (JSON)"]) == cli_json
    assert served_file(buttons["Download results (CSV)"]) == out_csv.read_bytes()


@pytest.fixture(scope="module")
def unsure_and_sure(val_subset, classifier, predictor):
    """A photo of two real validation faces, one whose uncertainty reaches the classifier's threshold and one
    below it: (JPEG bytes, the result in reading order)."""
    threshold = classifier.uncertainty_threshold
    _, uncertainty = classifier.predict(val_subset.images)
    for unsure in np.argsort(-uncertainty)[:60]:
        for sure in np.argsort(uncertainty)[:3]:
            photo, _ = make_photo([val_subset.images[unsure], val_subset.images[sure]], size=(700, 400))
            result = in_reading_order(predictor.predict(encode(photo), name="unsure.jpg"))
            scores = [face.uncertainty for face in result.faces]
            if len(scores) == 2 and min(scores) < threshold <= max(scores):
                return encode(photo), result
    pytest.fail("no photo of one flagged and one unflagged face among 400 validation faces")


def test_an_uncertain_face_gets_a_badge(no_dataset, unsure_and_sure, classifier):
    photo, expected = unsure_and_sure
    at = upload(open_app(), ("unsure.jpg", photo, "image/jpeg"))
    # The flag as the classifier defines it, computed here: the face at or above the threshold, not the other.
    flagged = [f.uncertainty >= classifier.uncertainty_threshold for f in expected.faces]
    assert [line for line in texts(at.markdown) if re.match(r"\*\*\d+\.\*\*", line)] == [
        f"**{f.index + 1}.** {f.label} ({f.confidence:.0%})" + (" · may be another expression" if flag else "")
        for f, flag in zip(expected.faces, flagged, strict=True)
    ]
    assert texts(at.markdown).count(":orange-badge[:material/help: may be another expression]") == 1  # on its card


def test_cam_settings_change_the_method_and_the_class_explained(no_dataset, photo_with_faces):
    photo, _ = photo_with_faces
    at = upload(open_app(), ("group.jpg", encode(photo), "image/jpeg"))
    at.selectbox(key=Key.CAM_METHOD).set_value("Layer-CAM")
    at.selectbox(key=Key.CAM_TARGET).set_value("sad")
    at.selectbox(key=Key.CAM_LAYER).set_value(at.selectbox(key=Key.CAM_LAYER).options[1])
    at.slider(key=Key.CAM_OPACITY).set_value(0.8)
    rerun(at)
    captions = [c for image in at.image for c in image.captions]
    assert len([c for c in captions if c == "Layer-CAM for sad"]) == 3


def test_the_mirror_switch_gives_the_flip_tta_predictions(no_dataset, photo_with_faces, classifier):
    from fer import Predictor

    jpeg = encode(photo_with_faces[0])

    def headings(at):
        return [t for t in texts(at.subheader) if t.startswith("Face ")]

    def expected(tta):
        result = in_reading_order(Predictor(classifier.with_tta(tta)).predict(jpeg, name="group.jpg"))
        return [f"Face {f.index + 1}: {f.label} ({f.confidence:.0%})" for f in result.faces]

    assert expected(True) != expected(False)  # the photo tells the two apart
    at = upload(open_app(), ("group.jpg", jpeg, "image/jpeg"))
    served = classifier.tta  # the switch starts as the weights were shipped
    assert at.toggle(key=Key.TTA).value is served and headings(at) == expected(served)
    at.toggle(key=Key.TTA).set_value(not served)
    assert headings(rerun(at)) == expected(not served)


def test_weights_shipped_with_flip_tta_turn_the_mirror_switch_on(no_dataset, photo_with_faces, tmp_path, monkeypatch):
    import json

    import torch

    from fer import Predictor, load_classifier
    from fer.checkpoint import CARD_NAME, DEFAULT_WEIGHTS, sha256_of

    # The shipped weights re-saved as `fer card --tta` marks them, with a card that vouches for the copy.
    payload = torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    weights = tmp_path / DEFAULT_WEIGHTS.name
    torch.save({**payload, "tta": True}, weights)
    card = json.loads((DEFAULT_WEIGHTS.parent / CARD_NAME).read_text())
    (tmp_path / CARD_NAME).write_text(json.dumps({**card, "weights_sha256": sha256_of(weights)}))
    monkeypatch.setenv("FER_WEIGHTS", str(weights))

    served = load_classifier()
    assert served.tta is True
    jpeg = encode(photo_with_faces[0])

    def expected(tta):
        result = in_reading_order(Predictor(served.with_tta(tta)).predict(jpeg, name="group.jpg"))
        return [f"Face {f.index + 1}: {f.label} ({f.confidence:.0%})" for f in result.faces]

    at = upload(open_app(), ("group.jpg", jpeg, "image/jpeg"))
    assert at.toggle(key=Key.TTA).value is True
    assert [t for t in texts(at.subheader) if t.startswith("Face ")] == expected(True) != expected(False)
    at.toggle(key=Key.TTA).set_value(False)
    assert [t for t in texts(rerun(at).subheader) if t.startswith("Face ")] == expected(False)


def test_several_photos_show_a_gallery_and_one_table_of_all_faces(no_dataset, photo_with_faces, detectable_faces):
    photo, _ = photo_with_faces
    two, _ = make_photo(detectable_faces[3:4], size=(500, 400))
    blank = Image.new("RGB", (320, 240), (120, 140, 160))
    at = upload(
        open_app(),
        ("group.jpg", encode(photo), "image/jpeg"),
        ("single.png", encode(two, "PNG"), "image/png"),
        ("wall.webp", encode(blank, "WEBP"), "image/webp"),
    )
    assert "3 photos" in texts(at.subheader) and "All faces" in texts(at.subheader)
    table = at.dataframe[0].value
    assert len(table) == 4
    assert table["file"].tolist() == ["group.jpg"] * 3 + ["single.png"]
    # In percent, each probability rounded as in the downloads.
    np.testing.assert_allclose(table[PROB_COLUMNS].sum(axis=1), 100.0, atol=0.02 + 1e-9)
    gallery = [c for image in at.image for c in image.captions]
    assert any(c.startswith("wall\\.webp: 0 faces") for c in gallery)


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def shoot_zip(detectable_faces) -> bytes:
    """A zip of a photo shoot: real faces pasted on backgrounds, a blank wall, a text file and a nested zip."""
    group, _ = make_photo(detectable_faces[:3])
    single, _ = make_photo(detectable_faces[3:4], size=(500, 400))
    return zip_of(
        {
            "day1/group.jpg": encode(group),
            "day1/notes.txt": b"Shoot notes: bring the lights.\n",
            "day1/single.png": encode(single, "PNG"),
            "day1/more.zip": zip_of({"x.jpg": encode(single)}),
            "day1/wall.jpg": encode(Image.new("RGB", (320, 240), (120, 140, 160))),
        }
    )


def test_a_zip_of_photos_gives_a_gallery_one_table_and_a_warning_per_problem(no_dataset, shoot_zip, predictor):
    expected = [in_reading_order(r) for r in predict_batch(predictor, [("shoot.zip", shoot_zip)])]
    at = upload(open_app(), ("shoot.zip", shoot_zip, "application/zip"))

    assert "5 photos" in texts(at.subheader) and "All faces" in texts(at.subheader)
    warnings = [w.replace("\\", "") for w in texts(at.warning)]
    assert warnings == [
        next(r.error for r in expected if r.file == "shoot.zip/day1/notes.txt"),
        "shoot.zip/day1/more.zip is an archive inside the archive and was ignored; add its photos to the zip directly.",
    ]
    assert warnings[0].startswith("shoot.zip/day1/notes.txt is a text file, not an image")
    assert not at.error
    gallery = [c.replace("\\", "") for image in at.image for c in image.captions]
    for caption in (
        "shoot.zip/day1/group.jpg: 3 faces",
        "shoot.zip/day1/single.png: 1 face",
        "shoot.zip/day1/wall.jpg: 0 faces",
    ):
        assert caption in gallery
    table = at.dataframe[0].value
    assert table["file"].tolist() == ["shoot.zip/day1/group.jpg"] * 3 + ["shoot.zip/day1/single.png"]
    assert table["label"].tolist() == [f.label for r in expected for f in r.faces]
    assert table["face"].tolist() == [1, 2, 3, 1]
    threshold = predictor.classifier.uncertainty_threshold
    assert table["uncertain"].tolist() == [f.uncertainty >= threshold for r in expected for f in r.faces]
    assert {"Download results (CSV)", "Download results (JSON)"} <= {b.label for b in at.download_button}

    # A member without a face can be opened; classifying it whole needs the photo uploaded on its own.
    names = at.selectbox(key=Key.INSPECT_PHOTO).options
    at.selectbox(key=Key.INSPECT_PHOTO).set_value(next(i for i, n in enumerate(names) if n.endswith("wall.jpg")))
    rerun(at)
    assert "No face found" in texts(at.subheader)
    assert any("upload it on its own" in c for c in texts(at.caption))
    assert not [b for b in at.button if b.label == "Classify the whole image as one face"]


def test_a_zip_and_photos_together(no_dataset, shoot_zip, photo_with_faces):
    at = upload(
        open_app(),
        ("group.jpg", encode(photo_with_faces[0]), "image/jpeg"),
        ("shoot.zip", shoot_zip, "application/zip"),
    )
    assert "6 photos" in texts(at.subheader)
    table = at.dataframe[0].value
    assert table["file"].tolist() == ["group.jpg"] * 3 + ["shoot.zip/day1/group.jpg"] * 3 + [
        "shoot.zip/day1/single.png"
    ]
    assert len(at.warning) == 2


def test_a_damaged_zip_gets_a_clear_error(no_dataset, shoot_zip):
    at = upload(open_app(), ("shoot.zip", shoot_zip[: len(shoot_zip) // 2], "application/zip"))
    errors = [e.replace("\\", "") for e in texts(at.error)]
    assert len(errors) == 1 and errors[0].startswith("shoot.zip is not a valid zip archive"), errors


def test_no_face_offers_to_classify_the_whole_image(no_dataset):
    wall = encode(Image.new("RGB", (320, 240), (120, 140, 160)))
    at = upload(open_app(), ("wall.jpg", wall, "image/jpeg"))
    assert "No face found" in texts(at.subheader)
    button = next(b for b in at.button if b.label == "Classify the whole image as one face")
    button.click()
    rerun(at)
    assert "Whole image classified as one face" in texts(at.subheader)
    assert len([t for t in texts(at.subheader) if t.startswith("Face 1: ")]) == 1


def test_a_cats_face_is_not_announced_as_a_face(no_dataset):
    # YuNet boxes this close-up of scikit-image's cat (a stand-in for the dogs) at 0.75.
    at = upload(open_app(), ("cat.png", encode(cat_face(), "PNG"), "image/png"))
    assert "No face found" in texts(at.subheader)
    assert not [t for t in texts(at.subheader) if t.endswith("found") and t != "No face found"]


def test_the_whole_image_gets_the_same_uncertainty_badge_as_a_detected_face(no_dataset, predictor):
    # The badge follows the classifier's flag on the whole image, as it does on a detected face. Which
    # sample photo the flag marks depends on the weights, so several are tried.
    import skimage.data

    for name in ("coffee", "brick", "gravel", "grass", "text", "rocket", "logo"):
        data = encode(Image.fromarray(getattr(skimage.data, name)()), "PNG")
        (whole,) = predictor.predict(data, name=f"{name}.png", detect=False).faces
        if whole.uncertain:
            break
    else:
        pytest.fail("none of the sample photos is flagged when classified whole")
    at = upload(open_app(), (f"{name}.png", data, "image/png"))
    assert "No face found" in texts(at.subheader)
    assert not any("may be another expression" in text for text in texts(at.markdown))
    next(b for b in at.button if b.label == "Classify the whole image as one face").click()
    rerun(at)
    assert "Whole image classified as one face" in texts(at.subheader)
    line = f"**1.** {whole.label} ({whole.confidence:.0%}) · may be another expression"
    assert line in texts(at.markdown)
    badges = [t for t in texts(at.markdown) if "badge[" in t and "may be another expression" in t]
    assert len(badges) == 1, texts(at.markdown)  # on the face's card (st.badge), as for a detected face


def test_a_file_that_is_not_an_image_gets_a_clear_message(no_dataset):
    at = upload(open_app(), ("notes.jpg", b"these are my notes, not a photo", "image/jpeg"))
    assert any("not an image" in text for text in texts(at.error))


def test_camera_photo_is_classified(no_dataset, detectable_faces):
    shot, _ = make_photo(detectable_faces[:1], size=(640, 480))
    at = open_app()
    at.radio(key=Key.PREDICT_SOURCE).set_value("Take a photo")
    rerun(at)
    at.camera_input(key=Key.CAMERA).set_value(("camera.jpg", encode(shot), "image/jpeg"))
    rerun(at)
    assert "1 face found" in texts(at.subheader)
    assert any(t.startswith("Face 1: ") for t in texts(at.subheader))


def test_the_sample_photo_works_out_of_the_box(no_dataset):
    at = open_app()
    at.radio(key=Key.PREDICT_SOURCE).set_value("Try a sample photo")
    rerun(at)
    assert any(re.fullmatch(r"\d+ faces? found", t) for t in texts(at.subheader))
    assert any("NASA" in c for c in texts(at.caption))


def test_photos_and_page_settings_survive_a_visit_to_another_page(no_dataset, photo_with_faces):
    photo, _ = photo_with_faces
    at = upload(open_app(), ("group.jpg", encode(photo), "image/jpeg"))
    assert "3 faces found" in texts(at.subheader)
    at.switch_page(navigation.EXPLAIN)
    rerun(at)
    at.selectbox(key=Key.EXPLAIN_PREDICT_FACE).set_value(2)
    at.selectbox(key=Key.EXPLAIN_TARGET).set_value("sad")
    rerun(at)
    at.switch_page(navigation.PREDICT)
    rerun(at)
    # Streamlit emptied the upload widget; the page shows the same photo again, from memory, and says so.
    assert not at.file_uploader(key=Key.UPLOADS).value
    assert "3 faces found" in texts(at.subheader)
    assert any("you gave earlier" in text for text in texts(at.caption))
    at.switch_page(navigation.EXPLAIN)
    rerun(at)
    assert at.selectbox(key=Key.EXPLAIN_PREDICT_FACE).value == 2 and at.selectbox(key=Key.EXPLAIN_TARGET).value == "sad"
    assert texts(at.subheader)[0].replace("\\", "") == "group.jpg, face 3"
    # Clearing the kept photo clears its results, and the Explain page no longer offers its faces.
    at.switch_page(navigation.PREDICT)
    rerun(at)
    at.button(key="clear-Upload photos").click()
    rerun(at)
    assert "3 faces found" not in texts(at.subheader)
    assert any("Upload one or more photos" in text for text in texts(at.info))
    at.switch_page(navigation.EXPLAIN)
    rerun(at)
    assert "Faces from the Predict page" not in at.radio(key=Key.EXPLAIN_SOURCE).options


def test_removing_the_uploads_on_the_page_clears_them(no_dataset, photo_with_faces):
    photo, _ = photo_with_faces
    at = upload(open_app(), ("group.jpg", encode(photo), "image/jpeg"))
    upload(at)  # the user removes the file from the widget
    assert "3 faces found" not in texts(at.subheader)
    assert not any("you gave earlier" in text for text in texts(at.caption))


# -- explain ------------------------------------------------------------------------------------------


def test_explain_shows_every_method_with_a_finite_faithfulness_score(no_dataset, photo_with_faces):
    from fer.explain import METHODS

    photo, _ = photo_with_faces
    at = upload(open_app(), ("group.jpg", encode(photo), "image/jpeg"))
    at.switch_page(navigation.EXPLAIN)
    rerun(at)
    assert at.radio(key=Key.EXPLAIN_SOURCE).value == "Faces from the Predict page"
    assert len(at.selectbox(key=Key.EXPLAIN_PREDICT_FACE).options) == 3
    names = [
        t.strip("*")
        for t in texts(at.markdown)
        if t.startswith("**") and t.strip("*") in (*METHODS, "Random map (baseline)")
    ]
    assert names == [*METHODS, "Random map (baseline)"]
    verdicts = []
    for face in range(3):
        at.selectbox(key=Key.EXPLAIN_PREDICT_FACE).set_value(face)
        rerun(at)
        verdicts.append(explain_verdict(at))
    # Each face got the badge, or the warning that no map beat a random one, as its numbers say; both happen.
    assert {badged for badged, _ in verdicts} == {True, False}, verdicts


def explain_verdict(at: AppTest) -> tuple[bool, dict]:
    """Whether the Explain page gave a "most faithful here" badge, checked against the scores it shows."""
    from fer.explain import METHODS

    scores = [float(m.value) for m in at.metric if m.label == "ROAD score"]
    assert len(scores) == len(METHODS) + 1 and all(np.isfinite(scores))
    assert "Faithfulness compared" in texts(at.subheader)
    badged, current = [], None
    for text in texts(at.markdown):
        if text.strip("*") in METHODS:
            current = text.strip("*")
        elif "most faithful here" in text:
            badged.append(current)
    shown = dict(zip(METHODS, scores, strict=False))
    said = texts(at.caption) + texts(at.warning)
    (bar,) = [float(m) for text in said for m in re.findall(r"above ([+-]\d\.\d\d)", text)]
    warned = any("No map beat a random one on this face" in text for text in texts(at.warning))
    best = max(shown.values())
    # The badge goes to every method showing the best score (two decimals) when it beats the random maps' bar.
    assert badged == ([m for m in METHODS if shown[m] == best] if best > bar else []), (shown, bar)
    assert warned == (not badged)
    return bool(badged), {"best": best, "bar": bar, "random": scores[-1]}


def test_explain_an_upload_without_a_face_explains_the_whole_image(no_dataset):
    wall = encode(Image.new("RGB", (320, 240), (120, 140, 160)))
    at = open_app(navigation.EXPLAIN)
    at.radio(key=Key.EXPLAIN_SOURCE).set_value("Upload a photo")
    rerun(at)
    at.file_uploader(key=Key.EXPLAIN_UPLOAD).set_value(("wall.jpg", wall, "image/jpeg"))
    rerun(at)
    assert any("whole image is explained as one face" in text for text in texts(at.warning))
    assert len([m for m in at.metric if m.label == "ROAD score"]) == 8


def test_the_mirror_switch_also_sets_the_explain_pages_probabilities(no_dataset, photo_with_faces, classifier):
    from fer import Predictor

    jpeg = encode(photo_with_faces[0])

    def readings(tta):
        faces = in_reading_order(Predictor(classifier.with_tta(tta)).predict(jpeg, name="group.jpg")).faces
        return [f"Predicted **{face.label}** ({face.confidence:.0%})" for face in faces]

    served = classifier.tta  # the switch starts as the weights were shipped
    first, switched = readings(served), readings(not served)
    # A face whose shown reading differs with the mirror image (so the check below can fail).
    number = next(i for i, (before, after) in enumerate(zip(first, switched)) if before != after)
    at = open_app(navigation.EXPLAIN)
    at.radio(key=Key.EXPLAIN_SOURCE).set_value("Upload a photo")
    rerun(at)
    at.file_uploader(key=Key.EXPLAIN_UPLOAD).set_value(("group.jpg", jpeg, "image/jpeg"))
    rerun(at)
    at.selectbox(key=Key.EXPLAIN_FACE_NUMBER).set_value(number)
    rerun(at)
    assert any(first[number] in text for text in texts(at.markdown))
    assert any("mirror image" in text for text in texts(at.caption)) is served
    at.toggle(key=Key.TTA).set_value(not served)
    rerun(at)
    assert any(switched[number] in text for text in texts(at.markdown))
    assert any("mirror image" in text for text in texts(at.caption)) is not served


def explain_dataset_face(true_class: str, number: int) -> AppTest:
    """The Explain page on the `number`-th validation image of `true_class` (1-based)."""
    at = open_app(navigation.EXPLAIN)
    at.radio(key=Key.EXPLAIN_SOURCE).set_value("A dataset image")
    rerun(at)
    at.selectbox(key=Key.EXPLAIN_CLASS).set_value(true_class)
    at.number_input(key=Key.EXPLAIN_NUMBER).set_value(number)
    return rerun(at)


def test_explain_a_dataset_face(with_dataset, tiny_validation):
    faces, probs = tiny_validation
    at = explain_dataset_face("surprise", 2)
    second_surprise = np.flatnonzero(faces.labels == CLASSES.index("surprise"))[1]
    assert texts(at.subheader)[0].replace("\\", "") == f"{faces.keys[second_surprise]} (true: surprise)"
    predicted = CLASSES[int(probs[second_surprise].argmax())]
    assert any(f"Predicted **{predicted}**" in text for text in texts(at.markdown))
    assert len([m for m in at.metric if m.label == "ROAD score"]) == 8


def test_explain_shows_the_evidence_for_each_class(with_dataset, tiny_validation):
    from fer.explain import PER_CLASS_METHODS

    faces, probs = tiny_validation
    at = explain_dataset_face("sad", 1)
    first_sad = np.flatnonzero(faces.labels == CLASSES.index("sad"))[0]
    expected = probs[first_sad]
    runner_up, top = np.argsort(expected)[-2:]
    assert "Evidence for each expression" in texts(at.subheader)
    assert any(
        f"Likeliest: **{CLASSES[top]}** ({expected[top]:.0%}), then **{CLASSES[runner_up]}**" in text
        for text in texts(at.markdown)
    )

    def cards():
        """(class header, badge after it or None) for the four per-class cards, in page order."""
        shown, headers = texts(at.markdown), [f"**{name}** " for name in CLASSES]
        found = [(i, t) for i, t in enumerate(shown) if any(t.startswith(h) for h in headers)][-len(CLASSES) :]
        after = [*shown[1:], ""]
        return [(t, "predicted" if "predicted" in after[i] else None) for i, t in found]

    assert [header for header, _ in cards()] == [f"**{name}** {p:.0%}" for name, p in zip(CLASSES, expected)]
    assert [badge for _, badge in cards()] == [("predicted" if k == top else None) for k in range(len(CLASSES))]
    method = at.selectbox(key=Key.EXPLAIN_CLASS_METHOD)
    assert method.options == PER_CLASS_METHODS and method.value == "Grad-CAM"
    method.set_value("Layer-CAM")
    rerun(at)
    assert [header for header, _ in cards()] == [f"**{name}** {p:.0%}" for name, p in zip(CLASSES, expected)]


# -- dataset --------------------------------------------------------------------------------------


def test_the_dataset_pages_first_visit_scores_nothing_on_validation(monkeypatch, data_root, tmp_path, validation):
    # The shipped weights' validation predictions ship beside them (weights/predictions, made by `fer card`).
    from fer import browse

    monkeypatch.setenv("FER_DATA_DIR", str(data_root))
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "empty-cache"))
    browse.clear_memory_cache()
    monkeypatch.setattr(browse, "score_faces", lambda *a, **k: pytest.fail("validation was scored on a first visit"))
    at = open_app(navigation.DATASET)
    crowd, _ = data.crowd_labels(validation, data.load_votes(data.find_votes_file(data_root)))
    assert {m.label: m.value for m in at.metric}["Images"] == f"{(crowd >= 0).sum():,}"
    assert not (tmp_path / "empty-cache").exists()


def test_the_dataset_folder_can_be_set_in_the_page_where_allowed(no_dataset, folder_setting_allowed, tiny_dataset):
    at = open_app(navigation.DATASET)
    assert "Stored results" in texts(at.header)
    at.text_input(key=Key.DATA_DIR).input(str(tiny_dataset))
    rerun(at)
    assert "Stored results" not in texts(at.header)
    faces = data.load_folder(tiny_dataset, "validation")  # scored against the crowd: the faces it labelled
    labels, _ = data.crowd_labels(faces, data.load_votes(data.find_votes_file(tiny_dataset)))
    assert {m.label: m.value for m in at.metric}["Images"] == f"{(labels >= 0).sum():,}"


def test_without_the_permission_a_folder_setting_is_ignored(no_dataset, tiny_dataset):
    at = open_app(navigation.DATASET)
    at.session_state[Key.DATA_DIR] = str(tiny_dataset)  # as a crafted client or an old session might hold it
    rerun(at)
    assert "Stored results" in texts(at.header)
    assert [t for t in at.text_input if t.key == "data_dir"] == []


def test_the_dataset_page_names_the_folder_not_the_server_path(with_dataset):
    at = open_app(navigation.DATASET)
    shown = " ".join(texts(at.caption) + texts(at.markdown) + texts(at.info)).replace("\\", "")
    assert f"{with_dataset.name}/validation: " in shown
    assert str(with_dataset) not in shown


@pytest.fixture(scope="module")
def tiny_validation(tiny_dataset, classifier):
    faces = data.load_folder(tiny_dataset, "validation")
    return faces, classifier.predict_proba(faces.images)


@pytest.fixture(scope="module")
def tiny_crowd(tiny_dataset, tiny_validation):
    """The tiny validation split's crowd labels (-1: none) and ten vote counts, read from the votes file."""
    faces, _ = tiny_validation
    votes = data.load_votes(data.find_votes_file(tiny_dataset))
    return data.crowd_labels(faces, votes)[0], data.vote_counts(faces, votes)[0]


def images_table(at: AppTest):
    return next(df.value for df in at.dataframe if "image" in df.value.columns)


def test_dataset_page_scores_the_split_against_the_crowd_then_the_folder_labels(
    with_dataset, tiny_validation, tiny_crowd
):
    faces, probs = tiny_validation
    crowd, _ = tiny_crowd
    labelled = crowd >= 0
    assert 0 < (~labelled).sum() < len(faces)  # the tiny split has faces without a crowd label
    at = open_app(navigation.DATASET)
    assert at.radio(key=Key.DS_SPLIT).value == "validation" and at.radio(key=Key.DS_TRUTH).value == "crowd"
    metrics = {m.label: m.value for m in at.metric}
    expected = compute_metrics(crowd[labelled], probs[labelled])
    assert metrics["Images"] == f"{labelled.sum():,}"
    assert metrics["Accuracy"] == f"{expected['accuracy']:.1%}"
    table = images_table(at)
    assert table["image"].tolist() == faces.keys  # no filter: every image, in order
    assert table["true"].tolist() == [CLASSES[k] if k >= 0 else "no crowd label" for k in crowd]
    assert table["folder label"].tolist() == [CLASSES[k] for k in faces.labels]

    at.radio(key=Key.DS_TRUTH).set_value("folder")
    rerun(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == f"{len(faces):,}"
    assert metrics["Accuracy"] == f"{compute_metrics(faces.labels, probs)['accuracy']:.1%}"
    assert images_table(at)["true"].tolist() == [CLASSES[k] for k in faces.labels]


def test_each_listed_face_shows_the_crowds_ten_votes(with_dataset, tiny_validation, tiny_crowd):
    faces, _ = tiny_validation
    _, counts = tiny_crowd
    at = open_app(navigation.DATASET)
    table = images_table(at)
    assert table["crowd votes"].tolist() == [data.vote_summary(c) for c in counts]
    first = counts[0]  # validation/happy/<first file>: its row of ferplus_votes.csv, in words
    assert sum(int(part.rsplit(" ", 1)[1]) for part in data.vote_summary(first).split(" · ")) == int(first.sum())
    shown = [c for c in texts(at.main.caption) if c.startswith("crowd: ")]
    assert shown[:24] == [f"crowd: {data.vote_summary(c)}" for c in counts[:24]]


def test_flagged_duplicates_can_be_listed_alone(monkeypatch, tiny_dataset, tmp_path):
    import shutil

    root = tmp_path / "with-twin"
    shutil.copytree(tiny_dataset, root)
    source = sorted((root / "train" / "sad").glob("*.jpg"))[0]
    shutil.copy(source, root / "validation" / "happy" / "twin.jpg")  # same pixels, another label
    monkeypatch.setenv("FER_DATA_DIR", str(root))
    splits = data.load_splits(root)
    copies = Counter(h for faces in splits.values() for h in faces.pixel_hashes)
    validation = splits["validation"]
    expected = [k for k, h in zip(validation.keys, validation.pixel_hashes, strict=True) if copies[h] > 1]
    assert "validation/happy/twin.jpg" in expected
    at = open_app(navigation.DATASET)
    assert {m.label: m.value for m in at.metric}["Flagged images"] == str(len(expected))
    at.toggle(key=Key.DS_FLAGGED).set_value(True)
    rerun(at)
    table = images_table(at)
    assert table["image"].tolist() == expected
    flags = dict(zip(table["image"], table["flag"], strict=True))
    assert flags["validation/happy/twin.jpg"] == "conflicting labels (happy / sad); duplicate of 1 (train)"


@pytest.mark.parametrize(("true", "predicted"), [("sad", "neutral"), ("happy", "happy"), ("neutral", "sad")])
def test_choosing_a_confusion_cell_shows_exactly_its_images(with_dataset, tiny_validation, tiny_crowd, true, predicted):
    faces, probs = tiny_validation
    crowd, _ = tiny_crowd
    at = open_app(navigation.DATASET)
    at.selectbox(key=Key.DS_TRUE).set_value(true)
    at.selectbox(key=Key.DS_PRED).set_value(predicted)
    rerun(at)
    wanted = (crowd == CLASSES.index(true)) & (probs.argmax(1) == CLASSES.index(predicted))
    expected = [key for key, keep in zip(faces.keys, wanted, strict=True) if keep]
    if not expected:
        assert any("No image matches" in text for text in texts(at.info))
        return
    table = images_table(at)
    assert table["image"].tolist() == expected
    assert set(table["true"]) == {true} and set(table["predicted"]) == {predicted}
    grid = [c for image in at.image for c in image.captions]
    assert len(grid) == min(len(expected), 24)
    assert all(c.startswith(f"{true} → {predicted} ") for c in grid)


def test_dataset_filters_survive_a_visit_to_another_page(with_dataset, tiny_validation):
    at = open_app(navigation.DATASET)
    at.selectbox(key=Key.DS_TRUE).set_value("sad")
    at.selectbox(key=Key.DS_VERDICT).set_value("wrong")
    rerun(at)
    shown = images_table(at)["image"].tolist()
    at.switch_page(navigation.REPORT)
    rerun(at)
    at.switch_page(navigation.DATASET)
    rerun(at)
    assert at.selectbox(key=Key.DS_TRUE).value == "sad" and at.selectbox(key=Key.DS_VERDICT).value == "wrong"
    assert images_table(at)["image"].tolist() == shown


def test_the_mirror_switch_also_sets_the_dataset_pages_predictions(
    with_dataset, tiny_validation, tiny_crowd, classifier
):
    faces, _ = tiny_validation
    crowd, _ = tiny_crowd
    at = open_app(navigation.DATASET)
    served = at.toggle(key=Key.TTA).value
    assert served is classifier.tta
    for tta in (served, not served):
        at.toggle(key=Key.TTA).set_value(tta)
        rerun(at)
        probs = classifier.with_tta(tta).predict_proba(faces.images)
        table = images_table(at)
        assert table["image"].tolist() == faces.keys
        np.testing.assert_allclose(table["happy"], probs[:, 0] * 100, atol=1e-3)
        accuracy = {m.label: m.value for m in at.metric}["Accuracy"]
        assert accuracy == f"{compute_metrics(crowd[crowd >= 0], probs[crowd >= 0])['accuracy']:.1%}"


def test_most_confident_mistakes_come_first_and_grad_cam_on_demand(with_dataset, tiny_validation, tiny_crowd):
    faces, probs = tiny_validation
    crowd, _ = tiny_crowd
    at = open_app(navigation.DATASET)
    at.selectbox(key=Key.DS_VERDICT).set_value("most confident mistakes")
    at.toggle(key=Key.DS_CAMS).set_value(True)
    rerun(at)
    table = images_table(at)
    wrong = (probs.argmax(1) != crowd) & (crowd >= 0)  # a face without a crowd label is neither right nor wrong
    assert len(table) == int(wrong.sum())
    assert (table["true"] != table["predicted"]).all()
    assert table["confidence"].is_monotonic_decreasing


# -- report -----------------------------------------------------------------------------------------


def test_report_page_shows_headline_numbers_and_offers_the_html_export(no_dataset):
    from fer.checkpoint import read_card

    card = read_card()
    validation = card["metrics"]["validation"]
    crowd, folder = validation["crowd"], validation["folder"]
    at = open_app(navigation.REPORT)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Validation accuracy (crowd)"] == f"{crowd['accuracy']:.1%}"
    assert metrics["Validation accuracy (FER2013 labels)"] == f"{folder['accuracy']:.1%}"
    assert "Model size" in metrics
    assert [b.label for b in at.download_button] == ["Download the report (HTML)"]
    for heading in ("Intended use and limitations", "Training curves", "Results by class", "Calibration", "Data card"):
        assert heading in texts(at.header)
    assert ("When the model is unsure" in texts(at.header)) == bool(card.get("uncertainty"))
    shown = " ".join(texts(at.markdown)).replace("\\", "")
    rows = folder["subsets"]["fer2013_test_rows"]
    assert metrics["FER2013 test rows"] == f"{rows['accuracy']:.1%}"  # the comparison with public models
    assert f"{rows['n']:,} of the validation images are FER2013's own test rows" in shown
    assert f"the crowd labels {crowd['n']:,} faces" in shown
    agrees = folder["subsets"]["crowd_agrees_with_label"]
    assert f"reads {agrees['n']:,} of the validation faces as their folder label" in shown
    assert f"agrees with that label on {agrees['accuracy']:.1%}" in shown
    sad, neutral = CLASSES.index("sad"), CLASSES.index("neutral")
    matrix = crowd["confusion_matrix"]  # the headline truth's
    assert f"{matrix[sad][neutral]:,} of the {sum(matrix[sad]):,} sad faces" in shown
    assert f"{matrix[neutral][sad]:,} of the {sum(matrix[neutral]):,} neutral faces" in shown
    assert f"before → {card['calibration']['ece_after']:.1%} after" in shown
    assert f"before → {card['calibration']['tv_after']:.1%} after" in shown
    assert "Cross-fitted ECE (fit on one half of validation, scored on the other)" in shown
    assert f"**Inference precision:** {card['inference']['precision']}" in shown
    assert metrics["AUROC"] == f"{card['uncertainty']['auroc_out_of_scope']:.2f}"
    assert {"Flagged, in scope", "Flagged, out of scope", "Threshold"} <= set(metrics)


def test_report_page_with_a_minimal_model_card(no_dataset, monkeypatch):
    from app import state

    monkeypatch.setattr(state, "card", lambda: {"name": "FerNet", "classes": list(CLASSES)})
    at = open_app(navigation.REPORT)
    assert texts(at.header) == ["Calibration"]
    assert [b.label for b in at.download_button] == ["Download the report (HTML)"]


def test_pages_draw_without_the_model_and_the_warm_up_loads_it_once(monkeypatch, no_dataset):
    import threading

    import fer.predict
    from app import setup, state

    loads = []
    real_load = fer.predict.load_classifier
    monkeypatch.setattr(fer.predict, "load_classifier", lambda *a, **k: loads.append(1) or real_load(*a, **k))
    state._classifier.clear()
    at = open_app()  # the Predict page with its sidebar switch, before any photo: the switch reads the checkpoint
    assert not at.exception and at.toggle(key=Key.TTA).value == fer.predict.served_with_tta()
    assert loads == []

    monkeypatch.delenv("FER_NO_WARMUP")
    setup.warm_up.cache_clear()
    setup.warm_up(state.classifier)
    for thread in threading.enumerate():
        if thread.name == setup.WARM_UP_THREAD:
            thread.join(timeout=120)
    assert loads == [1]
    state.classifier()  # what the first photo asks for: already loaded
    assert loads == [1]


def test_the_served_default_and_the_same_explicit_setting_share_one_cached_pipeline(no_dataset, photo_with_faces):
    from app import state

    served = state.shipped_tta()
    assert state.predictor() is state.predictor(served) is not state.predictor(not served)
    jpeg = encode(photo_with_faces[0])
    assert state.predict_photo(jpeg, "group.jpg") is state.predict_photo(jpeg, "group.jpg", tta=served)
