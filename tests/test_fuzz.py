"""Fuzzing the decode-and-predict path: random bytes and mutated real image files.

`load_image` may only ever raise `ImageError`; `Predictor.predict` and `predict_batch` never raise.
Examples are derandomized (the same on every run, so CI is reproducible) and few enough for 2 cores.
"""

import io
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fer.batch import predict_batch
from fer.errors import ImageError
from fer.images import MAX_PIXELS, MIN_SIDE, load_image


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _seed_files() -> dict[str, bytes]:
    """Small valid files of every supported format and odd mode: the starting points for mutations."""
    yy, xx = np.mgrid[0:40, 0:48]
    rgb = Image.fromarray(np.dstack([xx * 5, yy * 6, (xx + yy) * 3]).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [rgb, rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return {
        "jpeg": _encode(rgb, "JPEG", quality=80),
        "jpeg_exif": _encode(rgb, "JPEG", exif=exif.tobytes()),
        "jpeg_progressive_cmyk": _encode(rgb.convert("CMYK"), "JPEG", progressive=True),
        "png": _encode(rgb, "PNG"),
        "png_rgba": _encode(rgb.convert("RGBA"), "PNG"),
        "png_16bit": _encode(Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257), "PNG"),
        "png_palette": _encode(rgb.convert("P"), "PNG", transparency=3),
        "apng": _encode(frames[0], "PNG", save_all=True, append_images=frames[1:]),
        "gif": _encode(rgb.convert("P"), "GIF"),
        "gif_animated": _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50),
        "webp": _encode(rgb, "WEBP"),
        "webp_lossless_animated": _encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True),
        "bmp": _encode(rgb, "BMP"),
        "bmp_rle8": _encode(rgb.convert("P"), "BMP"),
        "tiff": _encode(rgb, "TIFF", compression="tiff_deflate"),
        "tiff_16bit": _encode(Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257), "TIFF"),
        "ppm": _encode(rgb, "PPM"),
    }


# Pillow warns (UserWarning) about the damaged TIFF and EXIF blocks these files are made of; what is
# checked here is that decoding raises nothing but ImageError.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")

SEEDS = _seed_files()
FUZZ = settings(
    max_examples=120,
    deadline=None,  # decoding time varies on a shared 2-core CI machine
    derandomize=True,  # a fixed seed per test: every run tries the same inputs
    database=None,  # ... and never replays examples saved by an earlier run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

positions = st.one_of(st.integers(0, 64), st.integers(0, 1 << 20))  # headers get most mutations
mutation = st.one_of(
    st.tuples(st.just("flip"), positions, st.integers(0, 7)),
    st.tuples(st.just("truncate"), positions, st.just(0)),
    st.tuples(st.just("insert"), positions, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("overwrite"), positions, st.binary(min_size=1, max_size=8)),
    st.tuples(
        st.just("extreme"),
        positions,
        st.sampled_from([b"\x00\x00", b"\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x00"]),
    ),
)


def mutate(data: bytes, mutations) -> bytes:
    data = bytearray(data)
    for kind, position, value in mutations:
        at = position % (len(data) + 1)
        if kind == "flip":
            if at < len(data):
                data[at] ^= 1 << value
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = value
        else:  # overwrite, extreme: replace bytes in place (sizes, counts and offsets live in headers)
            data[at : at + len(value)] = value
    return bytes(data)


def mutated_seed(name: str, mutations) -> bytes:
    return mutate(SEEDS[name], mutations)


mutated_images = st.builds(mutated_seed, st.sampled_from(sorted(SEEDS)), st.lists(mutation, min_size=1, max_size=4))


def check_load(data: bytes) -> None:
    try:
        loaded = load_image(data, name="fuzz.jpg")
    except ImageError as error:
        assert str(error).startswith("fuzz.jpg ") and "\n" not in str(error)
        return
    width, height = loaded.size
    assert loaded.image.mode == "RGB"
    assert min(width, height) >= MIN_SIDE and width * height <= MAX_PIXELS


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_only_raise_image_error(data):
    check_load(data)


@FUZZ
@given(st.sampled_from(sorted(SEEDS)), st.binary(min_size=0, max_size=64))
def test_valid_header_with_random_body_only_raises_image_error(name, body):
    check_load(SEEDS[name][: len(SEEDS[name]) // 8] + body)


@FUZZ
@given(mutated_images)
def test_mutated_images_only_raise_image_error(data):
    check_load(data)


@settings(FUZZ, max_examples=60)
@given(mutated_images)
def test_predict_never_raises_on_mutated_images(predictor, data):
    result = predictor.predict(data, name="fuzz.png")
    assert (result.error is None) != (result.image is None)
    if result.error is not None:
        assert result.faces == []


@settings(FUZZ, max_examples=40)
@given(st.lists(st.sampled_from(sorted(SEEDS)), min_size=1, max_size=3), st.lists(mutation, min_size=1, max_size=3))
def test_predict_batch_never_raises_on_mutated_zips(predictor, members, mutations):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, name in enumerate(members):
            archive.writestr(f"dir/{i}_{name}.img", SEEDS[name])
    data = mutate(buffer.getvalue(), mutations)

    results = predict_batch(predictor, [("fuzz.zip", data), ("after.png", SEEDS["png"])])

    assert results[-1].file == "after.png" and results[-1].error is None  # a bad zip never stops the batch
    for result in results[:-1]:
        assert result.file.startswith("fuzz.zip")
        assert (result.error is None) != (result.image is None)


def test_seed_files_are_all_readable():
    # The mutations start from valid files: every seed must load, or the fuzzing tests only junk.
    for name, data in SEEDS.items():
        loaded = load_image(data, name=name)
        assert loaded.size in ((48, 40), (40, 48)), name


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_truncation_point_of_a_seed_is_handled(name):
    data = SEEDS[name]
    for end in range(0, len(data), max(1, len(data) // 60)):
        check_load(data[:end])
