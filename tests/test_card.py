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
        "python -m fer train --out runs/final --init none --epochs 1 --batch-size 32 --widths 16 16 24 32 "
        "--depths 1 1 1 1"
    )
    assert "init" not in card["training"]  # a random start: no weights to name
    assert card["architecture"]["config"]["widths"] == [16, 16, 24, 32]
    assert {"validation", "test"} <= set(card["metrics"]) and "metrics_one_view" not in card
    validation = card["metrics"]["validation"]
    assert validation["n"] == 100 and validation["tta"] is False and validation["headline"] == "crowd"
    # The probabilities are calibrated to the crowd's label and the people's reading to its vote shares (the
    # votes file sits beside the tiny dataset).
    assert card["calibration"]["target"] == "crowd_label" and "tv_after" in card["calibration"]
    people = card["calibration"]["people"]
    assert people["target"] == "crowd_vote_shares" and people["share_reliability"]
    # The validation predictions as served ship beside the weights, for the Dataset page's first visit.
    (shipped,) = (tmp_path / "predictions").glob("probs-*.npy")
    assert np.load(shipped).shape == (100, 4)
    classifier = load_classifier(weights)  # sha256-checked against the card beside it
    assert classifier.tta is False and classifier.temperature == pytest.approx(card["temperature"])
    assert classifier.people_temperature == pytest.approx(people["temperature"])
    assert served_with_tta(weights) is False  # what the app's switch starts at, read without building the model
    report, _, _, _ = evaluate_folder(tiny_dataset, "validation", weights)
    assert report["crowd"]["accuracy"] == pytest.approx(validation["crowd"]["accuracy"])
    assert report["folder"]["accuracy"] == pytest.approx(validation["folder"]["accuracy"])


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
        stored = expected["validation"]["crowd"]["accuracy"]
        assert report["tta"] is (flag == []) and report["crowd"]["accuracy"] == pytest.approx(stored)
    capsys.readouterr()


def test_card_refuses_a_folder_that_is_not_a_training_run(tiny_run, tiny_dataset, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "best.pt").write_bytes((tiny_run / "best.pt").read_bytes())  # weights, no history
    args = ["card", "--run", str(tmp_path / "run"), "--weights-out", str(tmp_path / "out.pt")]
    assert cli([*args, "--data", str(tiny_dataset)]) == 2
    assert "no training history" in capsys.readouterr().err
    assert not (tmp_path / "out.pt").exists()


def test_a_fine_tuned_run_names_the_weights_it_started_from_and_their_card(tiny_run, tiny_dataset, tmp_path):
    start = tmp_path / "start.pt"
    start.write_bytes((tiny_run / "best.pt").read_bytes())
    parent = {"weights_sha256": sha256_of(start), "training": {"train_time_s": 100.0, "recipe": {"epochs": 1}}}
    (tmp_path / "start.json").write_text(json.dumps(parent))  # the starting weights' own card, beside them
    tuned = tmp_path / "tuned"
    train(tiny_args(tiny_dataset, tuned, "--epochs", "1", "--init", str(start), "--train-layers", "head"))
    card, _ = ship(tuned, tiny_dataset, tmp_path / "shipped")
    init = card["training"]["init"]
    assert init["file"] == str(start) and init["sha256"] == sha256_of(start) and init["card"] == parent
    assert card["training"]["total_train_time_s"] == pytest.approx(100.0 + card["training"]["train_time_s"], abs=0.1)
    assert "--train-layers head" in card["training"]["reproduce"]
    # Other weights under the same name: the card does not claim the stored card describes them.
    (tmp_path / "start.json").write_text(json.dumps({**parent, "weights_sha256": "0" * 64}))
    card, _ = ship(tuned, tiny_dataset, tmp_path / "again")
    assert "card" not in card["training"]["init"] and "total_train_time_s" not in card["training"]
