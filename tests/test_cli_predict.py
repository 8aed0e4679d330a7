"""`python -m fer predict`: text, JSON and CSV output, zips, exit codes, and no tracebacks."""

import csv
import io
import json
import subprocess
import sys
import zipfile

import pytest
from conftest import encode, iou, make_photo
from PIL import Image

from fer.cli import main
from fer.config import CLASSES, PROJECT_ROOT
from fer.record import FLAT_COLUMNS


@pytest.fixture(scope="module")
def files(detectable_faces, tmp_path_factory):
    """A folder with a 3-face photo, a 1-face photo, a text file named .jpg and a zip of photos."""
    folder = tmp_path_factory.mktemp("predict_cli")
    group, group_boxes = make_photo(detectable_faces[1:4])
    single, single_boxes = make_photo(detectable_faces[2:3], size=(400, 400))
    (folder / "group.jpg").write_bytes(encode(group, "JPEG", quality=92))
    (folder / "single.png").write_bytes(encode(single, "PNG"))
    (folder / "notes.jpg").write_bytes(b"not a photo\n")
    with zipfile.ZipFile(folder / "shoot.zip", "w") as archive:
        archive.writestr("a/group.jpg", encode(group, "JPEG", quality=92))
        archive.writestr("a/single.png", encode(single, "PNG"))
    return folder, {"group": group_boxes, "single": single_boxes}


def run_cli(capsys, *argv):
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def boxes_match(found, expected):
    return len(found) == len(expected) and all(max(iou(b, f) for f in found) > 0.5 for b in expected)


def test_json_for_photos_and_zip_members(files, capsys):
    folder, boxes = files
    code, out, err = run_cli(capsys, "--json", folder / "group.jpg", folder / "shoot.zip", folder / "single.png")

    assert code == 0, err
    entries = json.loads(out)
    assert [e["file"] for e in entries] == [
        "group.jpg",
        "shoot.zip/a/group.jpg",
        "shoot.zip/a/single.png",
        "single.png",
    ]
    for entry in entries:
        assert entry["error"] is None
        expected = boxes["group"] if "group" in entry["file"] else boxes["single"]
        assert boxes_match([face["box"] for face in entry["faces"]], expected)
        assert [face["face"] for face in entry["faces"]] == list(range(1, len(expected) + 1))
        for face in entry["faces"]:
            assert set(face["probs"]) == set(CLASSES) and face["label"] in CLASSES
            assert sum(face["probs"].values()) == pytest.approx(1, abs=1e-3)


def test_text_output_lists_every_face_and_errors(files, capsys):
    folder, _ = files
    code, out, err = run_cli(capsys, folder / "group.jpg", folder / "notes.jpg")

    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "group.jpg: 3 face(s)"
    assert [line.split(" box ")[0] for line in lines[1:4]] == ["  #1", "  #2", "  #3"]
    assert all(" | happy " in line for line in lines[1:4])
    assert (
        lines[4] == "notes.jpg: ERROR notes.jpg is a text file, not an image; use a JPEG, PNG, WebP, GIF or BMP image."
    )
    assert "Traceback" not in err


def test_csv_output_with_summary_and_errors(files, tmp_path, capsys):
    folder, boxes = files
    out_csv = tmp_path / "faces.csv"
    code, out, err = run_cli(capsys, folder / "shoot.zip", folder / "notes.jpg", folder / "group.jpg", "--csv", out_csv)

    assert code == 1
    assert out.splitlines() == [
        "notes.jpg: ERROR notes.jpg is a text file, not an image; use a JPEG, PNG, WebP, GIF or BMP image.",
        f"wrote {out_csv}: 4 file(s), 7 face(s), 1 error(s)",
    ]
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text(encoding="utf-8-sig"))))
    assert list(rows[0]) == FLAT_COLUMNS
    assert [row["file"] for row in rows] == ["shoot.zip/a/group.jpg"] * 3 + ["shoot.zip/a/single.png", "notes.jpg"] + [
        "group.jpg"
    ] * 3
    group_rows = [row for row in rows if row["file"] == "group.jpg"]
    assert boxes_match([[int(row[k]) for k in "xywh"] for row in group_rows], boxes["group"])


def test_csv_and_json_together_and_all_good_exit_zero(files, tmp_path, capsys):
    folder, _ = files
    out_csv = tmp_path / "faces.csv"
    code, out, _ = run_cli(capsys, folder / "single.png", "--json", "--csv", out_csv)
    assert code == 0
    assert [e["file"] for e in json.loads(out)] == ["single.png"]
    assert len(out_csv.read_text(encoding="utf-8-sig").splitlines()) == 2


def test_no_detect_treats_the_whole_image_as_one_face(validation, tmp_path, capsys):
    path = tmp_path / "crop.png"
    Image.fromarray(validation.images[0]).save(path)
    code, out, _ = run_cli(capsys, "--json", "--no-detect", path)
    assert code == 0
    (entry,) = json.loads(out)
    assert [face["box"] for face in entry["faces"]] == [[0, 0, 48, 48]]


def test_unwritable_csv_is_a_clean_error(files, tmp_path, capsys):
    folder, _ = files
    code, out, err = run_cli(capsys, folder / "single.png", "--csv", tmp_path / "no" / "such" / "dir.csv")
    assert code == 2
    assert err.startswith("error: Cannot write ") and "choose a folder you can write to" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_real_process_never_prints_a_traceback(files, tmp_path):
    folder, _ = files
    (tmp_path / "empty.jpg").write_bytes(b"")
    command = [
        sys.executable,
        "-m",
        "fer",
        "predict",
        "--json",
        str(folder / "single.png"),
        str(tmp_path / "empty.jpg"),
        str(tmp_path / "gone.jpg"),
    ]

    done = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    entries = json.loads(done.stdout)
    assert [e["error"] is None for e in entries] == [True, False, False]
    assert entries[1]["error"].startswith("empty.jpg is empty (0 bytes)")
    assert entries[2]["error"].startswith("File not found: gone.jpg")


@pytest.mark.slow
def test_json_carries_the_detector_score_and_five_landmarks_inside_each_box(files, capsys):
    folder, _ = files
    code, out, err = run_cli(capsys, "--json", folder / "group.jpg")
    assert code == 0, err
    (entry,) = json.loads(out)
    assert len(entry["faces"]) == 3
    for face in entry["faces"]:
        x, y, w, h = face["box"]
        assert 0.6 <= face["detector_score"] <= 1
        assert list(face["landmarks"]) == ["right_eye", "left_eye", "nose", "mouth_right", "mouth_left"]
        assert all(x <= px <= x + w and y <= py <= y + h for px, py in face["landmarks"].values())
    code, out, _ = run_cli(capsys, "--json", "--no-detect", folder / "single.png")
    (face,) = json.loads(out)[0]["faces"]
    assert face["landmarks"] is None and face["detector_score"] is None
