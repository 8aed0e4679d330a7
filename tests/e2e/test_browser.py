"""The real app in Debian Chromium: upload, camera, sample photo, every page, the HTML export, bad files.

Photos are built at run time from dataset faces (never stored); screenshots in docs/ use only the
public-domain astronaut photo that ships with scikit-image. Set FER_UPDATE_SCREENSHOTS=1 to copy
them into docs/screenshots/ (otherwise every screenshot stays in artifacts/screenshots/).
"""

from __future__ import annotations

import csv
import io
import os
import re
import zipfile

import numpy as np
import pytest
from conftest import encode, iou, make_photo
from PIL import Image
from playwright.sync_api import expect

from app.plots import CLASS_COLORS
from app.report import figures
from app.results import in_reading_order
from fer.batch import predict_batch
from fer.config import CLASSES
from fer.explain import METHODS

from .browser import (
    ROOT,
    VIEWPORT,
    assert_no_exception,
    fake_camera_page,
    go_to,
    image_of,
    open_app,
    snap,
    texts,
    wait_idle,
)

pytestmark = pytest.mark.browser

DOCS = ROOT / "docs" / "screenshots"
UPDATE_DOCS = os.environ.get("FER_UPDATE_SCREENSHOTS") == "1"
CAMERA_ATTEMPTS = 3  # Chromium's fake camera sometimes delivers no frame: relaunch and try again


def readme_shot(name: str):
    return DOCS / f"{name}.png" if UPDATE_DOCS else None


def face_titles(page) -> list[str]:
    return [t for t in texts(page.get_by_role("heading", level=3)) if t.startswith("Face ")]


def expected_titles(result) -> list[str]:
    return [f"Face {f.index + 1}: {f.label} ({f.confidence:.0%})" for f in result.faces]


def probability_charts(page):
    """(class names top to bottom, bar labels top to bottom) of every probability chart, as drawn."""
    charts = []
    for chart in page.get_by_test_id("stPlotlyChart").all():
        chart.locator("text.bartext").first.wait_for()
        charts.append(tuple(top_to_bottom(chart, selector) for selector in ("g.ytick text", "text.bartext")))
    return charts


def top_to_bottom(element, selector: str) -> list[str]:
    """Texts of the SVG elements matching `selector`, in the order they appear on screen from the top."""
    placed = element.locator(selector).evaluate_all(
        "nodes => nodes.map(n => [n.getBoundingClientRect().y, n.textContent.trim()])"
    )
    return [text for _, text in sorted(placed)]


