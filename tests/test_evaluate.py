import csv
import json
import shutil

import numpy as np
import pytest

from fer import data
from fer.cli import main as cli
from fer.config import CLASSES
from fer.evaluate import evaluate_faces, format_report
from fer.metrics import compute_metrics, expected_calibration_error

REPORT_KEYS = {"n", "headline", "folder", "temperature", "weights_sha256", "tta"}
TRUTH_KEYS = {
    "truth",
    "n",
    "accuracy",
    "accuracy_interval",
    "macro_f1",
    "macro_recall",
    "per_class",
    "classes",
    "confusion_matrix",
    "ece",
    "ece_uncalibrated",
    "reliability",
}


def test_metrics_on_a_hand_checked_example():
    labels = np.array([0, 0, 1, 1, 2, 3])
    probs = np.eye(4)[[0, 1, 1, 1, 2, 0]] * 0.7 + 0.075
    m = compute_metrics(labels, probs)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]]
    assert m["per_class"]["sad"] == {
        "precision": pytest.approx(2 / 3),
        "recall": 1.0,
        "f1": pytest.approx(0.8),
        "support": 2,
    }
    assert m["per_class"]["neutral"]["recall"] == 0.0
    assert m["macro_recall"] == pytest.approx((0.5 + 1 + 1 + 0) / 4)
    # Every prediction has confidence 0.775 and 4 of 6 are right: ECE = |0.667 - 0.775|.
    assert m["ece"] == pytest.approx(abs(4 / 6 - 0.775))


def test_ece_is_zero_for_perfectly_calibrated_bins():
    probs = np.array([[0.5, 0.5, 0, 0]] * 4)
    labels = np.array([0, 1, 0, 1])  # argmax is class 0: right half the time, confidence 0.5
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0)


def test_evaluate_cli_json_and_csv_contract(tiny_dataset, tmp_path, classifier):
    out_json, out_csv = tmp_path / "report.json", tmp_path / "preds.csv"
    code = cli(
        [
            "evaluate",
            "--data",
            str(tiny_dataset),
            "--split",
            "validation",
            "--json",
            str(out_json),
            "--predictions",
            str(out_csv),
        ]
    )
    assert code == 0
    report = json.loads(out_json.read_text())
    # Both truths side by side, the crowd's first: the tiny dataset has the votes file beside it.
    assert set(report) >= REPORT_KEYS | {"crowd"} and report["headline"] == "crowd"
    crowd, folder = report["crowd"], report["folder"]
    assert set(crowd) >= TRUTH_KEYS | {"no_label", "vote_shares_tv", "vote_shares_ece"} and set(folder) >= TRUTH_KEYS
    assert report["n"] == folder["n"] == 100 and folder["classes"] == list(CLASSES)
    assert crowd["n"] + sum(crowd["no_label"].values()) == 100 and crowd["n"] < 100
    assert np.array(folder["confusion_matrix"]).sum() == 100 and np.array(crowd["confusion_matrix"]).sum() == crowd["n"]
    assert all(m["support"] == 25 for m in folder["per_class"].values())
    # The train split is known, so the twin-free accuracy is reported too, in each truth.
    assert "excluding_train_twins" in crowd["subsets"] and "excluding_train_twins" in folder["subsets"]
    rows = list(csv.DictReader(out_csv.open()))
    assert list(rows[0]) == ["path", "true", "pred", "p_happy", "p_sad", "p_surprise", "p_neutral", "uncertainty"]
    assert len(rows) == 100 and rows[0]["path"].startswith("happy/") and rows[0]["true"] == "happy"
    # The CSV agrees with the report (its "true" is the folder label) and with the classifier itself.
    assert np.mean([r["true"] == r["pred"] for r in rows]) == pytest.approx(folder["accuracy"])
    votes = data.load_votes(data.find_votes_file(tiny_dataset))
    faces = data.load_folder(tiny_dataset, "validation")
    labels, _ = data.crowd_labels(faces, votes)
    preds = np.array([CLASSES.index(r["pred"]) for r in rows])
    assert crowd["accuracy"] == pytest.approx(np.mean(preds[labels >= 0] == labels[labels >= 0]))
    probs = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    assert [CLASSES[i] for i in probs.argmax(1)] == [r["pred"] for r in rows]


