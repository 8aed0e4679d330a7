"""How far the crowd's own label lets a model go (docs/training.md and docs/evaluation.md cite it):

    python -m scripts.crowd_ceiling [--split validation] [--repeats 20]

1. A second crowd. Each face's ten FERPlus votes are drawn again from its vote shares, and the crowd label
   rule (`fer.data.crowd_labels`: a single top column among the four classes) is applied to the new votes.
   How often the second crowd's label agrees with the first is what a model that knew each face's shares
   exactly would score against a fresh crowd: a ceiling for accuracy and for each class's recall.
2. The shares as probabilities. A model whose probabilities equal the shares, the reading `fer card`
   calibrates for, has total variation 0 to them; its ECE against the crowd label is printed, and so is
   the pair for the shares sharpened (raised to 1/T and renormalised), which trades one for the other.
"""

from __future__ import annotations

import argparse

import numpy as np

from fer import data
from fer.metrics import expected_calibration_error, total_variation


def second_crowd_labels(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crowd labels of a new crowd of the same size per face, drawn from each face's ten-column shares."""
    totals = counts.sum(axis=1).astype(np.int64)
    shares = counts / counts.sum(axis=1, keepdims=True)
    votes = np.stack([rng.multinomial(n, p / p.sum()) for n, p in zip(totals, shares.astype(np.float64))])
    top = votes.max(axis=1)
    single = (votes == top[:, None]).sum(axis=1) == 1
    winner = votes.argmax(axis=1)
    return np.where(single & (winner < len(data.VOTE_COLUMNS)), winner, data.NO_CROWD_LABEL)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="dataset root (default: FER_DATA_DIR or ../shared/data)")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--repeats", type=int, default=20, help="second crowds drawn per face")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    root = data.find_data_dir(args.data)
    votes = data.load_votes(data.find_votes_file(root))
    faces = data.load_folder(root, args.split)
    labels, _ = data.crowd_labels(faces, votes)
    counts, _ = data.vote_counts(faces, votes)
    keep = labels != data.NO_CROWD_LABEL
    labels, counts = labels[keep], counts[keep]
    print(f"{args.split}: {keep.sum()} faces with a crowd label")

    rng = np.random.default_rng(args.seed)
    agree = np.mean([second_crowd_labels(counts, rng) == labels for _ in range(args.repeats)], axis=0)
    per_class = " | ".join(f"{name} {agree[labels == k].mean():.3f}" for k, name in enumerate(data.CLASSES))
    print(f"a second crowd agrees with the first on {agree.mean():.3f} of faces | {per_class}")

    four = counts[:, : len(data.VOTE_COLUMNS)]
    shares = four / four.sum(axis=1, keepdims=True)
    print("shares as probabilities, sharpened to the power 1/T:")
    for temperature in (1.0, 0.7, 0.5, 0.3, 0.1):
        probs = shares ** (1 / temperature)
        probs /= probs.sum(axis=1, keepdims=True)
        tv, ece = total_variation(probs, shares).mean(), expected_calibration_error(probs, labels)
        print(f"  T {temperature:.1f}: total variation {tv:.3f} | ECE against the crowd label {ece:.3f}")


if __name__ == "__main__":
    main()
