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
from fer.faces import Detector
from fer.metrics import (
    compute_metrics,
    expected_calibration_error,
    reliability_bins,
    share_calibration_error,
    total_variation,
)
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


def truth_report(labels: np.ndarray, probs: np.ndarray, uncalibrated: np.ndarray, subsets: dict | None = None) -> dict:
    """Metrics against one truth: `labels` (N,) class indices, NO_CROWD_LABEL where this truth has none
    (those images are left out); `probs` calibrated, `uncalibrated` at temperature 1 (NaN rows: no face
    found, counted wrong). `subsets`: name -> mask, each scored for accuracy."""
    have = labels != data.NO_CROWD_LABEL
    y, p = labels[have], probs[have]
    found = ~np.isnan(p).any(axis=1)
    report = compute_metrics(y, p)
    report["ece_uncalibrated"] = expected_calibration_error(uncalibrated[have][found], y[found])
    report["reliability"] = reliability_bins(p[found], y[found])
    scored = {}
    for name, mask in (subsets or {}).items():
        mask = mask[have]
        if mask.any():
            sub = compute_metrics(y[mask], p[mask])
            scored[name] = {key: sub[key] for key in ("n", "accuracy", "accuracy_interval")}
    if scored:
        report["subsets"] = scored
    return report


CROWD_TRUTH = (
    "the FERPlus crowd's label: the single most-voted of its ten columns (ten people per face), where that is "
    "one of the four classes"
)
FOLDER_TRUTH = "the folder labels (for FER2013's faces its original labels, one person per face)"


def headline(report: dict) -> dict:
    """The metrics block a report leads with: against the crowd where there are votes, else the folder labels."""
    return report[report["headline"]]