@pytest.mark.slow
def test_a_split_folder_as_data_is_the_same_as_naming_the_split(tiny_dataset, tmp_path):
    as_split, as_folder = tmp_path / "split.json", tmp_path / "folder.json"
    assert cli(["evaluate", "--data", str(tiny_dataset), "--split", "validation", "--json", str(as_split)]) == 0
    assert cli(["evaluate", "--data", str(tiny_dataset / "validation"), "--json", str(as_folder)]) == 0
    by_split, by_folder = json.loads(as_split.read_text()), json.loads(as_folder.read_text())
    # The votes and the train split beside it are found either way: the same sections, the same numbers.
    assert {"crowd", "uncertainty", "train_twins"} <= set(by_folder) and "subsets" in by_folder["folder"]
    assert by_folder == by_split


def test_evaluate_refuses_outputs_it_cannot_write_with_a_clear_message(tiny_dataset, tmp_path, capsys):
    missing = tmp_path / "no such folder" / "report.json"
    assert cli(["evaluate", "--data", str(tiny_dataset), "--split", "test", "--json", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    # A folder that exists but a path that cannot be written (here: a folder), found only at write time.
    assert cli(["evaluate", "--data", str(tiny_dataset), "--split", "test", "--predictions", str(tmp_path)]) == 2
    assert f"Cannot write {tmp_path}" in capsys.readouterr().err


def test_evaluate_plain_folder_with_missing_classes_prints_a_table(tiny_dataset, tmp_path, capsys):
    shutil.copytree(tiny_dataset / "test" / "happy", tmp_path / "happy")
    shutil.copytree(tiny_dataset / "test" / "surprise", tmp_path / "surprise")
    assert cli(["evaluate", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "20 images" in out and "confusion matrix" in out
    assert "sad" in out and "neutral" in out


def test_evaluate_reports_missing_data_cleanly(tmp_path, capsys):
    assert cli(["evaluate", "--data", str(tmp_path / "none")]) == 2
    assert "Dataset folder not found" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_with_flip_tta_averages_the_face_and_its_mirror_image(tiny_dataset, classifier):
    import torch

    from fer.evaluate import evaluate_folder

    plain, faces, probs, _ = evaluate_folder(tiny_dataset, "validation", tta=False)
    with_tta, _, tta_probs, _ = evaluate_folder(tiny_dataset, "validation", tta=True)
    assert plain["tta"] is False and with_tta["tta"] is True
    one_view = classifier.with_tta(False)
    assert np.allclose(probs, one_view.predict_proba(faces.images), atol=1e-5)
    mirrored = np.ascontiguousarray(faces.images[:, :, ::-1])
    logits = (one_view.logits(faces.images) + one_view.logits(mirrored)) / 2
    assert np.allclose(tta_probs, torch.softmax(logits / classifier.temperature, 1).numpy(), atol=1e-5)
    assert not np.allclose(tta_probs, probs, atol=1e-3)


def test_accuracy_where_the_crowd_agrees_with_the_folder_label_and_where_it_does_not(data_root, val_subset, classifier):
    votes = data.load_votes(data.find_votes_file(data_root))
    report, _, _ = evaluate_faces(classifier, val_subset, votes=votes)
    agrees, disagrees = (report["folder"]["subsets"][f"crowd_{k}_with_label"] for k in ("agrees", "disagrees"))
    _, has_votes = data.crowd_distribution(val_subset, votes)
    assert agrees["n"] + disagrees["n"] == has_votes.sum() and disagrees["n"] >= 40
    # Where the crowd reads the face as the folder label does, the model is far more often right.
    assert agrees["accuracy"] > 0.85 and disagrees["accuracy"] < agrees["accuracy"] - 0.2
    text = format_report(report)
    low, high = agrees["accuracy_interval"]
    assert f"crowd agrees with label: {agrees['accuracy']:.4f} (95% interval {low:.3f}-{high:.3f})" in text


def photo_folder(root, detectable_faces):
    """Whole photos under `root`: faces/ with one per class (its real face pasted on a background) and one
    photo of a wall in neutral/, and other/ with one face (the uncertainty flag's out-of-scope set)."""
    from conftest import encode, make_photo
    from PIL import Image

    for k, name in enumerate(CLASSES):
        (root / "faces" / name).mkdir(parents=True)
        photo, _ = make_photo([detectable_faces[k]], size=(400, 400))
        (root / "faces" / name / f"{name}.jpg").write_bytes(encode(photo, "JPEG", quality=92))
    (root / "faces" / "neutral" / "wall.png").write_bytes(encode(Image.new("RGB", (300, 200), (200, 190, 180)), "PNG"))
    (root / "other" / "angry").mkdir(parents=True)
    (root / "other" / "angry" / "a.png").write_bytes(
        encode(make_photo([detectable_faces[1]], size=(300, 300))[0], "PNG")
    )
    return root


def test_evaluate_detect_scores_the_largest_face_of_each_photo_and_counts_no_face_as_wrong(
    detectable_faces, predictor, tmp_path, capsys
):
    root = photo_folder(tmp_path / "photos", detectable_faces)

    code = cli(
        [
            "evaluate",
            "--data",
            str(root),
            "--split",
            "faces",
            "--detect",
            "--json",
            str(tmp_path / "r.json"),
            "--predictions",
            str(tmp_path / "p.csv"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report) >= REPORT_KEYS and report["detect"] is True
    assert report["n"] == 5 and report["n_no_face"] == 1 and report["no_face_rate"] == pytest.approx(0.2)
    # The same faces through the app's pipeline: the report's accuracy counts the wall as wrong.
    labels = [predictor.predict(root / "faces" / name / f"{name}.jpg").faces[0].label for name in CLASSES]
    right = sum(label == name for label, name in zip(labels, CLASSES))
    assert report["headline"] == "folder" and "crowd" not in report  # photos: their own labels, no votes
    folder = report["folder"]
    assert folder["accuracy"] == pytest.approx(right / 5)
    assert folder["accuracy_found_faces"] == pytest.approx(right / 4)
    assert folder["per_class"]["neutral"]["support"] == 2 and sum(map(sum, folder["confusion_matrix"])) == 4
    assert report["uncertainty"]["n_out_of_scope"] == 1 and report["uncertainty"]["n_in_scope"] == 4
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [r["pred"] for r in rows if r["path"] == "neutral/wall.png"] == ["no face"]
    assert [r["pred"] for r in rows if r["path"] != "neutral/wall.png"] == labels


def test_evaluate_photos_reads_the_photos_with_the_detector_it_is_given(detectable_faces, classifier, tmp_path):
    """A second detector, written against fer.faces.Detector only (conftest.HaarDetector), plugs into the
    `--detect` evaluation unchanged: every photo goes through it, and the report is its pipeline's."""
    from conftest import HaarDetector

    from fer.evaluate import evaluate_photos, headline
    from fer.predict import Predictor

    root = photo_folder(tmp_path / "photos", detectable_faces)
    haar = HaarDetector()

    report, faces, probs, _ = evaluate_photos(root, "faces", classifier=classifier, detector=haar)

    assert haar.photos == 5 + 1  # the split's five photos and the one in other/
    pipeline = Predictor(classifier, HaarDetector())
    largest = []
    for path in faces.paths:
        found = pipeline.predict(root / "faces" / path).faces
        largest.append(max(found, key=lambda f: f.box.w * f.box.h) if found else None)
    assert report["n"] == 5 and report["n_no_face"] == sum(face is None for face in largest) >= 1  # the wall
    for face, p in zip(largest, probs, strict=True):
        assert np.isnan(p).all() if face is None else np.array_equal(p, face.probs.astype(np.float32))
    right = sum(face is not None and face.label == CLASSES[k] for face, k in zip(largest, faces.labels, strict=True))
    assert headline(report)["accuracy"] == pytest.approx(right / 5)
