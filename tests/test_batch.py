"""Batch mode: many photos and .zip archives in, one result per file out; zip bombs, traversal names and
odd members handled in memory; member names defused in the CSV (fer.record)."""

import csv
import io
import os
import struct
import zipfile

import numpy as np
import pytest
from conftest import encode, iou, make_photo
from PIL import Image

from fer import batch
from fer.batch import MAX_ZIP_MEMBER_BYTES, MAX_ZIP_MEMBERS, predict_batch
from fer.errors import FerError
from fer.record import face_record, results_to_csv


def zip_bytes(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def patch_single_member_zip(
    data: bytes, flags: int | None = None, method: int | None = None, size: int | None = None
) -> bytes:
    """Rewrite header fields of a one-member zip in both its local header and its central directory."""
    data = bytearray(data)
    local, central = 0, data.index(b"PK\x01\x02")
    for field, offsets in ((flags, (6, 8)), (method, (8, 10))):
        if field is not None:
            struct.pack_into("<H", data, local + offsets[0], field)
            struct.pack_into("<H", data, central + offsets[1], field)
    if size is not None:
        struct.pack_into("<I", data, local + 22, size)
        struct.pack_into("<I", data, central + 24, size)
    return bytes(data)


@pytest.fixture(scope="module")
def photo(detectable_faces):
    """A JPEG photo with three real faces, and their boxes."""
    image, boxes = make_photo(detectable_faces[1:4])
    return encode(image, "JPEG", quality=92), boxes


@pytest.fixture(scope="module")
def single_face(detectable_faces):
    image, boxes = make_photo(detectable_faces[2:3], size=(400, 400))
    return encode(image, "PNG"), boxes


def assert_found(result, boxes):
    assert result.error is None, result.error
    found = [face.box.as_list() for face in result.faces]
    assert len(found) == len(boxes)
    for box in boxes:
        assert max(iou(box, other) for other in found) > 0.5


# -- predict_batch ----------------------------------------------------------------------------------


def test_photos_uploads_and_zip_members_in_input_order_with_progress(predictor, photo, single_face, tmp_path):
    photo_bytes, photo_boxes = photo
    face_bytes, face_boxes = single_face
    (tmp_path / "group.jpg").write_bytes(photo_bytes)
    archive = zip_bytes(
        {
            "day1/": b"",
            "day1/portrait.png": face_bytes,
            "day1/readme.txt": b"Photos from the shoot, day one.\n",
            "day1/more.zip": zip_bytes({"x.jpg": photo_bytes}),
            "__MACOSX/day1/._portrait.png": b"\x00\x05\x16\x07 resource fork",
            "day1/.DS_Store": b"\x00\x00\x00\x01Bud1",
            "group.jpg": photo_bytes,
        }
    )
    (tmp_path / "shoot.zip").write_bytes(archive)
    calls = []

    results = predict_batch(
        predictor,
        [tmp_path / "group.jpg", str(tmp_path / "shoot.zip"), ("upload.png", face_bytes)],
        progress=lambda done, total, name: calls.append((done, total, name)),
    )

    names = [r.file for r in results]
    assert names == [
        "group.jpg",
        "shoot.zip/day1/portrait.png",
        "shoot.zip/day1/readme.txt",
        "shoot.zip/day1/more.zip",
        "shoot.zip/group.jpg",
        "upload.png",
    ]
    assert calls == [(i + 1, len(names), name) for i, name in enumerate(names)]
    by_name = {r.file: r for r in results}
    assert_found(by_name["group.jpg"], photo_boxes)
    assert_found(by_name["shoot.zip/group.jpg"], photo_boxes)
    assert_found(by_name["shoot.zip/day1/portrait.png"], face_boxes)
    assert_found(by_name["upload.png"], face_boxes)
    assert by_name["shoot.zip/day1/readme.txt"].error.startswith(
        "shoot.zip/day1/readme.txt is a text file, not an image"
    )
    assert by_name["shoot.zip/day1/more.zip"].error == (
        "shoot.zip/day1/more.zip is an archive inside the archive and was ignored; add its photos to the zip directly."
    )
    # The same photo gives the same answer whether it came from disk, a zip or an upload.
    assert [face_record(f) for f in by_name["group.jpg"].faces] == [
        face_record(f) for f in by_name["shoot.zip/group.jpg"].faces
    ]


def test_zip_member_names_are_only_labels_nothing_is_written(predictor, single_face, tmp_path, monkeypatch):
    face_bytes, face_boxes = single_face
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    hostile = ["../../escaped.png", "/tmp/fer_absolute_escape.png", "..\\..\\windows.png", "a/../../b.png", "con:.png"]
    archive = zip_bytes(dict.fromkeys(hostile, face_bytes))
    before = sorted(p for p in tmp_path.rglob("*"))

    results = predict_batch(predictor, [("evil.zip", archive)])

    assert [r.file for r in results] == [f"evil.zip/{name}" for name in hostile]
    for result in results:
        assert_found(result, face_boxes)
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert not os.path.exists("/tmp/fer_absolute_escape.png")


def test_zip_with_more_members_than_the_cap_is_refused(predictor):
    archive = zip_bytes({f"img{i}.jpg": b"" for i in range(MAX_ZIP_MEMBERS + 1)}, zipfile.ZIP_STORED)

    results = predict_batch(predictor, [("many.zip", archive)])

    assert len(results) == 1
    assert (
        results[0].error
        == f"many.zip holds {MAX_ZIP_MEMBERS + 1} files; the limit is {MAX_ZIP_MEMBERS}. Split it into smaller zips."
    )


def test_zip_directory_too_large_is_refused_before_it_is_parsed(predictor, monkeypatch):
    # ~30,000 entries: zipfile would build every entry in memory before any count could be checked.
    entries = zip_bytes({f"{i:05d}": b"" for i in range(30_000)}, zipfile.ZIP_STORED)

    def parse_forbidden(self):
        raise AssertionError("the central directory was parsed")

    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", parse_forbidden)
    results = predict_batch(predictor, [("entries.zip", entries)])

    assert len(results) == 1
    assert results[0].error.startswith(
        f"entries.zip lists more entries than the {MAX_ZIP_MEMBERS} files an archive may hold"
    )


def test_zip_directory_size_beyond_the_file_is_refused_before_it_is_parsed(predictor, photo, monkeypatch):
    # An end record claiming a huge directory would make zipfile parse everything before it as entries.
    archive = bytearray(zip_bytes({"a.jpg": photo[0]}))
    struct.pack_into("<I", archive, archive.rindex(b"PK\x05\x06") + 12, 0xFFFFFFF0)

    def parse_forbidden(self):
        raise AssertionError("the central directory was parsed")

    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", parse_forbidden)
    results = predict_batch(predictor, [("lying.zip", bytes(archive))])

    assert [r.error for r in results] == [
        "lying.zip is not a valid zip archive (its directory is damaged); re-create it and try again."
    ]


def test_zip_bomb_member_is_refused_from_its_declared_size(predictor, photo, monkeypatch):
    bomb = bytes(MAX_ZIP_MEMBER_BYTES + 10 * 2**20)  # 60 MB of zeros compress to ~60 KB
    archive = zip_bytes({"ok.jpg": photo[0], "bomb.bmp": bomb})
    assert len(archive) < 200_000
    # The check after reading gives the same message, after 50 MB of decompression: the bomb must not be opened.
    opened, open_member = [], zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        opened.append(getattr(name, "filename", name))
        return open_member(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)

    results = predict_batch(predictor, [("bomb.zip", archive)])

    assert results[0].error is None
    assert results[1].error == "bomb.zip/bomb.bmp is larger than 50 MB once unpacked; use a smaller image."
    assert opened == ["ok.jpg"]


def test_zip_over_the_total_size_cap_is_refused(predictor, monkeypatch):
    monkeypatch.setattr(batch, "MAX_ZIP_TOTAL_BYTES", 3 * 2**20)
    archive = zip_bytes({f"part{i}.bmp": bytes(2**20) for i in range(4)})

    results = predict_batch(predictor, [("big.zip", archive)])

    assert [r.error for r in results] == [
        "big.zip would expand to 4 MB; the limit is 3 MB. Split it into smaller zips."
    ]


def test_zip_headers_that_understate_sizes_cannot_unpack_more(predictor):
    archive = patch_single_member_zip(zip_bytes({"liar.bmp": bytes(5 * 2**20)}), size=1000)
    assert zipfile.ZipFile(io.BytesIO(archive)).infolist()[0].file_size == 1000

    results = predict_batch(predictor, [("liar.zip", archive)])

    assert len(results) == 1
    assert results[0].error.startswith("liar.zip/liar.bmp is damaged inside the archive (Bad CRC-32")


def test_bytes_really_read_are_counted_against_the_archive_budget(photo):
    archive = zipfile.ZipFile(io.BytesIO(zip_bytes({"a.jpg": photo[0], "b.jpg": photo[0]})))
    budget = batch._ByteBudget(len(photo[0]) + 10)
    first, second = archive.infolist()

    assert batch._read_member(archive, first, "a.jpg", budget) == photo[0]
    with pytest.raises(FerError, match=r"^b\.jpg was skipped: the archive unpacked to more than its"):
        batch._read_member(archive, second, "b.jpg", budget)
    with pytest.raises(FerError, match=r"^b\.jpg was skipped: the archive already unpacked to its"):
        batch._read_member(archive, second, "b.jpg", budget)


def test_encrypted_and_unsupported_compression_members_are_reported(predictor, photo):
    encrypted = patch_single_member_zip(zip_bytes({"secret.jpg": photo[0]}), flags=0x1)
    deflate64 = patch_single_member_zip(zip_bytes({"odd.jpg": photo[0]}), method=9)

    results = predict_batch(predictor, [("locked.zip", encrypted), ("odd.zip", deflate64)])

    assert results[0].error == "locked.zip/secret.jpg is encrypted and was skipped; zip the photos without a password."
    assert results[1].error.startswith("odd.zip/odd.jpg uses a compression this reader does not support")


def test_damaged_empty_and_foreign_archives(predictor, photo, tmp_path):
    good = zip_bytes({"a.jpg": photo[0], "b.jpg": photo[0]})
    corrupt = bytearray(good)
    member_data = corrupt.index(b"a.jpg") + len("a.jpg")
    corrupt[member_data + 200 : member_data + 400] = bytes(200)  # damage the compressed photo
    sources = [
        ("random.zip", os.urandom(3000)),
        ("cut.zip", good[: len(good) // 2]),
        ("damaged.zip", bytes(corrupt)),
        ("empty.zip", zip_bytes({})),
        ("folders.zip", zip_bytes({"a/": b"", "a/b/": b""})),
        ("photos.tar.gz", b"\x1f\x8b\x08\x00" + bytes(100)),
        tmp_path / "missing.zip",
    ]

    results = predict_batch(predictor, sources)

    messages = {r.file: r.error for r in results}
    assert messages["random.zip"].startswith("random.zip is not a valid zip archive")
    assert messages["cut.zip"].startswith("cut.zip is not a valid zip archive")
    assert messages["damaged.zip/a.jpg"].startswith("damaged.zip/a.jpg is damaged inside the archive")
    assert messages["damaged.zip/b.jpg"] is None  # the other members still run
    assert messages["empty.zip"] == "empty.zip holds no files; add photos to it."
    assert messages["folders.zip"] == "folders.zip holds no files; add photos to it."
    assert messages["photos.tar.gz"].startswith("photos.tar.gz is an archive type that is not read here; use a .zip")
    assert messages["missing.zip"] == "missing.zip could not be read (No such file or directory); check the path."


def test_nested_archive_without_an_archive_name_is_still_ignored(predictor, photo):
    archive = zip_bytes({"inner.jpg": zip_bytes({"a.jpg": photo[0]})})
    results = predict_batch(predictor, [("outer.zip", archive)])
    assert (
        results[0].error
        == "outer.zip/inner.jpg is an archive inside the archive and was ignored; add its photos to the zip directly."
    )


def test_zip_file_handles_are_closed(predictor, photo, tmp_path):
    path = tmp_path / "photos.zip"
    path.write_bytes(zip_bytes({"a.jpg": photo[0]}))
    fd_dir = "/proc/self/fd"
    before = len(os.listdir(fd_dir))
    predict_batch(predictor, [path, path, path])
    assert len(os.listdir(fd_dir)) == before


def test_keep_replaces_each_result_as_soon_as_it_is_made(predictor, photo, single_face):
    kept = []

    def without_photo(result):
        kept.append(result.file)
        return {"file": result.file, "faces": len(result.faces), "had_photo": result.image is not None}

    archive = zip_bytes({"a.png": single_face[0], "b.txt": b"not a photo"})
    results = predict_batch(
        predictor,
        [("group.jpg", photo[0]), ("shoot.zip", archive)],
        progress=lambda done, total, name: kept.append(f"progress {done}/{total}"),
        keep=without_photo,
    )

    assert results == [
        {"file": "group.jpg", "faces": 3, "had_photo": True},
        {"file": "shoot.zip/a.png", "faces": 1, "had_photo": True},
        {"file": "shoot.zip/b.txt", "faces": 0, "had_photo": False},
    ]
    # Each result is handed over before the next file is read.
    assert kept == ["group.jpg", "progress 1/3", "shoot.zip/a.png", "progress 2/3", "shoot.zip/b.txt", "progress 3/3"]


def test_no_detect_in_batch_treats_each_image_as_one_face(predictor, validation):
    crops = {f"{i}.png": encode(Image.fromarray(validation.images[i]), "PNG") for i in range(3)}
    results = predict_batch(predictor, [("faces.zip", zip_bytes(crops))], detect=False)
    assert [[face.box.as_list() for face in r.faces] for r in results] == [[[0, 0, 48, 48]]] * 3
    expected = predictor.classifier.predict_proba(validation.images[:3])
    assert np.allclose([r.faces[0].probs for r in results], expected, atol=1e-6)


# -- names in the CSV --------------------------------------------------------------------------------


def test_zip_member_names_in_csv_are_defused(predictor, single_face):
    results = predict_batch(predictor, [("shoot.zip", zip_bytes({"=cmd|' /C calc'!A0.png": single_face[0]}))])
    rows = list(csv.DictReader(io.StringIO(results_to_csv(results))))
    assert rows[0]["file"] == "shoot.zip/=cmd|' /C calc'!A0.png"  # starts with "s": nothing to defuse
    results = predict_batch(predictor, [("=evil.zip", zip_bytes({"a.png": single_face[0]}))])
    assert next(csv.DictReader(io.StringIO(results_to_csv(results))))["file"] == "'=evil.zip/a.png"
