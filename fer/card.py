"""The model card: everything known about the shipped weights, in weights/model_card.json.

`python -m fer card --run RUN_DIR` turns a training run (best.pt, summary.json or history.json) into
the shipped weights: it copies the best checkpoint to weights/fer_net.pt, scores it on the validation
and test splits with fer.evaluate, and writes the card (classes, preprocessing, architecture, recipe,
curves, metrics, sha256). The app's report page and `load_classifier` read it.
"""

from __future__ import annotations

import json
import platform
from datetime import date
from pathlib import Path

import numpy as np
import torch

from fer import data, quantize
from fer.augment import degrade_faces
from fer.browse import find_duplicates_file, read_duplicate_groups, ship_predictions
from fer.calibrate import (
    OUT_OF_SCOPE_FLAG_RATE,
    choose_other_expression_head,
    choose_threshold,
    cross_fitted_calibration,
    softmax,
    uncertainty_report,
)
from fer.checkpoint import CARD_NAME, load_model, save_weights
from fer.config import DEFAULT_WEIGHTS, PROJECT_ROOT
from fer.errors import FerError
from fer.evaluate import evaluate_folder
from fer.faces import ALIGN_OVERSAMPLE, CONFIRM_BELOW, DETECT_MAX_SIDE, MIN_FACE_SCORE
from fer.metrics import share_reliability
from fer.model import FerNet, count_macs, count_params, describe
from fer.predict import DEFAULT_UNCERTAINTY_THRESHOLD, Classifier
from fer.preprocess import FACE_SIZE
from fer.recipe import reproduce_command

INT8_CALIBRATION_FACES = 8192  # train faces the int8 activation ranges are observed on (docs/reliability.md)


def preprocessing() -> str:
    """How a photo becomes the network's input, with the numbers read from where they are set."""
    return (
        "Photo decoded safely, turned upright by EXIF, converted to RGB then to 8-bit grayscale (ITU-R 601 luma); "
        f"faces found by YuNet (OpenCV FaceDetectorYN, score >= {MIN_FACE_SCORE}; a box under {CONFIRM_BELOW} only "
        "if YuNet finds it again on the photo re-framed around it), each turned so its eyes are level and scaled "
        f"so its five landmarks fall where FER2013's faces have theirs, warped at {ALIGN_OVERSAMPLE * FACE_SIZE} px "
        f"and area-averaged to {FACE_SIZE}x{FACE_SIZE}; pixels scaled to [0, 1]; the model normalises with mean "
        f"{FerNet.MEAN}, std {FerNet.STD}."
    )


INTENDED_USE = (
    "A demo and teaching tool for exploring what a small CNN learns about four facial expressions and how "
    "saliency maps explain it. Not for decisions about people: not for hiring, policing, health, education or "
    "any assessment of a person's feelings."
)


def limitations(validation: dict | None) -> list[str]:
    """What the model cannot do, with the crowd's disagreement with FER2013's labels measured on validation."""
    agreement = ""
    subsets = ((validation or {}).get("folder") or {}).get("subsets") or {}
    agrees, disagrees = subsets.get("crowd_agrees_with_label"), subsets.get("crowd_disagrees_with_label")
    if agrees and disagrees:
        share = agrees["n"] / (agrees["n"] + disagrees["n"])
        agreement = f" (the FERPlus crowd agrees with FER2013's own label on {share:.0%} of validation faces)"
    return [
        f"Knows only {len(data.CLASSES)} expressions ({', '.join(data.CLASSES)}): angry, fearful or disgusted faces "
        "are forced into one of them; the 'may be another expression' flag catches most of them, not all.",
        "Trained on FER2013 web images (48x48 grayscale, mostly frontal, adult faces); profile views, strong "
        "occlusion, children and low light are weaker.",
        f"Sad and neutral are often confused: people disagree on them too{agreement}.",
        f"The face detector (YuNet) misses faces under about 10 pixels (after the photo is shrunk to {DETECT_MAX_SIDE} "
        "pixels) and faces turned fully sideways; the model then never sees them.",
        "Accuracy differs across groups of people in ways the dataset does not let us measure (no demographic labels).",
    ]


