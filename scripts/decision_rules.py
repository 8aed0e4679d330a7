"""Other ways to turn the model's outputs into a label, against the plain argmax (docs/history/training-2026-11-26-to-12-03.md: "Nor does the
decision rule"). Reads the per-image predictions `fer evaluate` writes, so it scores exactly what is served:

    python -m fer evaluate --split validation --predictions /tmp/val.csv
    python -m scripts.decision_rules --predictions /tmp/val.csv [--state runs/final/last_state.pt]

1. class priors: probabilities reweighed by FER2013's Training-row class shares over this train split's;
2. per-class offsets maximising macro-recall, fitted on one stratified half of validation, scored on the
   other, then swapped;
3. (with --state) the auxiliary crowd head of a run's last-epoch state mixed in as log p + b log p_crowd, on
   that epoch's float weights (EMA), each face and its mirror averaged.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from fer import data

# FER2013's Training rows per class (the public FER2013 table, usage "Training").
FER2013_TRAINING = {"happy": 7215, "sad": 4830, "surprise": 3171, "neutral": 4965}


def scores(pred: np.ndarray, y: np.ndarray, fer_rows: np.ndarray) -> str:
    recalls = [(pred[y == k] == k).mean() for k in range(len(data.CLASSES))]
    return (
        f"accuracy {(pred == y).mean():.4f} | macro-recall {np.mean(recalls):.4f} | "
        f"FER2013 test rows {(pred[fer_rows] == y[fer_rows]).mean():.4f}"
    )


def macro_recall(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean([(pred[y == k] == k).mean() for k in range(len(data.CLASSES))]))


def fit_offsets(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-class log weights (happy fixed at 0) maximising macro-recall: coordinate search on a grid."""
    log_w = np.zeros(len(data.CLASSES))
    grid = np.linspace(-1, 1, 41)
    for _ in range(3):
        for k in range(1, len(data.CLASSES)):
            trial = log_w.copy()

            def score(v, k=k, trial=trial):
                trial[k] = v
                return macro_recall((probs * np.exp(trial)).argmax(1), y)

            log_w[k] = max(grid, key=score)
    return log_w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", required=True, help="CSV from `fer evaluate --predictions`")
    parser.add_argument("--data", default=None, help="dataset root (default: FER_DATA_DIR or ../shared/data)")
    parser.add_argument("--state", default=None, help="a run's last_state.pt, for the crowd-head rule")
    args = parser.parse_args()

    root = data.find_data_dir(args.data)
    votes = data.load_votes(data.find_votes_file(root))
    with open(args.predictions, newline="") as f:
        rows = list(csv.DictReader(f))
    probs = np.array([[float(r[f"p_{c}"]) for c in data.CLASSES] for r in rows])
    y = np.array([data.CLASSES.index(r["true"]) for r in rows])
    usage = np.array([votes[f"validation/{r['path']}"]["fer2013_usage"] for r in rows])
    fer_rows = np.isin(usage, ["PublicTest", "PrivateTest"])

    print(f"{len(rows)} images")
    print(f"argmax (as served)           {scores(probs.argmax(1), y, fer_rows)}")

    train = data.load_folder(root, "train")
    train_share = np.bincount(train.labels, minlength=len(data.CLASSES)) / len(train)
    fer_share = np.array([FER2013_TRAINING[c] for c in data.CLASSES], dtype=float)
    fer_share /= fer_share.sum()
    print(f"class priors                 {scores((probs * fer_share / train_share).argmax(1), y, fer_rows)}")

    rng = np.random.default_rng(0)
    half = np.zeros(len(y), bool)
    for k in range(len(data.CLASSES)):
        members = rng.permutation(np.flatnonzero(y == k))
        half[members[: len(members) // 2]] = True
    pred = np.empty(len(y), int)
    for fit_on in (half, ~half):
        log_w = fit_offsets(probs[fit_on], y[fit_on])
        pred[~fit_on] = (probs[~fit_on] * np.exp(log_w)).argmax(1)
    print(f"macro-recall offsets (x-fit) {scores(pred, y, fer_rows)}")

    if args.state:
        crowd_rule(Path(args.state), root, rows, y, fer_rows)


def crowd_rule(state_path: Path, root: Path, rows, y, fer_rows) -> None:
    import torch
    from torch.nn import functional as F

    from fer.model import FerNet, ModelConfig, to_tensor

    state = torch.load(state_path, map_location="cpu", weights_only=True)
    summary = json.loads((state_path.parent / "summary.json").read_text())
    model = FerNet(ModelConfig.from_dict(summary["model"]["config"]))
    model.load_state_dict(state["ema"]["module"] if state["ema"] else state["model"])
    model.eval()
    head = torch.nn.Linear(model.config.widths[-1], len(data.ALL_VOTE_COLUMNS))
    head.load_state_dict(state["crowd_head"])
    faces = data.load_folder(root, "validation")
    order = {key: i for i, key in enumerate(faces.keys)}
    x = to_tensor(faces.images[[order[f"validation/{r['path']}"] for r in rows]])
    main_lp, crowd_lp = 0, 0
    with torch.no_grad():
        for view in (x, x.flip(-1)):
            embedding = torch.cat([model.embed(view[i : i + 512]) for i in range(0, len(view), 512)])
            main_lp = main_lp + F.log_softmax(model.head(embedding), 1) / 2
            crowd_lp = crowd_lp + F.log_softmax(head(embedding), 1) / 2
    in_scope = crowd_lp[:, : len(data.CLASSES)]  # happiness, sadness, surprise, neutral: CLASSES order
    in_scope = in_scope - torch.logsumexp(in_scope, 1, keepdim=True)
    for b in (0, 0.25, 0.5, 1.0, 2.0):
        pred = (main_lp + b * in_scope).argmax(1).numpy()
        print(f"crowd head, b = {b:<4}         {scores(pred, y, fer_rows)}")


if __name__ == "__main__":
    main()
