"""Bad input everywhere: every kind of file a user may drop, generated on the fly, through
`load_image`, `Predictor.predict` and the CLI. Good-but-odd files (CMYK, 16-bit, RGBA, palette,
animated, EXIF-rotated) must be read correctly; bad ones must give an `ImageError` whose message says
what is wrong and what to do, and never stop the other files.
"""

import io
import json
import re
import struct
import zipfile
import zlib

import cv2
import numpy as np
import pytest
from conftest import assert_boxes_match, encode, found_boxes, iou, make_photo
from PIL import Image, ImageFile

from fer.cli import main
from fer.errors import ImageError
from fer.faces import Box
from fer.images import MAX_FILE_BYTES, MAX_PIXELS, MIN_SIDE, load_image
from fer.record import photo_record

# -- generated files --------------------------------------------------------------------------------


def png_of_zeros(width: int, height: int) -> bytes:
    """A valid 1-bit black PNG of any size, written chunk by chunk: a few KB even for 400 MP."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    rows_per_step = 1000
    idat = b"".join(compressor.compress(row * min(rows_per_step, height - y)) for y in range(0, height, rows_per_step))
    idat += compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def heic_like_bytes() -> bytes:
    """The start of a HEIC file (ISO-BMFF `ftyp` box, brand heic): Pillow has no decoder for it."""
    ftyp = struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heic"
    return ftyp + struct.pack(">I", 16) + b"meta" + bytes(8) + bytes(200)


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200"><circle r="50"/></svg>'


@pytest.fixture(scope="module")
def photo_jpeg(photo_with_faces_module) -> bytes:
    return encode(photo_with_faces_module[0], "JPEG", quality=92)


@pytest.fixture(scope="module")
def photo_with_faces_module(framed_faces, predictor):
    """A 900x700 photo with 3 real faces at known boxes (conftest's make_photo), checked to be found."""
    photo, boxes = make_photo(framed_faces[:3])
    found = [f.box.as_list() for f in predictor.detector.detect(np.asarray(photo))]
    assert_boxes_match(found, boxes)
    return photo, boxes


@pytest.fixture(scope="module")
def bad_files(photo_jpeg, photo_with_faces_module) -> dict[str, tuple[bytes, str]]:
    """File name -> (bytes, the message the user must get)."""
    photo = photo_with_faces_module[0]
    png = encode(photo, "PNG")
    icon = encode(photo.resize((64, 64)), "ICO")
    return {
        "empty.jpg": (b"", r"^empty\.jpg is empty \(0 bytes\); check that it was saved or downloaded completely\.$"),
        "notes.jpg": (
            "Meeting notes: bring the photos ✓\n".encode() * 3,
            r"^notes\.jpg is a text file, not an image; use a JPEG, PNG, WebP, GIF or BMP image\.$",
        ),
        "scan.jpg": (
            b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" + bytes(100),
            r"^scan\.jpg is a PDF document, not an image; export the page as a PNG or JPEG image\.$",
        ),
        "cut.jpg": (
            photo_jpeg[: len(photo_jpeg) * 6 // 10],
            r"^cut\.jpg is truncated or corrupt and cannot be decoded",
        ),
        "cut.png": (png[: len(png) * 6 // 10], r"^cut\.png is truncated or corrupt and cannot be decoded"),
        "header.jpg": (photo_jpeg[:12], r"^header\.jpg is a JPEG whose header is damaged; re-save or re-download"),
        "bomb.png": (
            png_of_zeros(20_000, 20_000),
            rf"^bomb\.png has far more pixels than the {MAX_PIXELS // 10**6} MP limit",
        ),
        "panorama.png": (
            png_of_zeros(10_000, 6_000),
            rf"^panorama\.png is 10000x6000 pixels \(60 MP\); the limit is {MAX_PIXELS // 10**6} MP\. Resize it",
        ),
        "dot.png": (
            encode(Image.new("RGB", (1, 1), "white"), "PNG"),
            rf"^dot\.png is only 1x1 pixels; a face needs at least {MIN_SIDE}x{MIN_SIDE}\. Use a larger photo\.$",
        ),
        "tiny.jpg": (encode(photo.resize((10, 10)), "JPEG"), r"^tiny\.jpg is only 10x10 pixels; a face needs at least"),
        "drawing.svg": (SVG, r"^drawing\.svg is an SVG vector drawing, which is not supported; export it as a PNG\.$"),
        "IMG_0001.heic": (
            heic_like_bytes(),
            r"^IMG_0001\.heic is a HEIC/HEIF or AVIF photo, which cannot be decoded here; convert it to JPEG",
        ),
        "favicon.ico": (icon, r"^favicon\.ico is an icon \(ICO\) file, which is not supported; save it as PNG\.$"),
        "art.psd": (b"8BPS\x00\x01" + bytes(200), r"^art\.psd is a Photoshop \(PSD\) file, which is not supported"),
        "image.pcx": (
            encode(photo.resize((64, 64)), "PCX"),
            r"^image\.pcx is not an image that can be read here; use a JPEG, PNG",
        ),
        "photos.jpg": (_zip_of({"a.jpg": photo_jpeg}), r"^photos\.jpg is a ZIP archive, not an image; unpack it"),
        "huge.jpg": (photo_jpeg + bytes(MAX_FILE_BYTES), r"^huge\.jpg is larger than 50 MB; use a smaller image"),
    }


def _zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


BAD_NAMES = [
    "empty.jpg",
    "notes.jpg",
    "scan.jpg",
    "cut.jpg",
    "cut.png",
    "header.jpg",
    "bomb.png",
    "panorama.png",
    "dot.png",
    "tiny.jpg",
    "drawing.svg",
    "IMG_0001.heic",
    "favicon.ico",
    "art.psd",
    "image.pcx",
    "photos.jpg",
    "huge.jpg",
]


def test_bad_names_cover_every_generated_file(bad_files):
    assert sorted(BAD_NAMES) == sorted(bad_files)


# -- bad files: the same message from the API, the pipeline and the CLI -----------------------------


@pytest.mark.parametrize("name", BAD_NAMES)
def test_load_image_refuses_bad_file_with_a_clear_message(bad_files, name):
    data, message = bad_files[name]
    with pytest.raises(ImageError) as caught:
        load_image(data, name=name)
    assert re.search(message, str(caught.value)), str(caught.value)
    assert "Traceback" not in str(caught.value)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_predictor_returns_an_error_entry_for_bad_file(predictor, bad_files, tmp_path, name):
    data, message = bad_files[name]
    path = tmp_path / name
    path.write_bytes(data)
    for result in (
        predictor.predict(path),
        predictor.predict(data, name=name),
        predictor.predict(io.BytesIO(data), name=name),
    ):
        assert result.file == name
        assert re.search(message, result.error), result.error
        assert result.faces == [] and result.image is None
        assert photo_record(result)["error"] == result.error


def test_cli_reports_every_bad_file_and_still_predicts_the_good_ones(
    bad_files, photo_jpeg, photo_with_faces_module, tmp_path, capsys
):
    paths = []
    for name in BAD_NAMES:
        (tmp_path / name).write_bytes(bad_files[name][0])
        paths.append(tmp_path / name)
    (tmp_path / "good.jpg").write_bytes(photo_jpeg)
    paths.insert(len(paths) // 2, tmp_path / "good.jpg")

    code = main(["predict", "--json", *map(str, paths)])

    captured = capsys.readouterr()
    assert code != 0
    assert "Traceback" not in captured.err
    entries = json.loads(captured.out)
    assert [entry["file"] for entry in entries] == [path.name for path in paths]
    for entry in entries:
        if entry["file"] == "good.jpg":
            assert entry["error"] is None
            assert_boxes_match([face["box"] for face in entry["faces"]], photo_with_faces_module[1])
        else:
            assert re.search(bad_files[entry["file"]][1], entry["error"]), entry
            assert entry["faces"] == []


def test_pixel_cap_refuses_before_any_pixel_is_decoded(bad_files, monkeypatch):
    def decode_forbidden(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode_forbidden)
    for name in ("bomb.png", "panorama.png"):
        with pytest.raises(ImageError, match=r"MP limit|the limit is \d+ MP"):
            load_image(bad_files[name][0], name=name)
    # The spy works: a PNG within the limits does reach the decoder.
    with pytest.raises(ImageError, match=r"cannot be decoded \(AssertionError\)"):
        load_image(png_of_zeros(100, 100), name="small.png")


def test_bomb_files_are_small(bad_files):
    # The point of a decompression bomb: a few KB on disk, gigabytes once decoded.
    assert len(bad_files["bomb.png"][0]) < 100_000


def test_image_just_under_the_pixel_cap_is_accepted():
    side = int(MAX_PIXELS**0.5) - 1
    loaded = load_image(png_of_zeros(side, side), name="big.png")
    assert loaded.size == (side, side)


def test_missing_file_folder_and_unreadable_stream_give_clear_messages(predictor, tmp_path):
    with pytest.raises(ImageError, match=r"^File not found: .*nope\.jpg; check the path\.$"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match=r"is a folder, not an image file"):
        load_image(tmp_path)

    class BrokenStream(io.RawIOBase):
        def read(self, size=-1):
            raise OSError(5, "Input/output error")

    with pytest.raises(ImageError, match=r"^upload\.jpg could not be read \(Input/output error\)"):
        load_image(BrokenStream(), name="upload.jpg")
    with pytest.raises(ImageError, match=r"opened as text; open it in binary mode"):
        load_image(io.StringIO("not bytes"), name="text.jpg")
    result = predictor.predict(tmp_path / "nope.jpg")
    assert result.file == "nope.jpg" and result.error.startswith("File not found")


def test_file_over_the_size_cap_is_refused_from_its_size_alone(tmp_path):
    path = tmp_path / "huge.png"
    with open(path, "wb") as f:  # a sparse file: its size is known without writing 50 MB
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ImageError, match=r"huge\.png is larger than 50 MB"):
        load_image(path, name="huge.png")


# -- odd but valid files: read correctly --------------------------------------------------------------


def gray_of(loaded) -> np.ndarray:
    return np.asarray(loaded.image.convert("L"), dtype=np.float32)


def test_cmyk_jpeg_keeps_its_colours_and_faces(predictor, photo_with_faces_module):
    photo, boxes = photo_with_faces_module
    data = encode(photo.convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"

    loaded = load_image(data, name="print.jpg")

    assert loaded.image.mode == "RGB" and loaded.format == "JPEG"
    # Inverted CMYK (a classic Adobe-marker bug) would be off by ~100 grey levels.
    assert np.abs(gray_of(loaded) - np.asarray(photo.convert("L"), dtype=np.float32)).mean() < 4
    result = predictor.predict(data, name="print.jpg")
    assert result.error is None
    assert_boxes_match(found_boxes(result), boxes)


def test_16bit_grey_png_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (32, 1))
    data = encode(Image.fromarray(ramp), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"

    gray = gray_of(load_image(data, name="scan16.png"))[0]

    expected = ramp[0] / 257.0
    assert np.abs(gray - expected).max() <= 1  # clipping would turn everything above 255/65535 white
    assert gray[128] == pytest.approx(128, abs=1)
    assert np.all(np.diff(gray) >= 0) and gray[0] == 0 and gray[-1] == 255


def test_16bit_colour_png_is_scaled_and_faces_found(predictor, photo_with_faces_module):
    photo, boxes = photo_with_faces_module
    rgb8 = np.asarray(photo)
    bgr16 = rgb8[:, :, ::-1].astype(np.uint16) * 257  # what a 16-bit export of the same photo holds
    ok, buffer = cv2.imencode(".png", bgr16)
    assert ok

    loaded = load_image(buffer.tobytes(), name="raw16.png")
    assert np.abs(np.asarray(loaded.image, dtype=np.int16) - rgb8).max() <= 1
    result = predictor.predict(buffer.tobytes(), name="raw16.png")
    assert_boxes_match(found_boxes(result), boxes)


def test_16bit_grey_photo_finds_faces(predictor, photo_with_faces_module):
    photo, boxes = photo_with_faces_module
    gray16 = np.asarray(photo.convert("L")).astype(np.uint16) * 257
    for fmt in ("PNG", "TIFF"):
        result = predictor.predict(encode(Image.fromarray(gray16), fmt), name=f"gray16.{fmt.lower()}")
        assert result.error is None
        assert_boxes_match(found_boxes(result), boxes)


def test_rgba_png_transparency_is_white_and_faces_found(predictor, photo_with_faces_module):
    photo, boxes = photo_with_faces_module
    rgba = np.dstack([np.asarray(photo), np.full(photo.size[::-1], 255, np.uint8)])
    rgba[:50, :, :] = 0  # a transparent strip whose hidden colour is black
    data = encode(Image.fromarray(rgba, "RGBA"), "PNG")

    loaded = load_image(data, name="cutout.png")

    pixels = np.asarray(loaded.image)
    assert np.all(pixels[:50] == 255)
    assert np.array_equal(pixels[50:], np.asarray(photo)[50:])
    assert_boxes_match(found_boxes(predictor.predict(data, name="cutout.png")), boxes)


def test_palette_gif_and_transparent_palette_png(predictor, photo_with_faces_module):
    photo, boxes = photo_with_faces_module
    palette = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    for data, name in ((encode(palette, "GIF"), "photo.gif"), (encode(palette, "PNG", transparency=0), "photo.png")):
        loaded = load_image(data, name=name)
        assert loaded.image.mode == "RGB" and loaded.notes == []
        result = predictor.predict(data, name=name)
        assert result.error is None
        assert_boxes_match(found_boxes(result), boxes)


def test_greyscale_and_bilevel_images(predictor, photo_with_faces_module):
    photo, boxes = photo_with_faces_module
    result = predictor.predict(encode(photo.convert("L"), "JPEG"), name="gray.jpg")
    assert_boxes_match(found_boxes(result), boxes)
    loaded = load_image(encode(photo.convert("1"), "BMP"), name="fax.bmp")
    assert loaded.image.mode == "RGB" and set(np.unique(np.asarray(loaded.image))) <= {0, 255}


ANIMATED = [("GIF", "animated GIF"), ("WEBP", "animated WebP"), ("PNG", "animated PNG")]


@pytest.mark.parametrize("fmt,kind", ANIMATED)
def test_animation_uses_the_first_frame_and_says_so(predictor, photo_with_faces_module, fmt, kind):
    photo, boxes = photo_with_faces_module
    blank = Image.new("RGB", photo.size, (120, 120, 120))
    faces_first = encode(photo, fmt, save_all=True, append_images=[blank, blank], duration=100, loop=0)
    faces_last = encode(blank, fmt, save_all=True, append_images=[blank, photo], duration=100, loop=0)

    result = predictor.predict(faces_first, name=f"clip.{fmt.lower()}")

    assert result.error is None
    assert f"{kind}: only the first frame was used" in result.notes
    assert_boxes_match(found_boxes(result), boxes)
    # Frames after the first are really ignored: faces only in the last frame are not found.
    later = predictor.predict(faces_last, name=f"late.{fmt.lower()}")
    assert later.faces == [] and f"{kind}: only the first frame was used" in later.notes


def test_single_frame_gif_gets_no_animation_note(photo_with_faces_module):
    assert load_image(encode(photo_with_faces_module[0], "GIF"), name="still.gif").notes == []


# Stored pixels for each EXIF orientation, made from the upright photo (EXIF 2.3, tag 0x0112: the
# orientation says how the stored rows and columns map to the upright view).
STORED_FROM_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # stored turned 90 degrees counter-clockwise; the viewer turns it back
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.fixture(scope="module")
def off_centre_photo(framed_faces):
    """A 640x480 photo with one real face off-centre (so that every flip and turn moves its box)."""
    photo = Image.new("RGB", (640, 480), (150, 140, 130))
    box = [70, 150, 220, 220]
    photo.paste(Image.fromarray(framed_faces[1]).resize(box[2:], Image.Resampling.BICUBIC).convert("RGB"), box[:2])
    return photo, box


@pytest.mark.parametrize("orientation", sorted(STORED_FROM_UPRIGHT))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_rotated_photo_is_turned_upright(predictor, off_centre_photo, orientation, fmt):
    upright, box = off_centre_photo
    stored = upright.transpose(STORED_FROM_UPRIGHT[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(stored, fmt, exif=exif.tobytes(), **({"quality": 95} if fmt != "PNG" else {}))

    loaded = load_image(data, name="phone.jpg")
    result = predictor.predict(data, name="phone.jpg")

    assert loaded.size == upright.size
    assert "turned upright using its EXIF orientation" in loaded.notes
    assert result.error is None
    assert_boxes_match(found_boxes(result), [box])


def test_exif_test_photo_really_needs_turning(predictor, off_centre_photo):
    # Guards the test above: read as stored (no EXIF), the turned photo has no upright face where expected.
    upright, box = off_centre_photo
    stored = upright.transpose(STORED_FROM_UPRIGHT[6])
    result = predictor.predict(encode(stored, "JPEG"), name="sideways.jpg")
    assert not any(iou(face.box.as_list(), box) > 0.5 for face in result.faces)


def test_damaged_or_odd_exif_does_not_stop_the_photo(predictor, off_centre_photo):
    upright, box = off_centre_photo
    jpeg = encode(upright, "JPEG")
    broken_exif = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + bytes(20)
    segment = b"\xff\xe1" + struct.pack(">H", len(broken_exif) + 2) + broken_exif

    def read_as_stored(data: bytes):
        loaded = load_image(data, name="odd.jpg")
        assert loaded.size == upright.size
        assert not any("turned upright" in note for note in loaded.notes)
        assert_boxes_match(found_boxes(predictor.predict(data, name="odd.jpg")), [box])

    with pytest.warns(UserWarning, match="Corrupt EXIF data"):  # Pillow's own word on the damaged block
        read_as_stored(jpeg[:2] + segment + jpeg[2:])
    for orientation in (9, 1):  # not an orientation; already upright
        read_as_stored(_jpeg_with_orientation(upright, orientation))


def _jpeg_with_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", exif=exif.tobytes())


def test_photo_without_a_face(predictor):
    yy, xx = np.mgrid[0:480, 0:640]
    landscape = Image.fromarray(np.dstack([(xx / 3) % 255, (yy / 2) % 255, (xx + yy) % 255]).astype(np.uint8))
    result = predictor.predict(encode(landscape, "JPEG"), name="landscape.jpg")
    assert result.error is None and result.faces == [] and result.faces_found == 0
    assert "no face found" in result.notes
    assert result.image is not None


def test_small_images_at_the_minimum_side_are_read(predictor, framed_faces):
    face = Image.fromarray(framed_faces[0]).resize((MIN_SIDE, MIN_SIDE))
    result = predictor.predict(encode(face, "PNG"), name="thumb.png", detect=False)
    assert result.error is None and len(result.faces) == 1
    assert result.faces[0].box == Box(0, 0, MIN_SIDE, MIN_SIDE)


def test_messages_start_with_the_file_name_and_are_one_clean_sentence(bad_files):
    for name in BAD_NAMES:
        with pytest.raises(ImageError) as caught:
            load_image(bad_files[name][0], name=name)
        message = str(caught.value)
        assert message.startswith(name) and message.endswith(".")
        assert "Traceback" not in message and "\n" not in message and "object at 0x" not in message


def test_file_label_defaults(tmp_path, photo_jpeg):
    with pytest.raises(ImageError, match=r"^The file is empty"):
        load_image(b"")
    path = tmp_path / "x.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=rf"^{re.escape(str(path))} is empty"):
        load_image(path)
    assert load_image(bytearray(photo_jpeg)).format == "JPEG"
    assert load_image(memoryview(photo_jpeg)).format == "JPEG"