BLANK_STD = 1.0  # pixel standard deviation (0-255) under which a face is blank: no face to read


def dataset_defects(root: Path, splits: dict[str, data.FaceSet]) -> list[str]:
    """The dataset's known defects, counted from its duplicate list and its pixels."""
    defects = []
    duplicates = find_duplicates_file(root)
    if duplicates is not None:
        groups = read_duplicate_groups(duplicates)

        def twins(split: str, others: tuple[str, ...]) -> int:
            return sum(
                1
                for g in groups
                for m in g.members
                if m.startswith(f"{split}/") and any(o.startswith(tuple(f"{s}/" for s in others)) for o in g.members)
            )

        copies = sum(len(g.members) - 1 for g in groups)
        defects += [
            f"{copies:,} files are pixel duplicates of another ({len(groups):,} groups); "
            f"{twins('validation', ('train',)):,} validation images have a twin in train, "
            f"{twins('test', ('train', 'validation')):,} test images one in train or validation.",
            f"{sum(g.conflicting for g in groups)} duplicate groups carry conflicting labels.",
        ]
    blank = sum(int((faces.images.reshape(len(faces), -1).std(axis=1) < BLANK_STD).sum()) for faces in splits.values())
    defects.append(f"{blank} images are blank (no face to read).")
    if "test" in splits:
        n = len(splits["test"])
        defects.append(
            f"The test split has only {n} images (1 image = {100 / n:.2f} points): validation is the number to trust."
        )
    return defects


def data_card(root: Path) -> dict:
    """Sources, class balance per split and known defects of the dataset."""
    splits = {split: data.load_folder(root, split) for split in data.SPLITS if (root / split).is_dir()}
    return {
        "source": "FER2013 subset (Kaggle 'Facial_emotion_images'): 48x48 grayscale web faces, 4 classes.",
        "location": str(root),
        "class_balance": {split: faces.class_counts for split, faces in splits.items()},
        "defects": dataset_defects(root, splits),
        "soft_labels": "FERPlus crowd votes (10 annotators per image, MIT licence, Microsoft).",
        "licence": "FER2013 images carry no explicit licence and are used for research; they are not shipped with the app.",
    }


