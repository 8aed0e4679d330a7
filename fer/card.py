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

from fer import data
from fer.checkpoint import CARD_NAME, DEFAULT_WEIGHTS, load_model, save_weights
from fer.errors import DataError
from fer.evaluate import evaluate_folder
from fer.model import count_macs, count_params
from fer.predict import Classifier

PREPROCESSING = (
    "Photo decoded safely, turned upright by EXIF, converted to RGB then to 8-bit grayscale (ITU-R 601 luma); "
    "each face box (OpenCV Haar cascade) grown by 2% per side, cut square, resized to 48x48 (area average "
    "when shrinking, bicubic when enlarging); pixels scaled to [0, 1]; the model normalises with mean 0.51, std 0.25."
)

INTENDED_USE = (
    "A demo and teaching tool for exploring what a small CNN learns about four facial expressions and how "
    "saliency maps explain it. Not for decisions about people: not for hiring, policing, health, education or "
    "any assessment of a person's feelings."
)

LIMITATIONS = [
    "Knows only four expressions (happy, sad, surprise, neutral): angry, fearful or disgusted faces are forced into one of them.",
    "Trained on FER2013 web images (48x48 grayscale, mostly frontal, adult faces); profile views, strong occlusion, children and low light are weaker.",
    "Sad and neutral are often confused: even human annotators disagree on them (FERPlus crowd votes agree with the folder label on about 78% of images).",
    "The face detector (Haar cascade) misses small, tilted or profile faces; the model then never sees them.",
    "Accuracy differs across groups of people in ways the dataset does not let us measure (no demographic labels).",
]


def data_card(root: Path) -> dict:
    """Sources, class balance per split and known defects of the dataset."""
    splits = {}
    for split in data.SPLITS:
        folder = root / split
        if folder.is_dir():
            _, labels = data.list_images(folder)
            splits[split] = {name: labels.count(i) for i, name in enumerate(data.CLASSES)}
    return {
        "source": "FER2013 subset (Kaggle 'Facial_emotion_images'): 48x48 grayscale web faces, 4 classes.",
        "location": str(root),
        "class_balance": splits,
        "defects": [
            "1,031 files are pixel duplicates of another (865 groups); 306 validation images have a twin in train, 17 test images one in train or validation.",
            "7 duplicate groups carry conflicting labels.",
            "3 images are nearly blank.",
            "The test split has only 128 images (1 image = 0.78 points): validation (4,977) is the number to trust.",
        ],
        "soft_labels": "FERPlus crowd votes (10 annotators per image, MIT licence, Microsoft).",
        "licence": "FER2013 images carry no explicit licence and are used for research; they are not shipped with the app.",
    }


def build_card(
    run_dir: str | Path,
    weights_out: str | Path = DEFAULT_WEIGHTS,
    data_dir=None,
    temperature: float = 1.0,
    command: str | None = None,
) -> dict:
    run_dir, weights_out = Path(run_dir), Path(weights_out)
    model, meta = load_model(run_dir / "best.pt", verify=False)
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    history = summary.get("history") or json.loads((run_dir / "history.json").read_text())
    sha = save_weights(weights_out, model, temperature=temperature, extra={"epoch": meta.get("epoch")})
    card = {
        "name": "FerNet",
        "weights_file": weights_out.name,
        "weights_sha256": sha,
        "created": date.today().isoformat(),
        "classes": list(data.CLASSES),
        "input": {"size": [48, 48], "channels": 1, "preprocessing": PREPROCESSING},
        "architecture": {
            "description": "Residual CNN: 3x3 stem, four stages at 48/24/12/6 px of basic residual blocks, global average pooling, dropout, linear head.",
            "config": model.config.to_dict(),
            "params": count_params(model),
            "macs_per_face": count_macs(model),
        },
        "training": {
            "command": command or summary.get("command"),
            "recipe": summary.get("recipe"),
            "data": summary.get("data"),
            "best_epoch": summary.get("best_epoch", meta.get("epoch")),
            "train_time_s": summary.get("train_time_s"),
            "machine": summary.get("machine") or platform.processor(),
            "torch": summary.get("torch"),
        },
        "temperature": temperature,
        "curves": history,
        "metrics": {},
        "intended_use": INTENDED_USE,
        "limitations": LIMITATIONS,
    }
    classifier = Classifier(model, {"temperature": temperature})
    try:
        root = data.find_data_dir(data_dir)
        for split in ("validation", "test"):
            if (root / split).is_dir():
                report, _, _ = evaluate_folder(root, split, weights_out, classifier=classifier)
                report.pop("data", None)
                card["metrics"][split] = report
        card["data_card"] = data_card(root)
    except DataError as error:
        card["metrics_error"] = str(error)
    (weights_out.parent / CARD_NAME).write_text(json.dumps(card, indent=1))
    return card
