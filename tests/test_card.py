import json

import numpy as np
import pytest
import torch
from test_train import tiny_args

from fer import load_classifier
from fer.checkpoint import CARD_NAME, sha256_of
from fer.cli import main as cli
from fer.evaluate import evaluate_folder
from fer.predict import served_with_tta
from fer.train import main as train

pytestmark = pytest.mark.slow  # the real model and dataset end to end (AppTest, training, calibration)


@pytest.fixture(scope="module")
def tiny_run(tiny_dataset, tmp_path_factory):
    """A real one-epoch training run on real faces: what `fer card` ships."""
    out = tmp_path_factory.mktemp("tiny_run")
    train(tiny_args(tiny_dataset, out, "--epochs", "1"))
    return out


def ship(tiny_run, tiny_dataset, folder, *extra) -> tuple[dict, str]:
    weights = folder / "fer_net.pt"
    args = ["card", "--run", str(tiny_run), "--weights-out", str(weights), "--data", str(tiny_dataset)]
    assert cli([*args, "--command-line", "python -m fer train --epochs 1", *extra]) == 0
    return json.loads((folder / CARD_NAME).read_text()), weights


def test_card_ships_a_run_with_its_sha256_recipe_and_metrics(tiny_run, tiny_dataset, tmp_path):
    card, weights = ship(tiny_run, tiny_dataset, tmp_path)
    assert card["weights_sha256"] == sha256_of(weights)
    assert card["training"]["command"] == "python -m fer train --epochs 1"
    # Today's command for the same run: the tiny run's options that differ from the recipe.
    assert card["training"]["reproduce"] == (
        "python -m fer train --out runs/final --epochs 1 --batch-size 32 --widths 16 16 24 32 --depths 1 1 1 1 --no-bf16"
    )
    assert card["architecture"]["config"]["widths"] == [16, 16, 24, 32]
    assert {"validation", "test"} <= set(card["metrics"]) and "metrics_one_view" not in card
    validation = card["metrics"]["validation"]
    assert validation["n"] == 100 and validation["tta"] is False
    classifier = load_classifier(weights)  # sha256-checked against the card beside it
    assert classifier.tta is False and classifier.temperature == pytest.approx(card["temperature"])
    assert served_with_tta(weights) is False  # what the app's switch starts at, read without building the model
    report, _, _, _ = evaluate_folder(tiny_dataset, "validation", weights)
    assert report["accuracy"] == pytest.approx(validation["accuracy"])


def test_weights_shipped_with_tta_are_served_with_it_unless_turned_off(tiny_run, tiny_dataset, tmp_path, capsys):
    card, weights = ship(tiny_run, tiny_dataset, tmp_path, "--tta")
    assert card["metrics"]["validation"]["tta"] is True
    assert card["metrics_one_view"]["validation"]["tta"] is False
    assert card["inference"]["test_time_augmentation"].startswith("on by default")

    served = load_classifier(weights)
    assert served.tta is True and load_classifier(weights, tta=False).tta is False
    assert served_with_tta(weights) is True
    faces = evaluate_folder(tiny_dataset, "validation", weights)[1].images
    mirrored = np.ascontiguousarray(faces[:, :, ::-1])
    # Served: the face and its mirror image give the same probabilities (the average of both readings).
    assert np.allclose(served.predict_proba(faces), served.predict_proba(mirrored), atol=1e-5)
    one_view = served.with_tta(False)
    face_logits, mirror_logits = one_view.logits(faces), one_view.logits(mirrored)
    assert not torch.allclose(face_logits, mirror_logits)  # a one-epoch model: small, but real differences
    assert torch.allclose(served.logits(faces), (face_logits + mirror_logits) / 2, atol=1e-5)

    # `fer evaluate` follows the weights; --no-tta scores one view, as the card's one-view metrics did.
    for flag, expected in (([], card["metrics"]), (["--no-tta"], card["metrics_one_view"])):
        out = tmp_path / "report.json"
        args = ["evaluate", "--data", str(tiny_dataset), "--split", "validation", "--weights", str(weights)]
        assert cli([*args, "--json", str(out), *flag]) == 0
        report = json.loads(out.read_text())
        assert report["tta"] is (flag == []) and report["accuracy"] == pytest.approx(expected["validation"]["accuracy"])
    capsys.readouterr()


def test_card_refuses_a_folder_that_is_not_a_training_run(tiny_run, tiny_dataset, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "best.pt").write_bytes((tiny_run / "best.pt").read_bytes())  # weights, no history
    args = ["card", "--run", str(tmp_path / "run"), "--weights-out", str(tmp_path / "out.pt")]
    assert cli([*args, "--data", str(tiny_dataset)]) == 2
    assert "no training history" in capsys.readouterr().err
    assert not (tmp_path / "out.pt").exists()