def calibrate(model, root: Path, train: data.FaceSet, meta: dict) -> tuple[dict, dict, dict | None]:
    """For the served model (with flip TTA where `meta` says so): the temperature (cross-fitted on
    validation halves), the "another expression" head (fitted on train) and the uncertainty threshold
    (chosen on validation)."""
    validation = data.load_folder(root, "validation")
    served = Classifier(model, meta)
    logits, embeddings = served.outputs(validation.images)
    logits = logits.numpy()
    votes_file = data.find_votes_file(root)
    votes = data.load_votes(votes_file) if votes_file else {}
    if votes:  # probabilities for the crowd's label, and a second T for the share of people (fer.calibrate)
        crowd, _ = data.crowd_labels(validation, votes)
        shares, _ = data.crowd_distribution(validation, votes)
        calibration = cross_fitted_calibration(logits, crowd, shares)
        has_shares = shares.sum(axis=1) > 0
        people = softmax(logits[has_shares], calibration["people"]["temperature"])
        calibration["people"]["share_reliability"] = share_reliability(people, shares[has_shares])
    else:
        calibration = cross_fitted_calibration(logits, validation.labels)
    probs = softmax(logits, calibration["temperature"])
    uncertainty = {
        "threshold": DEFAULT_UNCERTAINTY_THRESHOLD,
        "note": "too few faces with FERPlus votes out of scope: default threshold on 1 - top probability",
    }
    head = None
    train_out_of_scope = data.crowd_out_of_scope(train, votes) if votes else None
    out_of_scope = data.crowd_out_of_scope(validation, votes) if votes else None
    # The head needs out-of-scope examples on both sides: enough in train to fit, some in validation to check.
    if (
        train_out_of_scope is not None
        and train_out_of_scope.sum() >= 20
        and out_of_scope is not None
        and out_of_scope.any()
    ):
        # Fitted on the train faces and on degraded copies of them (fer.augment.degrade_faces), both with the
        # same targets: a blurred, noisy or compressed photo alone must not read as "another expression".
        features = np.vstack(
            [served.outputs(faces)[1].numpy() for faces in (train.images, degrade_faces(train.images))]
        )
        head, penalty = choose_other_expression_head(
            features, np.concatenate([train_out_of_scope, train_out_of_scope]), embeddings.numpy(), out_of_scope
        )
        served = Classifier(model, {**meta, "other_expression_head": head})
        scores = served.uncertainty(probs, embeddings)
        threshold = choose_threshold(scores, out_of_scope)
        uncertainty = {
            "score": served.uncertainty_name,
            **uncertainty_report(scores, out_of_scope, threshold, probs),
            "chosen_to_flag": f"at least {OUT_OF_SCOPE_FLAG_RATE:.0%} of the validation faces the crowd saw as another expression",
            "head": (
                f"logistic regression on the {embeddings.shape[1]} pooled features, L2 {penalty['l2']:g} on standardised "
                f"features, classes balanced; fitted on the {int(train_out_of_scope.sum())} train faces whose FERPlus crowd "
                f"majority is anger/disgust/fear/contempt vs the other {int((~train_out_of_scope).sum())}, each also "
                "once degraded like a photo (small, blurred, noisy, gamma, JPEG)"
            ),
            "head_l2": penalty["l2"],
            "head_l2_chosen_by": "the best validation AUROC of the penalties tried",
            "head_validation_auroc_by_l2": penalty["validation_auroc_by_l2"],
        }
    return calibration, uncertainty, head


def training_card(summary: dict, command: str | None, meta: dict) -> dict:
    """How the weights were trained: the command, the recipe and today's command that trains it again,
    and, for a fine-tuning stage, the weights it started from (with their own card, where shipped)."""
    try:
        reproduce = reproduce_command(summary["recipe"]) if summary.get("recipe") else None
    except (TypeError, ValueError):  # a recipe with options this version no longer has
        reproduce = None
    training = {
        "command": command or summary.get("command"),
        # The same recipe with today's `fer train` (its defaults are the shipped recipe).
        "reproduce": reproduce,
        "recipe": summary.get("recipe"),
        "data": summary.get("data"),
        "best_epoch": summary.get("best_epoch", meta.get("epoch")),
        "train_time_s": summary.get("train_time_s"),
        "wall_time_s": summary.get("wall_time_s"),
        "machine": summary.get("machine") or platform.processor(),
        "torch": summary.get("torch"),
    }
    init = (summary.get("recipe") or {}).get("init")
    if init:
        init_path = Path(init) if Path(init).is_absolute() else PROJECT_ROOT / init
        init_card = init_path.with_suffix(".json")
        training["init"] = {"file": init, "sha256": summary.get("init_sha256")}
        if summary.get("init_note"):
            training["init"]["note"] = summary["init_note"]
        if init_card.is_file():
            parent = json.loads(init_card.read_text())
            if parent.get("weights_sha256") == summary.get("init_sha256"):
                training["init"]["card"] = parent
                parent_time = (parent.get("training") or {}).get("train_time_s")
                if parent_time and training["train_time_s"]:
                    training["total_train_time_s"] = round(parent_time + training["train_time_s"], 1)
    return training


def split_reports(root: Path, weights: Path, classifier: Classifier) -> dict:
    """`fer evaluate`'s report for each of the validation and test splits that exist (no server paths)."""
    reports = {}
    for split in ("validation", "test"):
        if (root / split).is_dir():
            report, _, _, _ = evaluate_folder(root, split, weights, classifier=classifier)
            report.pop("data", None)
            reports[split] = report
    return reports


