"""Scoring a classifier on a folder of labelled images: `python -m fer evaluate`.

By default the images are face crops and are classified as they are (no detection). With `--detect` they
are whole photos: each goes through the app's pipeline (detect, align, classify) and its largest face is
scored; a photo where no face is found counts as wrong. The JSON report is a contract the app and
scripts rely on: n, accuracy, macro_f1, macro_recall, per_class, classes, confusion_matrix (rows true,
columns predicted), ece (15 bins), weights_sha256, and, when the training split is known, the accuracy on
the images that have no pixel-identical twin in train; with `--detect`, the no-face rate too.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fer import data
from fer.calibrate import softmax, uncertainty_report
from fer.checkpoint import sha256_of, weights_path
from fer.config import CLASSES
from fer.errors import write_user_file
from fer.faces import FaceDetector
from fer.metrics import compute_metrics, expected_calibration_error, reliability_bins  # noqa: F401 (re-exported)
from fer.predict import Classifier, Predictor, load_classifier

OTHER_FOLDER = "other"  # beside a photo split: photos of expressions outside the four, for the uncertainty flag


def known_train_split(split: str | None, root: Path) -> Path | None:
    """The train split beside the evaluated one, if the evaluated folder is another split."""
    if split and split != "train" and (root / "train").is_dir():
        return root / "train"
    return None


def score_faces(
    classifier: Classifier, images: np.ndarray, progress: Callable[[int, int], None] | None = None, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw logits (N, 4), calibrated probabilities (N, 4) and uncertainties (N,) for uint8 (N, 48, 48) faces.

    The one way a split is scored: `fer evaluate` and the app's Dataset page both call this.
    `progress(done, total)` is called after each chunk."""
    logits, embeddings, total = [], [], len(images)
    for start in range(0, total, chunk):
        chunk_logits, chunk_embeddings = classifier.outputs(images[start : start + chunk], batch_size=chunk)
        logits.append(chunk_logits)
        embeddings.append(chunk_embeddings)
        if progress:
            progress(min(start + chunk, total), total)
    if not logits:
        empty = np.zeros((0, len(CLASSES)), np.float32)
        return empty, empty, np.zeros(0, np.float32)
    logits = torch.cat(logits).numpy()
    probs = softmax(logits, classifier.temperature).astype(np.float32)
    return logits, probs, classifier.uncertainty(probs, torch.cat(embeddings))


def evaluate_faces(
    classifier: Classifier, faces: data.FaceSet, train: data.FaceSet | None = None, votes: dict | None = None
) -> tuple[dict, np.ndarray, np.ndarray]:
    """The metrics report, the (N, 4) calibrated probabilities and the (N,) uncertainties for a FaceSet.

    With the train split: accuracy without the images that have a pixel-identical twin in train.
    With FERPlus votes: accuracy on the FER2013 PublicTest/PrivateTest rows (the fair comparison with
    public FER2013 models), on the images where the crowd's majority agrees / disagrees with the folder
    label, and how well the uncertainty flag catches faces the crowd saw as another
    expression.
    """
    logits, probs, uncertainty = score_faces(classifier, faces.images)
    labels = faces.labels
    report = compute_metrics(labels, probs)
    report["ece_uncalibrated"] = expected_calibration_error(softmax(logits), labels)
    report["temperature"] = classifier.temperature
    report["reliability"] = reliability_bins(probs, labels)
    if train is not None:
        twins = data.twins_in(faces, train)
        report["train_twins"] = int(twins.sum())
        report["n_excluding_train_twins"] = int((~twins).sum())
        report["accuracy_excluding_train_twins"] = compute_metrics(labels[~twins], probs[~twins])["accuracy"]
    if votes:
        usage = data.fer2013_usage(faces, votes)
        subsets = {
            "fer2013_public_test": usage == "PublicTest",
            "fer2013_private_test": usage == "PrivateTest",
            "fer2013_test_rows": np.isin(usage, ["PublicTest", "PrivateTest"]),
        }
        subsets["crowd_agrees_with_label"], subsets["crowd_disagrees_with_label"] = data.crowd_agrees(faces, votes)
        report["subsets"] = {
            name: {"n": int(mask.sum()), "accuracy": compute_metrics(labels[mask], probs[mask])["accuracy"]}
            for name, mask in subsets.items()
            if mask.any()
        }
        out_of_scope = data.crowd_out_of_scope(faces, votes)
        if out_of_scope is not None and out_of_scope.any():
            report["uncertainty"] = {
                "score": classifier.uncertainty_name,
                **uncertainty_report(uncertainty, out_of_scope, classifier.uncertainty_threshold, probs),
            }
    return report, probs, uncertainty


