"""How far the crowd's own label lets a model go (docs/training.md and docs/evaluation.md cite it):

    python -m scripts.crowd_ceiling [--split validation] [--repeats 20] [--model]

1. A second crowd. Each face's ten FERPlus votes are drawn again from its vote shares, and the crowd label
   rule (`fer.data.crowd_labels_of_counts`: a single top column among the four classes) is applied to the new votes.
   How often the second crowd's label agrees with the first is what a model that knew each face's shares
   exactly would score against a fresh crowd: a ceiling for accuracy and for each class's recall.
2. The shares as probabilities. A model whose probabilities equal the shares (the people's reading) has
   total variation 0 to them; its ECE against the crowd label is printed, and so is the pair for the
   shares sharpened (raised to 1/T and renormalised), which trades one for the other: why `fer card`
   fits two temperatures (fer.calibrate).
3. With --model, the same trade for the served model (int8, as shipped) at its two temperatures and
   others: total variation to the shares, ECE against the crowd's label and against the share of people
   (`fer.metrics.share_calibration_error`). In-sample: the temperatures are scored on the faces they
   are compared on.
"""

from __future__ import annotations

import argparse

import numpy as np

from fer import data
from fer.calibrate import softmax
from fer.metrics import expected_calibration_error, share_calibration_error, total_variation


def second_crowd_labels(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crowd labels of a new crowd of the same size per face, drawn from each face's ten-column shares."""
    totals = counts.sum(axis=1).astype(np.int64)
    shares = counts.astype(np.float64) / totals[:, None]
    votes = np.stack([rng.multinomial(n, p / p.sum()) for n, p in zip(totals, shares)])
    return data.crowd_labels_of_counts(votes)[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="dataset root (default: FER_DATA_DIR or ../shared/data)")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--repeats", type=int, default=20, help="second crowds drawn per face")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", action="store_true", help="also the served model at other temperatures")
    args = parser.parse_args(argv)

    root = data.find_data_dir(args.data)
    votes = data.load_votes(data.find_votes_file(root))
    faces = data.load_folder(root, args.split)
    labels, _ = data.crowd_labels(faces, votes)
    counts, _ = data.vote_counts(faces, votes)
    shares, _ = data.crowd_distribution(faces, votes)
    keep = labels != data.NO_CROWD_LABEL
    labels, counts, shares = labels[keep], counts[keep], shares[keep]
    print(f"{args.split}: {keep.sum()} faces with a crowd label")

    rng = np.random.default_rng(args.seed)
    agree = np.mean([second_crowd_labels(counts, rng) == labels for _ in range(args.repeats)], axis=0)
    per_class = " | ".join(f"{name} {agree[labels == k].mean():.3f}" for k, name in enumerate(data.CLASSES))
    print(f"a second crowd agrees with the first on {agree.mean():.3f} of faces | {per_class}")

    print("shares as probabilities, sharpened to the power 1/T:")
    for temperature in (1.0, 0.7, 0.5, 0.3, 0.1):
        probs = shares ** (1 / temperature)
        probs /= probs.sum(axis=1, keepdims=True)
        tv, ece = total_variation(probs, shares).mean(), expected_calibration_error(probs, labels)
        print(f"  T {temperature:.1f}: total variation {tv:.3f} | ECE against the crowd label {ece:.3f}")
    if args.model:
        model_tradeoff(faces, votes)


def model_tradeoff(faces: data.FaceSet, votes: dict) -> None:
    """As the card measures them: total variation on every face with votes for the four classes (ties
    included), ECE on the faces with a crowd label."""
    from fer import load_classifier

    labels, _ = data.crowd_labels(faces, votes)
    shares, has_shares = data.crowd_distribution(faces, votes)
    labelled = labels != data.NO_CROWD_LABEL
    classifier = load_classifier()
    logits = classifier.outputs(faces.images)[0].numpy()
    shipped = {"the probabilities'": classifier.temperature, "the people's": classifier.people_temperature}
    print("the served model at its own temperatures and others:")
    for name, temperature in [*shipped.items(), *((None, t) for t in (1.0, 0.8, 0.7, 0.6, 0.5, 0.4))]:
        if temperature is None:  # weights calibrated without the crowd's votes
            continue
        probs = softmax(logits, temperature)
        tv = total_variation(probs[has_shares], shares[has_shares]).mean()
        print(
            f"  T {temperature:.3f}{f' ({name})' if name else ''}: total variation {tv:.3f} | "
            f"ECE against the crowd label {expected_calibration_error(probs[labelled], labels[labelled]):.3f} | "
            f"against the share of people {share_calibration_error(probs[has_shares], shares[has_shares]):.3f}"
        )


if __name__ == "__main__":
    main()
