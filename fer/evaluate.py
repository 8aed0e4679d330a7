"""Scoring a classifier on a folder of labelled face crops: `python -m fer evaluate`.

The images are already faces, so they are classified as they are (no detection). The JSON report is a
contract the app and scripts rely on: n, accuracy, macro_f1, macro_recall, per_class, classes,
confusion_matrix (rows true, columns predicted), ece (15 bins), weights_sha256, and, when the
training split is known, the accuracy on the images that have no pixel-identical twin in train.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from fer import data
from fer.checkpoint import DEFAULT_WEIGHTS, sha256_of
from fer.data import CLASSES
from fer.predict import Classifier, load_classifier

ECE_BINS = 15


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by the bin's share."""
    if len(labels) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per confidence bin: its range, image count, mean confidence and accuracy (for a reliability diagram)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        in_bin = which == b
        out.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": int(in_bin.sum()),
                "confidence": float(confidence[in_bin].mean()) if in_bin.any() else None,
                "accuracy": float(correct[in_bin].mean()) if in_bin.any() else None,
            }
        )
    return out


def compute_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, per-class precision/recall/F1/support, macro averages, confusion matrix and ECE."""
    labels = np.asarray(labels, dtype=int)
    preds = probs.argmax(axis=1) if len(labels) else np.zeros(0, dtype=int)
    k = len(CLASSES)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (labels, preds), 1)
    per_class = {}
    for i, name in enumerate(CLASSES):
        tp = confusion[i, i]
        predicted, support = confusion[:, i].sum(), confusion[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(support),
        }
    present = [name for name in CLASSES if per_class[name]["support"] > 0]
    return {
        "n": int(len(labels)),
        "accuracy": float((preds == labels).mean()) if len(labels) else 0.0,
        "macro_f1": float(np.mean([per_class[c]["f1"] for c in present])) if present else 0.0,
        "macro_recall": float(np.mean([per_class[c]["recall"] for c in present])) if present else 0.0,
        "per_class": per_class,
        "classes": list(CLASSES),
        "confusion_matrix": confusion.tolist(),
        "ece": expected_calibration_error(probs, labels),
    }


def known_train_split(folder: Path, split: str | None, root: Path) -> Path | None:
    """The train split beside the evaluated folder, if the evaluated folder is another split."""
    if split and split != "train" and (root / "train").is_dir():
        return root / "train"
    if not split and folder.name in data.SPLITS and folder.name != "train" and (folder.parent / "train").is_dir():
        return folder.parent / "train"
    return None


def evaluate_faces(
    classifier: Classifier, faces: data.FaceSet, train: data.FaceSet | None = None
) -> tuple[dict, np.ndarray]:
    """The metrics report and the (N, 4) probabilities for a loaded FaceSet."""
    probs = classifier.predict_proba(faces.images)
    report = compute_metrics(faces.labels, probs)
    if train is not None:
        twins = data.twins_in(faces, train)
        unique = ~twins
        report["train_twins"] = int(twins.sum())
        report["n_excluding_train_twins"] = int(unique.sum())
        report["accuracy_excluding_train_twins"] = compute_metrics(faces.labels[unique], probs[unique])["accuracy"]
    return report, probs


def evaluate_folder(
    data_dir: str | os.PathLike | None,
    split: str | None = None,
    weights: str | os.PathLike | None = None,
    classifier: Classifier | None = None,
) -> tuple[dict, data.FaceSet, np.ndarray]:
    root = data.find_data_dir(data_dir)
    faces = data.load_folder(root, split)
    weights = Path(weights or DEFAULT_WEIGHTS)
    classifier = classifier or load_classifier(weights)
    train_dir = known_train_split(faces.folder, split, root)
    train = data.load_folder(train_dir) if train_dir else None
    report, probs = evaluate_faces(classifier, faces, train)
    report = {
        "data": str(faces.folder),
        "split": split,
        **report,
        "weights": str(weights),
        "weights_sha256": sha256_of(weights),
    }
    return report, faces, probs


def predictions_csv(faces: data.FaceSet, probs: np.ndarray) -> str:
    """path,true,pred,p_happy,p_sad,p_surprise,p_neutral (paths relative to the evaluated folder)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "true", "pred", *[f"p_{c}" for c in CLASSES]])
    for path, label, p in zip(faces.paths, faces.labels, probs):
        writer.writerow([path, CLASSES[label], CLASSES[int(p.argmax())], *[f"{v:.6f}" for v in p]])
    return out.getvalue()


def format_report(report: dict) -> str:
    """A readable table: headline numbers, per-class P/R/F1 and the confusion matrix."""
    lines = [f"{report.get('data', '')}: {report['n']} images"]
    lines.append(
        f"accuracy {report['accuracy']:.4f} | macro F1 {report['macro_f1']:.4f} | macro recall {report['macro_recall']:.4f} | ECE {report['ece']:.4f}"
    )
    if "accuracy_excluding_train_twins" in report:
        lines.append(
            f"accuracy without the {report['train_twins']} images that have a twin in train: "
            f"{report['accuracy_excluding_train_twins']:.4f} ({report['n_excluding_train_twins']} images)"
        )
    lines += ["", f"{'class':10s} {'precision':>9s} {'recall':>7s} {'f1':>7s} {'support':>8s}"]
    for name, m in report["per_class"].items():
        lines.append(f"{name:10s} {m['precision']:9.4f} {m['recall']:7.4f} {m['f1']:7.4f} {m['support']:8d}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)", " " * 10 + "".join(f"{c:>10s}" for c in CLASSES)]
    for name, row in zip(CLASSES, report["confusion_matrix"]):
        lines.append(f"{name:10s}" + "".join(f"{v:10d}" for v in row))
    return "\n".join(lines)


def write_outputs(report: dict, faces: data.FaceSet, probs: np.ndarray, json_out=None, csv_out=None) -> None:
    if json_out:
        Path(json_out).write_text(json.dumps(report, indent=2))
    if csv_out:
        Path(csv_out).write_text(predictions_csv(faces, probs))