def colourfulness(image: Image.Image) -> float:
    """Mean spread between the colour channels: 0 for a grey image, large for a heat map."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    return float((rgb.max(axis=2) - rgb.min(axis=2)).mean())


def hex_rgb(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float32)


def upload(page, *files) -> None:
    """Give files to the Predict page's uploader as a user's file picker would: (name, bytes, mime)."""
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
        [{"name": name, "mimeType": mime, "buffer": data} for name, data, mime in files]
    )


def download(page, button_name: str):
    with page.expect_download() as info:
        page.get_by_role("button", name=button_name).click()
    d = info.value
    return d.suggested_filename, open(d.path(), "rb").read()


# -- upload -------------------------------------------------------------------------------------------


def test_uploaded_photo_shows_boxes_labels_probabilities_and_cams(page, server, photo_with_faces, predictor):
    photo, pasted = photo_with_faces
    jpeg = encode(photo, "JPEG", quality=92)
    expected = in_reading_order(predictor.predict(jpeg, name="group.jpg"))  # numbered left to right
    assert len(expected.faces) == 3

    open_app(page, server)
    upload(page, ("group.jpg", jpeg, "image/jpeg"))
    page.get_by_role("heading", name="3 faces found").wait_for()
    page.get_by_test_id("stPlotlyChart").nth(2).wait_for()
    wait_idle(page)
    snap(page, "predict-upload")
    assert_no_exception(page, server)

    # Labels: one card per face, titled as the model predicts the same bytes.
    assert face_titles(page) == expected_titles(expected)

    # Boxes: the annotated photo has each face's box drawn in its class colour.
    annotated = image_of(page, page.get_by_test_id("stImage").filter(has_text="group.jpg").locator("img"))
    assert annotated.size == photo.size
    pixels = np.asarray(annotated.convert("RGB"), dtype=np.float32)
    for face in expected.faces:
        x, y, w, h = face.box.as_list()
        edge = pixels[y + 1, x + w // 4 : x + 3 * w // 4]  # the top side of the box
        assert np.abs(edge - hex_rgb(CLASS_COLORS[face.label])).mean() < 40, (face.label, edge.mean(axis=0))
        inside = pixels[y + h // 2, x + w // 2]
        assert np.ptp(inside) < 12  # only the outline is drawn: the grey face shows inside the box

    # Probabilities: one bar chart per face, the four classes in order, labelled with the model's numbers.
    charts = probability_charts(page)
    assert len(charts) == 3
    for (names, labels), face in zip(charts, expected.faces, strict=True):
        assert names == list(CLASSES)
        assert labels == [f"{p:.0%}" for p in face.probs]

    # Grad-CAM: a coloured heat map beside each grey face crop.
    cams = page.get_by_test_id("stImage").filter(has_text=re.compile(r"^Grad-CAM for "))
    seen = page.get_by_test_id("stImage").filter(has_text="what the model saw")
    assert cams.count() == 3 and seen.count() == 3
    assert texts(cams.get_by_test_id("stImageCaption")) == [f"Grad-CAM for {f.label}" for f in expected.faces]
    for i in range(3):
        grey, heat = image_of(page, seen.nth(i).locator("img")), image_of(page, cams.nth(i).locator("img"))
        assert grey.size == heat.size and min(grey.size) >= 48
        assert colourfulness(grey) < 3 < 20 < colourfulness(heat)

    # The CSV download holds the same boxes and labels.
    name, data = download(page, "Download results (CSV)")
    assert name.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))  # with a BOM, for Excel
    assert [row["label"] for row in rows] == [f.label for f in expected.faces]
    assert [row["face"] for row in rows] == ["1", "2", "3"]
    boxes = [[int(row[k]) for k in ("x", "y", "w", "h")] for row in rows]
    # The pasted faces are in a row: face 1 is the leftmost, as on the annotated photo.
    for box, face_box in zip(pasted, boxes, strict=True):
        assert iou(box, face_box) > 0.5, (box, face_box)


def test_a_bad_file_gets_a_message_and_a_good_one_still_works(page, server, photo_with_faces):
    open_app(page, server)
    upload(page, ("notes.jpg", b"Meeting notes, not a photo\n" * 20, "image/jpeg"))
    error = page.get_by_test_id("stAlertContentError")
    error.first.wait_for()
    assert "notes.jpg is a text file, not an image" in error.first.inner_text()
    assert_no_exception(page, server)

    # A vector drawing: the uploader takes any file, and fer says what is wrong with it.
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    upload(page, ("drawing.svg", svg, "image/svg+xml"))
    page.get_by_role("heading", name="2 photos").wait_for()
    wait_idle(page)
    warnings = texts(page.get_by_test_id("stAlertContentWarning"))
    assert page.get_by_test_id("stFileUploader").get_by_text("files are not allowed").count() == 0
    assert [w for w in warnings if "drawing.svg is an SVG vector drawing, which is not supported" in w], warnings
    snap(page, "predict-bad-files")
    assert_no_exception(page, server)

    # The uploader keeps the earlier files: the good photo is read, the bad ones keep their messages.
    upload(page, ("group.jpg", encode(photo_with_faces[0]), "image/jpeg"))
    page.get_by_role("heading", name="3 photos").wait_for()
    page.get_by_test_id("stImageCaption").filter(has_text="group.jpg: 3 faces").wait_for()
    wait_idle(page)
    assert_no_exception(page, server)
    warnings = texts(page.get_by_test_id("stAlertContentWarning"))
    assert "notes.jpg is a text file, not an image" in warnings[0], warnings
    assert page.get_by_role("heading", name="All faces").count() == 1


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_a_zip_upload_gives_the_table_and_one_csv(page, server, detectable_faces, predictor):
    group, _ = make_photo(detectable_faces[:3])
    single, _ = make_photo(detectable_faces[3:4], size=(500, 400))
    shoot = zip_of(
        {
            "shoot/group.jpg": encode(group),
            "shoot/notes.txt": b"not a photo\n",
            "shoot/single.png": encode(single, "PNG"),
        }
    )
    expected = [in_reading_order(r) for r in predict_batch(predictor, [("shoot.zip", shoot)])]
    faces = [(r.file, f) for r in expected for f in r.faces]
    assert len(faces) == 4

    open_app(page, server)
    upload(page, ("shoot.zip", shoot, "application/zip"))
    page.get_by_role("heading", name="All faces").wait_for()
    page.get_by_test_id("stDataFrame").wait_for()
    wait_idle(page)
    assert_no_exception(page, server)
    snap(page, "predict-zip")
    assert page.get_by_role("heading", name="3 photos").count() == 1
    warnings = texts(page.get_by_test_id("stAlertContentWarning"))
    assert len(warnings) == 1 and "shoot.zip/shoot/notes.txt is a text file, not an image" in warnings[0], warnings
    captions = texts(page.get_by_test_id("stImageCaption"))
    assert "shoot.zip/shoot/group.jpg: 3 faces" in captions and "shoot.zip/shoot/single.png: 1 face" in captions

    # One CSV for the whole zip: every face, and the member that could not be read.
    name, data = download(page, "Download results (CSV)")
    assert name == "fer-results.csv"
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))  # with a BOM, for Excel
    assert [(row["file"], row["face"], row["label"]) for row in rows if row["label"]] == [
        (file, str(face.index + 1), face.label) for file, face in faces
    ]
    (problem,) = [row for row in rows if row["error"]]
    assert problem["file"] == "shoot.zip/shoot/notes.txt" and problem["error"].startswith("shoot.zip/shoot/notes.txt")
    for row, (_, face) in zip([row for row in rows if row["label"]], faces, strict=True):
        assert float(row["uncertainty"]) == pytest.approx(face.uncertainty, abs=1e-4)
        assert row["uncertain"] == str(bool(face.uncertain))


# -- camera -------------------------------------------------------------------------------------------


def write_y4m(path, gray: np.ndarray, frames: int = 30, fps: int = 10) -> None:
    """A YUV4MPEG2 clip (4:2:0) of a still grey picture: what Chromium's fake camera plays."""
    height, width = gray.shape
    assert width % 2 == 0 and height % 2 == 0
    header = f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode()
    chroma = bytes([128]) * (width // 2 * height // 2 * 2)  # neutral U and V: a grey picture
    path.write_bytes(header + (b"FRAME\n" + gray.astype(np.uint8).tobytes() + chroma) * frames)


@pytest.fixture()
def camera_clip(tmp_path, detectable_faces, predictor):
    """A 640x480 clip of one dataset face (the one the model is surest about), pasted large."""
    best = max(detectable_faces, key=lambda f: predictor.classifier.predict_proba(f[None])[0].max())
    photo, _ = make_photo([best], size=(640, 480), face_side=240)
    gray = np.asarray(photo.convert("L"))
    path = tmp_path / "face.y4m"
    write_y4m(path, gray)
    return path, predictor.predict(encode(Image.fromarray(gray)), name="camera.jpg")


def snap_camera_photo(playwright, server, clip, attempt: int) -> list[str]:
    browser, page = fake_camera_page(playwright, server, clip)
    try:
        page.get_by_role("radiogroup", name="Photo source").get_by_text("Take a photo").click()
        button = page.get_by_role("button", name="Take Photo")
        button.wait_for()
        page.wait_for_function(
            """() => [...document.querySelectorAll('button')].some(b => b.innerText.trim() === 'Take Photo' && !b.disabled)""",
            timeout=60_000,
        )
        page.wait_for_timeout(1000)  # let a few frames arrive
        button.click()
        page.get_by_role("heading", name=re.compile(r"^(\d+ faces? found|No face found)$")).wait_for(timeout=90_000)
        if page.get_by_role("heading", name="No face found").count() == 0:
            page.get_by_test_id("stPlotlyChart").first.wait_for()  # the face card is complete
        wait_idle(page)
        snap(page, f"predict-camera-attempt{attempt}")
        assert_no_exception(page, server)
        return [t for t in texts(page.get_by_role("heading", level=3)) if "found" in t] + face_titles(page)
    finally:
        browser.close()


def test_camera_snapshot_is_classified(playwright_instance, server, camera_clip):
    clip, expected = camera_clip
    assert len(expected.faces) == 1
    failures = []
    for attempt in range(1, CAMERA_ATTEMPTS + 1):
        try:
            headings = snap_camera_photo(playwright_instance, server, clip, attempt)
        except Exception as error:  # noqa: BLE001 (the fake camera is flaky: try again, report every failure)
            failures.append(f"attempt {attempt}: {type(error).__name__}: {str(error)[:300]}")
            continue
        assert headings[0] == "1 face found", headings
        # The camera re-encodes the picture (YUV, JPEG): same face, same verdict.
        assert headings[1].startswith(f"Face 1: {expected.faces[0].label} ("), (headings, expected_titles(expected))
        return
    pytest.fail(f"the fake camera gave no photo in {CAMERA_ATTEMPTS} attempts:\n" + "\n".join(failures))


def test_uploaded_photo_is_still_there_after_visiting_another_page(page, server, photo_with_faces):
    open_app(page, server)
    upload(page, ("group.jpg", encode(photo_with_faces[0]), "image/jpeg"))
    page.get_by_role("heading", name="3 faces found").wait_for()
    go_to(page, "Explain", "Explain a prediction")
    page.get_by_role("heading", name=re.compile(r"^group\.jpg, face 1$")).wait_for()
    go_to(page, "Predict", "Predict emotions in a photo")
    page.get_by_role("heading", name="3 faces found").wait_for()
    wait_idle(page)
    assert_no_exception(page, server)
    expect(page.get_by_text(re.compile("you gave earlier"))).to_have_count(1)
    page.get_by_role("button", name="Clear").click()
    page.get_by_text(re.compile("^Upload one or more photos")).wait_for()
    assert page.get_by_role("heading", name="3 faces found").count() == 0


# -- sample photo, every page, report export ---------------------------------------------------------


def test_sample_photo_then_explain_its_face(page, server):
    open_app(page, server)
    page.get_by_role("radiogroup", name="Photo source").get_by_text("Try a sample photo").click()
    found = page.get_by_role("heading", name=re.compile(r"^\d+ faces? found$"))
    found.wait_for()
    page.get_by_test_id("stPlotlyChart").first.wait_for()
    wait_idle(page)
    assert_no_exception(page, server)
    expect(page.get_by_test_id("stMain").get_by_test_id("stCaptionContainer").filter(has_text="NASA")).to_have_count(1)
    assert found.inner_text() == "1 face found"  # the astronaut
    assert re.fullmatch(rf"Face 1: ({'|'.join(CLASSES)}) \(\d+%\)", face_titles(page)[0])
    assert page.get_by_test_id("stImage").filter(has_text="Grad-CAM for").count() == 1
    assert [names for names, _ in probability_charts(page)] == [list(CLASSES)]
    snap(page, "readme-predict", also=readme_shot("predict"))

    go_to(page, "Explain", "Explain a prediction")
    source = page.get_by_role("radiogroup", name="Face to explain")
    expect(source.get_by_role("radio", name="Faces from the Predict page")).to_be_checked()
    page.get_by_role("heading", name="Faithfulness compared").wait_for()
    page.get_by_test_id("stPlotlyChart").nth(1).wait_for()
    wait_idle(page)
    assert_no_exception(page, server)
    assert page.get_by_role("heading", name="astronaut.png, face 1").count() == 1
    names = [t for t in texts(page.locator("strong")) if t in (*METHODS, "Random map (baseline)")]
    assert names == [*METHODS, "Random map (baseline)"]
    scores = [float(t) for t in texts(page.get_by_test_id("stMetricValue"))]
    assert len(scores) == len(METHODS) + 1 and all(np.isfinite(scores))
    # The face explained once per class: four cards, in class order, each with its map.
    evidence = page.get_by_role("heading", name="Evidence for each expression")
    evidence.wait_for()
    wait_idle(page)
    assert [t for t in texts(page.locator("strong")) if t in CLASSES][-len(CLASSES) :] == list(CLASSES)
    assert page.get_by_test_id("stImage").count() == 1 + len(METHODS) + 1 + len(CLASSES)
    assert "it/s]" not in server.log()  # Score-CAM's progress bars stay out of the server's log
    snap(page, "readme-explain", also=readme_shot("explain"))


def test_dataset_page_shows_metrics_confusion_matrix_and_images(page, server, validation, validation_outputs, card):
    open_app(page, server)
    go_to(page, "Dataset", "Dataset explorer")
    page.get_by_role("heading", name="Browse images").wait_for()
    page.get_by_test_id("stImage").first.wait_for()
    wait_idle(page)
    assert_no_exception(page, server)
    metrics = dict(
        zip(texts(page.get_by_test_id("stMetricLabel")), texts(page.get_by_test_id("stMetricValue")), strict=True)
    )
    # Against the crowd's label (the default truth): the faces it labelled.
    from fer import data

    crowd, _ = data.crowd_labels(validation, data.load_votes(data.find_votes_file(data.find_data_dir())))
    labelled = crowd >= 0
    assert metrics["Images"] == f"{labelled.sum():,}"
    # The served model's accuracy on validation, scored here on this CPU, or as the model card stored it
    # (int8 kernels differ a little between CPUs, which can move the last digit).
    scored_here = (validation_outputs[0].argmax(1)[labelled] == crowd[labelled]).mean()
    stored = card["metrics"]["validation"]["crowd"]["accuracy"]
    assert metrics["Accuracy"] in {f"{scored_here:.1%}", f"{stored:.1%}"}
    assert page.get_by_role("heading", name="Confusion matrix").count() == 1
    assert page.get_by_test_id("stVegaLiteChart").count() >= 1
    assert page.get_by_role("heading", name="Class balance").count() == 1
    snap(page, "dataset-full")  # shows dataset faces: artifacts only, never docs

    # docs/screenshots: the metrics part only, down to just above the image browser, with no image in it.
    top_of_images = page.get_by_role("heading", name="Browse images").bounding_box()["y"] - 16
    for box in (img.bounding_box() for img in page.get_by_test_id("stMain").locator("img").all()):
        assert box is None or box["y"] >= top_of_images, "an image lies inside the screenshot crop"
    clip = {"x": 0, "y": 0, "width": VIEWPORT["width"], "height": top_of_images}
    snap(page, "readme-dataset", also=readme_shot("dataset"), clip_to=clip)


def test_report_page_and_its_self_contained_html_export(page, server, card):
    open_app(page, server)
    go_to(page, "Model report", "Model report")
    page.get_by_role("heading", name="Data card").wait_for()
    page.get_by_test_id("stPlotlyChart").first.wait_for()
    wait_idle(page)
    assert_no_exception(page, server)
    headings = texts(page.get_by_role("heading", level=2))
    for heading in ("Intended use and limitations", "Training curves", "Results by class", "Calibration", "Data card"):
        assert heading in headings
    accuracy = f"{card['metrics']['validation']['crowd']['accuracy']:.1%}"  # the card's headline, as stored
    assert page.get_by_test_id("stMetricLabel").first.inner_text() == "Validation accuracy (crowd)"
    assert page.get_by_test_id("stMetricValue").first.inner_text() == accuracy
    snap(page, "readme-report", also=readme_shot("report"))

    name, data = download(page, "Download the report (HTML)")
    assert name.endswith(".html")
    html = data.decode("utf-8")
    assert html.lstrip().lower().startswith("<!doctype html")
    assert not re.search(r"<script[^>]+src=", html, re.I), "a script is loaded from elsewhere"
    assert not re.search(r"<(link|img|iframe)[^>]+(href|src)=[\"']?(https?:)?//", html, re.I)
    # plotly.js itself inline, then one chart drawn into its own element per figure the card has data for.
    assert re.search(r"plotly\.js v\d", html), "plotly.js is not in the file"
    charts = re.findall(r'Plotly\.newPlot\(\s*"([^"]+)"', html)
    assert len(charts) == len(figures(card)) >= 5, charts
    assert all(f'<div id="{chart}"' in html for chart in charts)
    assert f"<div class='label'>Validation accuracy (crowd)</div><div class='value'>{accuracy}</div>" in html
    assert "data:image/jpeg" not in html  # no photos of faces inside


def test_every_page_opens_with_its_heading(page, server):
    open_app(page, server)
    expect(page.get_by_role("radiogroup", name="Photo source").get_by_role("radio")).to_have_count(3)
    expect(page.get_by_test_id("stAlertContentInfo")).to_contain_text("sample photo")
    for link, heading in (
        ("Explain", "Explain a prediction"),
        ("Dataset", "Dataset explorer"),
        ("Model report", "Model report"),
        ("Predict", "Predict emotions in a photo"),
    ):
        go_to(page, link, heading)
        wait_idle(page)
        assert_no_exception(page, server)
        assert texts(page.get_by_role("heading", level=1)) == [heading]
        snap(page, f"page-{link.lower().replace(' ', '-')}")


# -- user text: file names ----------------------------------------------------------------------------

ODD_NAME = "=HYPERLINK(1) **bold** <b>x</b> [link](http://a).jpg"


@pytest.fixture()
def odd_name_results(page, server, photo_with_faces):
    """The Predict page after uploading a photo whose file name holds a formula, Markdown and HTML."""
    open_app(page, server)
    upload(page, (ODD_NAME, encode(photo_with_faces[0]), "image/jpeg"))
    page.get_by_role("heading", name="3 faces found").wait_for()
    page.get_by_test_id("stPlotlyChart").nth(2).wait_for()
    wait_idle(page)
    assert_no_exception(page, server)
    return page


def test_file_names_are_shown_as_plain_text(odd_name_results):
    page = odd_name_results
    caption = page.get_by_test_id("stImage").first.get_by_test_id("stImageCaption")
    assert caption.inner_text() == ODD_NAME
    main = page.get_by_test_id("stMain")
    assert main.locator("b", has_text="x").count() == 0 and main.locator("a[href='http://a']").count() == 0


def test_csv_export_defuses_formulas_in_file_names(odd_name_results):
    _, data = download(odd_name_results, "Download results (CSV)")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))  # with a BOM, for Excel
    assert len(rows) == 3
    assert all(row["file"] == "'" + ODD_NAME for row in rows), [row["file"] for row in rows]