def evaluate_faces(
    classifier: Classifier, faces: data.FaceSet, train: data.FaceSet | None = None, votes: dict | None = None
) -> tuple[dict, np.ndarray, np.ndarray]:
    """The metrics report, the (N, 4) calibrated probabilities and the (N,) uncertainties for a FaceSet.

    Two truths side by side: with FERPlus votes the crowd's label is the headline (`crowd`), and the
    folder labels (`folder`) are reported beside it: public FER2013 models were trained on those, so they
    stay the fair comparison with them. Each block has accuracy (with its 95% interval), macro recall,
    per-class P/R/F1, the confusion matrix and ECE; with the train split, accuracy without the images
    that have a pixel-identical twin in train; with votes, accuracy on the FER2013 test rows (the rows
    public models never trained on), how far the probabilities are from the crowd's four vote shares, and
    how well the uncertainty flag catches faces the crowd saw as another expression.
    """
    logits, probs, uncertainty = score_faces(classifier, faces.images)
    uncalibrated = softmax(logits)
    subsets = {}
    report = {"n": len(faces), "headline": "folder"}
    if train is not None:
        twins = data.twins_in(faces, train)
        report["train_twins"] = int(twins.sum())
        subsets["excluding_train_twins"] = ~twins
    if votes:
        usage = data.fer2013_usage(faces, votes)
        subsets["fer2013_public_test"] = usage == "PublicTest"
        subsets["fer2013_private_test"] = usage == "PrivateTest"
        subsets["fer2013_test_rows"] = np.isin(usage, ["PublicTest", "PrivateTest"])
        crowd, no_label = data.crowd_labels(faces, votes)
        if (crowd != data.NO_CROWD_LABEL).any():
            shares, has_shares = data.crowd_distribution(faces, votes)
            report["headline"] = "crowd"
            report["crowd"] = {
                "truth": CROWD_TRUTH,
                "no_label": no_label,
                **truth_report(crowd, probs, uncalibrated, subsets),
                "vote_shares_tv": float(total_variation(probs[has_shares], shares[has_shares]).mean()),
                "vote_shares_ece": share_calibration_error(probs[has_shares], shares[has_shares]),
                "n_vote_shares": int(has_shares.sum()),
            }
        agrees, disagrees = data.crowd_agrees(faces, votes)
        subsets = {**subsets, "crowd_agrees_with_label": agrees, "crowd_disagrees_with_label": disagrees}
    report["folder"] = {"truth": FOLDER_TRUTH, **truth_report(faces.labels, probs, uncalibrated, subsets)}
    report["temperature"] = classifier.temperature
    if votes:
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
    detector: Detector | None = None,
) -> tuple[dict, data.FaceSet, np.ndarray, np.ndarray]:
    """`evaluate_folder` for whole photos (`--detect`): the whole pipeline, the largest face of each photo,
    no face = wrong. The FaceSet holds the aligned crops the classifier saw. `detector`: any
    fer.faces.Detector, YuNet's by default.

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
    predictor = Predictor(classifier, detector)
    crops, probs, uncertainty = largest_faces(predictor, folder, paths)
    labels = np.asarray(labels, dtype=np.int64)
    found = ~np.isnan(probs).any(axis=1)
    # Calibrated log-probabilities times T are the logits up to a constant: the uncalibrated probabilities.
    uncalibrated = softmax(np.log(np.clip(probs, 1e-12, 1)) * classifier.temperature)
    folder_report = truth_report(labels, probs, uncalibrated)
    folder_report["accuracy_found_faces"] = (
        float((probs[found].argmax(1) == labels[found]).mean()) if found.any() else 0.0
    )
    report = {
        "n": len(paths),
        "n_no_face": int((~found).sum()),
        "no_face_rate": float((~found).mean()),
        "headline": "folder",
        "folder": {"truth": "the photo set's labels (its folders)", **folder_report},
        "temperature": classifier.temperature,
    }
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


def _interval(block: dict) -> str:
    low, high = block["accuracy_interval"]
    return f"{block['accuracy']:.4f} (95% interval {low:.3f}-{high:.3f})"


def format_truth(name: str, block: dict) -> list[str]:
    """One truth's block: headline numbers, subsets, per-class P/R/F1 and the confusion matrix."""
    lines = [f"== against {block['truth']}: {block['n']} images =="]
    if "no_label" in block:
        missing = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in block["no_label"].items() if v)
        lines.append(f"no crowd label for {sum(block['no_label'].values())} images ({missing or 'none'})")
    lines.append(
        f"accuracy {_interval(block)} | macro F1 {block['macro_f1']:.4f} | macro recall {block['macro_recall']:.4f} "
        f"| ECE {block['ece']:.4f} (uncalibrated {block['ece_uncalibrated']:.4f})"
    )
    if "accuracy_found_faces" in block:
        lines.append(f"accuracy on the photos with a face {block['accuracy_found_faces']:.4f}")
    if "vote_shares_tv" in block:
        lines.append(
            f"probabilities vs the crowd's four vote shares: mean total-variation distance {block['vote_shares_tv']:.4f} "
            f"({block['n_vote_shares']} images)"
        )
    for subset, sub in block.get("subsets", {}).items():
        lines.append(f"accuracy on {subset.replace('_', ' ')}: {_interval(sub)} ({sub['n']} images)")
    lines += ["", f"{'class':10s} {'precision':>9s} {'recall':>7s} {'f1':>7s} {'support':>8s}"]
    for cls, m in block["per_class"].items():
        lines.append(f"{cls:10s} {m['precision']:9.4f} {m['recall']:7.4f} {m['f1']:7.4f} {m['support']:8d}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)", " " * 10 + "".join(f"{c:>10s}" for c in CLASSES)]
    for cls, row in zip(CLASSES, block["confusion_matrix"]):
        lines.append(f"{cls:10s}" + "".join(f"{v:10d}" for v in row))
    return lines


def format_report(report: dict) -> str:
    """A readable table: the headline truth first, then the folder labels beside it."""
    lines = [f"{report.get('data', '')}: {report['n']} images, temperature {report['temperature']:.3f}"]
    if "no_face_rate" in report:
        lines.append(f"no face found in {report['n_no_face']} photos ({report['no_face_rate']:.1%}), counted as wrong")
    if "train_twins" in report:
        lines.append(f"{report['train_twins']} images have a pixel-identical twin in train")
    if "uncertainty" in report:
        u = report["uncertainty"]
        lines.append(
            f"uncertainty flag (>= {u['threshold']:.3f}): AUROC {u['auroc_out_of_scope']:.3f} for the {u['n_out_of_scope']} faces "
            f"{'in ' + u['out_of_scope_folder'] if 'out_of_scope_folder' in u else 'the crowd saw as another expression'}; flags {u['out_of_scope_flagged']:.1%} of them and {u['in_scope_flagged']:.1%} of in-scope faces"
        )
    for name in dict.fromkeys([report["headline"], "crowd", "folder"]):
        if name in report:
            lines += ["", *format_truth(name, report[name])]
    return "\n".join(lines)


def write_outputs(
    report: dict, faces: data.FaceSet, probs: np.ndarray, uncertainty: np.ndarray, json_out=None, csv_out=None
) -> None:
    if json_out:
        write_user_file(json_out, json.dumps(report, indent=2))
    if csv_out:
        write_user_file(csv_out, predictions_csv(faces, probs, uncertainty))