def served_classifier(classifier: Classifier | None, weights: Path, tta: bool | None) -> Classifier:
    """`classifier`, else the one for `weights`; `tta` turns flip TTA on or off (None: as the weights ship)."""
    classifier = classifier or load_classifier(weights)
    return classifier if tta is None else classifier.with_tta(tta)


def evaluate_folder(
    data_dir: str | os.PathLike | None,
    split: str | None = None,
    weights: str | os.PathLike | None = None,
    classifier: Classifier | None = None,
    tta: bool | None = None,
) -> tuple[dict, data.FaceSet, np.ndarray, np.ndarray]:
    """The report, the faces, their calibrated probabilities (N, 4) and uncertainties (N,).

    `tta` turns flip test-time augmentation on or off; None keeps the classifier's (the weights') setting."""
    root = data.find_data_dir(data_dir)
    if not split and root.name in data.SPLITS:
        # `--data .../validation` is `--data ... --split validation`: the votes and train sit beside it.
        root, split = root.parent, root.name
    faces = data.load_folder(root, split)
    weights = Path(weights or weights_path())
    classifier = served_classifier(classifier, weights, tta)
    train_dir = known_train_split(split, root)
    train = data.load_folder(train_dir) if train_dir else None
    votes_file = data.find_votes_file(root)
    votes = data.load_votes(votes_file) if votes_file else None
    report, probs, uncertainty = evaluate_faces(classifier, faces, train, votes)
    report = {
        "data": str(faces.folder),
        "split": split,
        **report,
        "weights": str(weights),
        "weights_sha256": sha256_of(weights),
        "tta": classifier.tta,
    }
    return report, faces, probs, uncertainty


