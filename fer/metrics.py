"""Classification metrics on labels and probabilities (pure numpy): accuracy, per-class P/R/F1,
confusion matrix, expected calibration error, reliability bins, AUROC and intervals."""

from __future__ import annotations

import numpy as np

from fer.config import CLASSES

ECE_BINS = 15


def score_text(value: float) -> str:
    """A faithfulness score as shown everywhere: signed, two decimals, never '-0.00'."""
    return f"{round(float(value), 2) + 0.0:+.2f}"  # + 0.0 turns a rounded -0.0 into 0.0


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion: honest on small sets (the 128-image test split) and
    never outside [0, 1]."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def total_variation(probs: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Per row, half the L1 distance between two distributions: 0 when they agree, 1 when disjoint."""
    return 0.5 * np.abs(np.asarray(probs, dtype=np.float64) - np.asarray(shares, dtype=np.float64)).sum(axis=1)


def _chosen_share(probs: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Per row, the share of people who chose the class the probabilities rank first."""
    return np.asarray(shares, dtype=np.float64)[np.arange(len(shares)), probs.argmax(axis=1)]


def share_reliability(probs: np.ndarray, shares: np.ndarray, bins: int = 10) -> list[dict]:
    """Per bin of the top probability: its range, face count, mean top probability and the mean share of
    people (the crowd's votes) who chose that class. Where the two agree, "70%" reads as 7 in 10 people."""
    return _binned(probs, _chosen_share(probs, shares), "share", bins)


def share_calibration_error(probs: np.ndarray, shares: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE with the share of people who chose the top class in place of 0/1 correctness: mean |share -
    top probability| over equal-width bins of the top probability, weighted by the bin's share of rows.
    0 when "70%" means 7 in 10 people, bin by bin (the reading `fer card` calibrates for); the ECE against
    the crowd's majority label cannot be 0 then, since the majority is right more often than its share."""
    return _calibration_gap(probs, _chosen_share(probs, shares), bins)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by the bin's share."""
    return _calibration_gap(probs, probs.argmax(axis=1) == labels, bins)


def confidence_bins(probs: np.ndarray, bins: int = ECE_BINS) -> tuple[np.ndarray, np.ndarray]:
    """The bin edges (bins + 1) and each row's bin of its top probability (equal-width bins over [0, 1])."""
    edges = np.linspace(0, 1, bins + 1)
    return edges, np.clip(np.digitize(probs.max(axis=1), edges[1:-1], right=True), 0, bins - 1)


def _calibration_gap(probs: np.ndarray, value: np.ndarray, bins: int) -> float:
    """Both ECEs: per confidence bin, |mean value - mean top probability|, weighted by the bin's share of
    rows (0 for no rows)."""
    return float(
        sum(
            b["count"] / len(probs) * abs(b["value"] - b["confidence"])
            for b in _binned(probs, value, "value", bins)
            if b["count"]
        )
    )


def _binned(probs: np.ndarray, value: np.ndarray, name: str, bins: int) -> list[dict]:
    """Per confidence bin: its range, row count, mean top probability and the mean of `value` as `name`."""
    confidence = probs.max(axis=1)
    edges, which = confidence_bins(probs, bins)
    out = []
    for b in range(bins):
        in_bin = which == b
        out.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": int(in_bin.sum()),
                "confidence": float(confidence[in_bin].mean()) if in_bin.any() else None,
                name: float(value[in_bin].mean()) if in_bin.any() else None,
            }
        )
    return out


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per confidence bin: its range, image count, mean confidence and accuracy (for a reliability diagram)."""
    return _binned(probs, probs.argmax(axis=1) == labels, "accuracy", bins)


def compute_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, per-class precision/recall/F1/support, macro averages, confusion matrix and ECE.

    A row of NaN probabilities is an image without a prediction (a photo where no face was found): it
    counts as wrong in the accuracy and the recall, and is left out of the confusion matrix and the ECE."""
    labels = np.asarray(labels, dtype=int)
    probs = np.asarray(probs).reshape(len(labels), -1)
    missing = np.isnan(probs).any(axis=1)
    preds = np.where(missing, -1, np.nan_to_num(probs).argmax(axis=1)) if len(labels) else np.zeros(0, dtype=int)
    k = len(CLASSES)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (labels[~missing], preds[~missing]), 1)
    per_class = {}
    for i, name in enumerate(CLASSES):
        tp = confusion[i, i]
        predicted, support = confusion[:, i].sum(), int((labels == i).sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": support,
        }
    present = [name for name in CLASSES if per_class[name]["support"] > 0]
    return {
        "n": int(len(labels)),
        "accuracy": float((preds == labels).mean()) if len(labels) else 0.0,
        "accuracy_interval": wilson_interval(int((preds == labels).sum()), len(labels)),
        "macro_f1": float(np.mean([per_class[c]["f1"] for c in present])) if present else 0.0,
        "macro_recall": float(np.mean([per_class[c]["recall"] for c in present])) if present else 0.0,
        "per_class": per_class,
        "classes": list(CLASSES),
        "confusion_matrix": confusion.tolist(),
        "ece": expected_calibration_error(probs[~missing], labels[~missing]),
    }


def auroc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Probability that a random positive scores higher than a random negative (ties count half)."""
    pos, neg = scores[positives], scores[~positives]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    # Average ranks over ties.
    values = np.concatenate([pos, neg])
    for v in np.unique(values):
        tied = values == v
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
