"""Bad input through the app's own widgets (Streamlit AppTest): every file a user may drop, generated here.

Each bad file must give a clear st.error (or st.warning) and never an exception block, odd-but-valid
files must give the same result as the Python API on the same bytes, and the page must keep working
for a good photo uploaded afterwards. The same cases through `load_image`, `Predictor` and the CLI
are in test_faces.py; this file checks what the app's users see.
"""

from __future__ import annotations

import re
import struct
import zlib

import numpy as np
import pytest
from conftest import encode, face_grid, iou, make_photo
from PIL import Image
from streamlit.testing.v1 import AppTest

from app import navigation
from app.results import in_reading_order
from app.session import Key
from fer.images import MIN_SIDE

pytestmark = pytest.mark.slow  # the real model and dataset end to end (AppTest, training, calibration)

NO_FACE_WARNING = "The face detector found no face in this photo"
MAX_FACE_CARDS = 12  # app/pages/predict.py shows a card for the first 12 faces; every face is in the downloads


@pytest.fixture(autouse=True)
def isolated(isolated_app, monkeypatch, tmp_path):
    """The app in isolation (conftest.isolated_app), with no dataset."""
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path / "no-dataset"))


# -- generated files --------------------------------------------------------------------------------


def png_of_zeros(width: int, height: int) -> bytes:
    """A valid 1-bit black PNG written chunk by chunk: a few KB even at 400 megapixels (a decompression bomb)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    row = bytes(1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row * min(1000, height - y)) for y in range(0, height, 1000))
    idat += compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def heic_like_bytes() -> bytes:
    """The start of an iPhone HEIC photo (ISO-BMFF `ftyp` box, brand heic): no decoder for it here."""
    ftyp = struct.pack(">I", 24) + b"ftypheic" + bytes(4) + b"mif1heic"
    return ftyp + struct.pack(">I", 16) + b"meta" + bytes(8) + bytes(200)


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200"><circle r="50"/></svg>'
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" + bytes(100)
TEXT = "Meeting notes: bring the photos ✓\n".encode() * 3


def mime_of(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower()
    known = {"jpg": "image/jpeg", "svg": "image/svg+xml", "heic": "image/heic", "pdf": "application/pdf"}
    return known.get(ext, f"image/{ext}")


@pytest.fixture(scope="module")
def group(detectable_faces):
    """A 900x700 photo with three real faces at known boxes, and its JPEG bytes."""
    photo, boxes = make_photo(detectable_faces[:3])
    return photo, boxes, encode(photo, "JPEG", quality=92)


@pytest.fixture(scope="module")
def bad_files(group) -> dict[str, tuple[bytes, str]]:
    """Files the app must refuse: name -> (bytes, what its message must say)."""
    photo, _, jpeg = group
    png = encode(photo, "PNG")
    return {
        "empty.jpg": (b"", r"empty\.jpg is empty \(0 bytes\)"),
        "notes.jpg": (TEXT, r"notes\.jpg is a text file, not an image"),
        "scan.jpg": (PDF, r"scan\.jpg is a PDF document, not an image"),
        "cut.jpg": (jpeg[: len(jpeg) * 6 // 10], r"cut\.jpg is truncated or corrupt"),
        "cut.png": (png[: len(png) * 6 // 10], r"cut\.png is truncated or corrupt"),
        "bomb.png": (png_of_zeros(20_000, 20_000), r"bomb\.png has far more pixels than the \d+ MP limit"),
        "dot.png": (encode(Image.new("RGB", (1, 1), "white"), "PNG"), rf"dot\.png is only 1x1 pixels.*{MIN_SIDE}"),
        "tiny.jpg": (encode(photo.resize((10, 10)), "JPEG"), r"tiny\.jpg is only 10x10 pixels"),
        # Vector drawings and HEIC photos renamed to an extension the uploader takes.
        "drawing.png": (SVG, r"drawing\.png is an SVG vector drawing, which is not supported"),
        "IMG_0001.jpg": (heic_like_bytes(), r"IMG_0001\.jpg is a HEIC/HEIF or AVIF photo, which cannot be decoded"),
    }


BAD = [
    "empty.jpg",
    "notes.jpg",
    "scan.jpg",
    "cut.jpg",
    "cut.png",
    "bomb.png",
    "dot.png",
    "tiny.jpg",
    "drawing.png",
    "IMG_0001.jpg",
]


@pytest.fixture(scope="module")
def thirty_faces(validation, predictor) -> bytes:
    """A JPEG of 30 different real faces on a 6x5 grid, every one of them found by the detector."""
    framed = []
    for i in range(0, len(validation), 3):
        photo, (box,) = face_grid([validation.images[i]], columns=1)
        found = predictor.detector.detect(np.asarray(photo))
        if len(found) == 1 and found[0].score > 0.85 and iou(found[0].box.as_list(), box) > 0.6:
            framed.append(validation.images[i])
        if len(framed) == 60:
            break
    chosen, spare = framed[:30], framed[30:]
    for _ in range(8):  # crowds can confuse a detector: swap the faces it misses for spare ones
        photo, boxes = face_grid(chosen, columns=6)
        found = [f.box.as_list() for f in predictor.detector.detect(np.asarray(photo))]
        missed = {i for i, box in enumerate(boxes) if not any(iou(box, other) > 0.5 for other in found)}
        if not missed and len(found) == 30:
            return encode(photo, "JPEG", quality=95)
        chosen = [spare.pop() if i in missed and spare else face for i, face in enumerate(chosen)]
    pytest.fail("could not build a 30-face photo that the detector reads completely")


def odd_files(group, thirty_faces) -> dict[str, bytes]:
    """Valid files in unusual forms: name -> bytes."""
    photo, _, _ = group
    gray16 = np.asarray(photo.convert("L")).astype(np.uint16) * 257
    rgba = np.dstack([np.asarray(photo), np.full(photo.size[::-1], 255, np.uint8)])
    rgba[:40] = 0  # a transparent strip
    palette = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    blank = Image.new("RGB", photo.size, (120, 120, 120))
    sideways = photo.transpose(Image.Transpose.ROTATE_90)  # stored turned; EXIF orientation 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    yy, xx = np.mgrid[0:480, 0:640]
    landscape = Image.fromarray(np.dstack([(xx / 3) % 255, (yy / 2) % 255, (xx + yy) % 255]).astype(np.uint8))
    return {
        "print-cmyk.jpg": encode(photo.convert("CMYK"), "JPEG", quality=95),
        "scan-16bit.png": encode(Image.fromarray(gray16), "PNG"),
        "cutout-rgba.png": encode(Image.fromarray(rgba, "RGBA"), "PNG"),
        "palette.gif": encode(palette, "GIF"),
        "animated.gif": encode(photo, "GIF", save_all=True, append_images=[blank, blank], duration=100, loop=0),
        "animated.webp": encode(photo, "WEBP", save_all=True, append_images=[blank, blank], duration=100, loop=0),
        "phone-exif.jpg": encode(sideways, "JPEG", quality=95, exif=exif.tobytes()),
        "landscape.jpg": encode(landscape, "JPEG"),
        "class-photo.jpg": thirty_faces,
    }


ODD = [
    "print-cmyk.jpg",
    "scan-16bit.png",
    "cutout-rgba.png",
    "palette.gif",
    "animated.gif",
    "animated.webp",
    "phone-exif.jpg",
    "landscape.jpg",
    "class-photo.jpg",
]
# What each odd file must show besides its faces (a caption under the summary), and how many faces it holds.
ODD_NOTES = {
    "animated.gif": "animated GIF: only the first frame was used",
    "animated.webp": "animated WebP: only the first frame was used",
    "phone-exif.jpg": "turned upright using its EXIF orientation",
}
ODD_FACES = {"landscape.jpg": 0, "class-photo.jpg": 30}


# -- the app ------------------------------------------------------------------------------------------


def open_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=240)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert_survived(at)
    return at


def assert_survived(at: AppTest) -> None:
    """No exception block on the page (the user would see 'This app has encountered an error')."""
    assert not at.exception, [e.message for e in at.exception]


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def upload(at: AppTest, *files: tuple[str, bytes]) -> AppTest:
    at.file_uploader(key=Key.UPLOADS).set_value([(name, data, mime_of(name)) for name, data in files])
    at.run()
    assert_survived(at)
    return at


def shows_three_faces(at: AppTest) -> bool:
    return (
        "3 faces found" in texts(at.subheader) and len([t for t in texts(at.subheader) if t.startswith("Face ")]) == 3
    )


def test_generated_cases_cover_the_list(bad_files, group, thirty_faces):
    assert sorted(BAD) == sorted(bad_files)
    assert sorted(ODD) == sorted(odd_files(group, thirty_faces))


@pytest.mark.parametrize("name", BAD)
def test_bad_file_gets_a_clear_error_and_the_page_keeps_working(bad_files, group, name):
    data, message = bad_files[name]
    at = upload(open_app(), (name, data))

    errors = texts(at.error)
    assert len(errors) == 1 and re.search(message, errors[0].replace("\\", "")), errors
    assert "Traceback" not in errors[0]
    assert not [t for t in texts(at.subheader) if t.startswith("Face ")]

    # The same session, a good photo next: read as usual.
    upload(at, ("group.jpg", group[2]))
    assert shows_three_faces(at) and not at.error


@pytest.mark.parametrize("name", ODD)
def test_odd_but_valid_file_is_read_like_the_api_reads_it(group, thirty_faces, predictor, name):
    data = odd_files(group, thirty_faces)[name]
    expected = in_reading_order(predictor.predict(data, name=name))  # the app numbers faces as they are read
    assert expected.error is None
    assert len(expected.faces) == ODD_FACES.get(name, 3)

    at = upload(open_app(), (name, data))

    assert not at.error
    subheaders = texts(at.subheader)
    titles = [t for t in subheaders if t.startswith("Face ")]
    if expected.faces:
        count = len(expected.faces)
        assert f"{count} face{'s' * (count != 1)} found" in subheaders
        assert (
            titles == [f"Face {f.index + 1}: {f.label} ({f.confidence:.0%})" for f in expected.faces][:MAX_FACE_CARDS]
        )
        captions = [c for image in at.image for c in image.captions]
        assert len([c for c in captions if c.startswith("Grad-CAM for ")]) == min(count, MAX_FACE_CARDS)
    else:
        assert "No face found" in subheaders and titles == []
        assert any(NO_FACE_WARNING in w for w in texts(at.warning))
    # Every photo, with or without faces, can be downloaded as CSV and JSON, and the CSV lists each face.
    csv_download = next(b for b in at.get("download_button") if "CSV" in b.proto.label)
    assert csv_download.proto.label == "Download results (CSV)"
    if name in ODD_NOTES:
        assert ODD_NOTES[name] in " ".join(texts(at.caption)).replace("\\", "")
    if name == "class-photo.jpg":
        assert any("first 12 of 30 faces" in c for c in texts(at.caption))
        assert any("and 18 more" in c for c in texts(at.caption))
        # The faces without a card are in the table under the cards: all 30, numbered as read.
        table = next(df.value for df in at.dataframe if "face" in df.value.columns)
        assert len(table) == 30 and table["face"].tolist() == list(range(1, 31))


def test_every_bad_file_at_once_with_one_good_photo(bad_files, group):
    files = [(name, bad_files[name][0]) for name in BAD]
    files.insert(3, ("group.jpg", group[2]))
    at = upload(open_app(), *files)

    assert f"{len(files)} photos" in texts(at.subheader)
    # One warning per file that could not be read, with fer's own message, in upload order.
    warnings = [w.replace("\\", "") for w in texts(at.warning)]
    assert len(warnings) == len(BAD) and not at.error
    for warning, name in zip(warnings, BAD, strict=True):
        assert re.search(bad_files[name][1], warning), (name, warning)
    gallery = [c for image in at.image for c in image.captions if re.search(r": \d+ faces?$", c)]
    assert gallery == ["group\\.jpg: 3 faces"]  # only the photo that could be read
    table = at.dataframe[0].value
    assert table["file"].tolist() == ["group.jpg"] * 3

    # Inspecting a bad one shows its full message; the good one shows its faces.
    inspect = at.selectbox(key=Key.INSPECT_PHOTO)
    inspect.set_value(0)
    at.run()
    assert_survived(at)
    assert re.search(bad_files[BAD[0]][1], " ".join(texts(at.error)).replace("\\", ""))
    at.selectbox(key=Key.INSPECT_PHOTO).set_value(3)
    at.run()
    assert_survived(at)
    assert len([t for t in texts(at.subheader) if t.startswith("Face ")]) == 3


@pytest.mark.parametrize(
    "name,data,message",
    [
        ("drawing.svg", SVG, r"drawing\.svg is an SVG vector drawing, which is not supported"),
        ("IMG_0001.heic", heic_like_bytes(), r"IMG_0001\.heic is a HEIC/HEIF or AVIF photo, which cannot be decoded"),
        ("report.pdf", PDF, r"report\.pdf is a PDF document, not an image"),
    ],
    ids=["svg", "heic", "pdf"],
)
def test_unsupported_format_by_its_real_name_gets_a_clear_message(group, name, data, message):
    # The uploader has no list of types: any file reaches fer, which says what is wrong with it.
    at = upload(open_app(), (name, data))
    errors = [e.replace("\\", "") for e in texts(at.error)]
    assert len(errors) == 1 and re.search(message, errors[0]), errors

    # With a good photo beside it: the same message as a warning, and the photo read as usual.
    upload(at, (name, data), ("group.jpg", group[2]))
    assert "2 photos" in texts(at.subheader) and len(at.dataframe[0].value) == 3
    assert [w.replace("\\", "") for w in texts(at.warning)] == errors


@pytest.mark.parametrize("name,data", [("drawing.svg", SVG), ("IMG_0001.heic", heic_like_bytes())], ids=["svg", "heic"])
def test_explain_page_takes_any_file_and_says_what_is_wrong(name, data):
    at = open_app(navigation.EXPLAIN)
    at.radio(key=Key.EXPLAIN_SOURCE).set_value("Upload a photo")
    at.run()
    at.file_uploader(key=Key.EXPLAIN_UPLOAD).set_value((name, data, mime_of(name)))
    at.run()
    assert_survived(at)
    assert any("not supported" in e or "cannot be decoded" in e for e in texts(at.error)), texts(at.error)


# -- the other inputs: the camera, the Explain page's uploader, the dataset folder ------------------


@pytest.mark.parametrize("name", ["notes.jpg", "cut.jpg", "empty.jpg"])
def test_camera_input_with_bad_bytes_gets_a_clear_error(bad_files, detectable_faces, name):
    # A browser sends a JPEG; a broken or hostile client may send anything as the camera's photo.
    at = open_app()
    at.radio(key=Key.PREDICT_SOURCE).set_value("Take a photo")
    at.run()
    at.camera_input(key=Key.CAMERA).set_value(("camera.jpg", bad_files[name][0], "image/jpeg"))
    at.run()
    assert_survived(at)
    errors = texts(at.error)
    assert len(errors) == 1 and errors[0].replace("\\", "").startswith("camera.jpg "), errors

    shot, _ = make_photo(detectable_faces[:1], size=(640, 480))
    at.camera_input(key=Key.CAMERA).set_value(("camera.jpg", encode(shot), "image/jpeg"))
    at.run()
    assert_survived(at)
    assert "1 face found" in texts(at.subheader) and not at.error


@pytest.mark.parametrize("name", ["notes.jpg", "bomb.png", "dot.png", "drawing.png"])
def test_explain_page_upload_gets_a_clear_error(bad_files, group, name):
    data, message = bad_files[name]
    at = open_app(navigation.EXPLAIN)
    at.radio(key=Key.EXPLAIN_SOURCE).set_value("Upload a photo")
    at.run()
    at.file_uploader(key=Key.EXPLAIN_UPLOAD).set_value((name, data, mime_of(name)))
    at.run()
    assert_survived(at)
    assert any(re.search(message, e.replace("\\", "")) for e in texts(at.error)), texts(at.error)

    at.file_uploader(key=Key.EXPLAIN_UPLOAD).set_value(("group.jpg", group[2], "image/jpeg"))
    at.run()
    assert_survived(at)
    assert not at.error
    assert "Faithfulness compared" in texts(at.subheader)


NOT_FOUND = "Dataset folder not found: {} (from {})."


@pytest.mark.parametrize(
    "folder, message",
    [
        ("/no/such/folder", NOT_FOUND.format("/no/such/folder", "--data")),
        ("README.md", NOT_FOUND.format("README.md", "--data")),
        ("   ", None),  # blank: the server's own setting, FER_DATA_DIR
        ("../" * 20, "No happy/sad/surprise/neutral image folders under " + "/".join([".."] * 20) + "."),
        ("~/\x00bad", NOT_FOUND.format("~/\x00bad", "--data")),
        ("x" * 5000, f"Dataset folder '{'x' * 200}' (from --data) cannot be used: File name too long."),
    ],
    ids=["missing", "a-file", "blank", "root", "nul-byte", "very-long"],
)
def test_dataset_folder_setting_with_bad_paths(monkeypatch, tmp_path, folder, message):
    monkeypatch.setenv("FER_ALLOW_DATA_DIR_SETTING", "1")  # the field is shown only where the operator allows it
    no_dataset = NOT_FOUND.format(tmp_path / "no-dataset", "FER_DATA_DIR")  # the isolated fixture's FER_DATA_DIR
    at = open_app(navigation.DATASET)
    at.text_input(key=Key.DATA_DIR).set_value(folder)
    at.run()
    assert_survived(at)
    assert at.title[0].value == "Dataset explorer"
    # The message for the typed path, shown in the "Dataset location" expander (the only place for server paths).
    problem = location_problem(at)
    assert problem.startswith(message or no_dataset), problem
    # Back to an empty field: the server's FER_DATA_DIR, which has no images either; still a clear message.
    at.text_input(key=Key.DATA_DIR).set_value("")
    at.run()
    assert_survived(at)
    problem = location_problem(at)
    assert problem.startswith(no_dataset), problem


def location_problem(at: AppTest) -> str:
    """The first line of the "Dataset location" expander: why there is no dataset, unescaped."""
    (location,) = [e for e in at.expander if e.label == "Dataset location"]
    return texts(location.markdown)[0].replace("\\", "")