def largest_faces(predictor: Predictor, folder: Path, paths: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each photo: its largest face's 48x48 aligned crop, calibrated probabilities and uncertainty;
    a photo without a face (or that cannot be read) gets a blank crop and NaN probabilities."""
    faces, probs, uncertainty = [], [], []
    for path in paths:
        result = predictor.predict(folder / path, name=path)
        if result.faces:
            face = max(result.faces, key=lambda f: f.box.w * f.box.h)
            faces.append(face.face)
            probs.append(face.probs)
            uncertainty.append(face.uncertainty)
        else:
            faces.append(np.zeros((48, 48), np.uint8))
            probs.append(np.full(len(CLASSES), np.nan))
            uncertainty.append(np.nan)
    return np.stack(faces), np.asarray(probs, np.float32).reshape(-1, len(CLASSES)), np.asarray(uncertainty)


def evaluate_photos(
    data_dir: str | os.PathLike | None,
    split: str | None = None,
    weights: str | os.PathLike | None = None,
    classifier: Classifier | None = None,
    tta: bool | None = None,
) -> tuple[dict, data.FaceSet, np.ndarray, np.ndarray]:
    """`evaluate_folder` for whole photos (`--detect`): the whole pipeline, the largest face of each photo,
    no face = wrong. The FaceSet holds the aligned crops the classifier saw.

    With an `other/` folder of photos beside the split (expressions outside the four, in any subfolders),
    the report says how well the uncertainty flag separates those faces from the split's."""
    root = Path(data_dir) if data_dir else data.find_data_dir(None)
    folder = root / split if split else root
    if not folder.is_dir():
        raise data.DataError(f"Photo folder not found: {folder}")
    paths, labels = data.list_images(folder)
    if not paths:
        raise data.DataError(f"No images in class folders ({', '.join(CLASSES)}) of {folder}.")
    weights = Path(weights or weights_path())
    classifier = served_classifier(classifier, weights, tta)
    predictor = Predictor(classifier, FaceDetector())
    crops, probs, uncertainty = largest_faces(predictor, folder, paths)
    labels = np.asarray(labels, dtype=np.int64)
    found = ~np.isnan(probs).any(axis=1)
    report = compute_metrics(labels, probs)
    report["n_no_face"] = int((~found).sum())
    report["no_face_rate"] = float((~found).mean())
    report["accuracy_found_faces"] = float((probs[found].argmax(1) == labels[found]).mean()) if found.any() else 0.0
    # Calibrated log-probabilities times T are the logits up to a constant: the uncalibrated probabilities.
    uncalibrated = softmax(np.log(np.clip(probs[found], 1e-12, 1)) * classifier.temperature)
    report["ece_uncalibrated"] = expected_calibration_error(uncalibrated, labels[found])
    report["temperature"] = classifier.temperature
    report["reliability"] = reliability_bins(probs[found], labels[found])
    other = folder.parent / OTHER_FOLDER
    if split and other.is_dir() and other != folder:
        other_paths = sorted(
            str(p.relative_to(other)) for p in other.rglob("*") if p.suffix.lower() in data.IMAGE_SUFFIXES
        )
        _, other_probs, other_uncertainty = largest_faces(predictor, other, other_paths)
        other_found = ~np.isnan(other_uncertainty)
        scores = np.concatenate([uncertainty[found], other_uncertainty[other_found]])
        out_of_scope = np.r_[np.zeros(found.sum(), bool), np.ones(other_found.sum(), bool)]
        report["uncertainty"] = {
            "score": classifier.uncertainty_name,
            "out_of_scope_folder": str(other),
            **uncertainty_report(
                scores,
                out_of_scope,
                classifier.uncertainty_threshold,
                np.vstack([probs[found], other_probs[other_found]]),
            ),
        }
    faces = data.FaceSet(folder=folder, images=crops, labels=labels, paths=paths, split=split)
    report = {
        "data": str(folder),
        "split": split,
        "detect": True,
        **report,
        "weights": str(weights),
        "weights_sha256": sha256_of(weights),
        "tta": classifier.tta,
    }
    return report, faces, probs, uncertainty


def predictions_csv(faces: data.FaceSet, probs: np.ndarray, uncertainty: np.ndarray) -> str:
    """path,true,pred,p_happy,p_sad,p_surprise,p_neutral,uncertainty (paths relative to the evaluated folder)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "true", "pred", *[f"p_{c}" for c in CLASSES], "uncertainty"])
    for path, label, p, u in zip(faces.paths, faces.labels, probs, uncertainty):
        if np.isnan(p).any():  # a photo where no face was found (evaluate --detect)
            writer.writerow([path, CLASSES[label], "no face", *[""] * len(CLASSES), ""])
            continue
        writer.writerow([path, CLASSES[label], CLASSES[int(p.argmax())], *[f"{v:.6f}" for v in p], f"{u:.6f}"])
    return out.getvalue()


def format_report(report: dict) -> str:
    """A readable table: headline numbers, per-class P/R/F1 and the confusion matrix."""
    lines = [f"{report.get('data', '')}: {report['n']} images"]
    lines.append(
        f"accuracy {report['accuracy']:.4f} | macro F1 {report['macro_f1']:.4f} | macro recall {report['macro_recall']:.4f} | ECE {report['ece']:.4f}"
    )
    if "no_face_rate" in report:
        lines.append(
            f"no face found in {report['n_no_face']} photos ({report['no_face_rate']:.1%}), counted as wrong; "
            f"accuracy on the photos with a face {report['accuracy_found_faces']:.4f}"
        )
    if "accuracy_excluding_train_twins" in report:
        lines.append(
            f"accuracy without the {report['train_twins']} images that have a twin in train: "
            f"{report['accuracy_excluding_train_twins']:.4f} ({report['n_excluding_train_twins']} images)"
        )
    lines.append(
        f"calibration: ECE {report['ece']:.4f} at temperature {report['temperature']:.3f} (uncalibrated ECE {report['ece_uncalibrated']:.4f})"
    )
    for name, sub in report.get("subsets", {}).items():
        lines.append(f"accuracy on {name.replace('_', ' ')}: {sub['accuracy']:.4f} ({sub['n']} images)")
    if "uncertainty" in report:
        u = report["uncertainty"]
        lines.append(
            f"uncertainty flag (>= {u['threshold']:.3f}): AUROC {u['auroc_out_of_scope']:.3f} for the {u['n_out_of_scope']} faces "
            f"{'in ' + u['out_of_scope_folder'] if 'out_of_scope_folder' in u else 'the crowd saw as another expression'}; flags {u['out_of_scope_flagged']:.1%} of them and {u['in_scope_flagged']:.1%} of in-scope faces"
        )
    lines += ["", f"{'class':10s} {'precision':>9s} {'recall':>7s} {'f1':>7s} {'support':>8s}"]
    for name, m in report["per_class"].items():
        lines.append(f"{name:10s} {m['precision']:9.4f} {m['recall']:7.4f} {m['f1']:7.4f} {m['support']:8d}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)", " " * 10 + "".join(f"{c:>10s}" for c in CLASSES)]
    for name, row in zip(CLASSES, report["confusion_matrix"]):
        lines.append(f"{name:10s}" + "".join(f"{v:10d}" for v in row))
    return "\n".join(lines)


def write_outputs(
    report: dict, faces: data.FaceSet, probs: np.ndarray, uncertainty: np.ndarray, json_out=None, csv_out=None
) -> None:
    if json_out:
        write_user_file(json_out, json.dumps(report, indent=2))
    if csv_out:
        write_user_file(csv_out, predictions_csv(faces, probs, uncertainty))