def build_card(
    run_dir: str | Path,
    weights_out: str | Path = DEFAULT_WEIGHTS,
    data_dir=None,
    command: str | None = None,
    tta: bool = False,
) -> dict:
    """Ship a training run: calibrate, write the weights and the model card with validation/test metrics.

    `tta`: the weights are served with flip test-time augmentation by default (the app, the CLI and
    `load_classifier`), so the temperature, the uncertainty threshold and the metrics are for the face +
    mirror average; the card also keeps the one-view metrics."""
    run_dir, weights_out = Path(run_dir), Path(weights_out)
    root = data.find_data_dir(data_dir)
    model, meta = load_model(run_dir / "best.pt", verify=False)
    # The file stores float16 (half the size); round now so quantization and metrics use what ships.
    model = model.half().float()
    summary_file, history_file = run_dir / "summary.json", run_dir / "history.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    if not summary.get("history") and not history_file.is_file():
        raise FerError(f"{run_dir} has no training history (summary.json or history.json): is it a `fer train` run?")
    history = summary.get("history") or json.loads(history_file.read_text())
    train = data.load_folder(root, "train")
    calibration_index = np.random.default_rng(0).permutation(len(train))[:INT8_CALIBRATION_FACES]
    int8_state = quantize.activation_ranges(quantize.quantize(model, train.images[calibration_index]))
    calibration, uncertainty, head = calibrate(model, root, train, {"int8_state_dict": int8_state, "tta": tta})
    extra = {
        "epoch": meta.get("epoch"),
        "tta": tta,
        "people_temperature": (calibration.get("people") or {}).get("temperature"),
        "uncertainty_threshold": uncertainty["threshold"],
        "int8_state_dict": int8_state,
    }
    if head is not None:
        extra["other_expression_head"] = head
    sha = save_weights(weights_out, model, temperature=calibration["temperature"], extra=extra, dtype=torch.float16)
    card = {
        "name": "FerNet",
        "weights_file": weights_out.name,
        "weights_sha256": sha,
        "created": date.today().isoformat(),
        "classes": list(data.CLASSES),
        "input": {"size": [FACE_SIZE, FACE_SIZE], "channels": 1, "preprocessing": preprocessing()},
        "architecture": {
            "description": describe(model.config),
            "config": model.config.to_dict(),
            "params": count_params(model),
            "macs_per_face": count_macs(model),
        },
        "training": training_card(summary, command, meta),
        "inference": {
            "precision": "int8 (PyTorch FX post-training static quantization, x86 kernels); fp32 (stored as float16) where int8 is unavailable and for Grad-CAM",
            "test_time_augmentation": (
                "on by default: each face is classified as it is and mirrored, in one batch of two, and the logits averaged"
                if tta
                else "off by default (optional: the face and its mirror image averaged)"
            ),
            "int8_calibration": f"activation ranges from {len(calibration_index)} random training faces (seed 0); "
            "the input exact (each of the 256 gray levels its own code), the stem convolution's weights on 7 bits",
        },
        "temperature": calibration["temperature"],
        "calibration": calibration,
        "uncertainty": uncertainty,
        "curves": history,
        "intended_use": INTENDED_USE,
        "limitations": limitations(None),
        "data_card": data_card(root),
    }
    classifier = Classifier(model, {"temperature": calibration["temperature"], **extra})
    card["metrics"] = split_reports(root, weights_out, classifier)
    card["limitations"] = limitations(card["metrics"].get("validation"))
    if tta:  # what one view scores, for comparison (same temperature)
        card["metrics_one_view"] = split_reports(root, weights_out, classifier.with_tta(False))
    (weights_out.parent / CARD_NAME).write_text(json.dumps(card, indent=1))
    # The validation split's predictions as served, so the Dataset page's first visit computes nothing.
    ship_predictions(classifier, data.load_folder(root, "validation"), weights_out.parent / "predictions")
    return card
