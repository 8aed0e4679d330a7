import json

import pytest
import torch
from conftest import copy_images

from fer.checkpoint import load_model
from fer.config import PROJECT_ROOT
from fer.errors import DataError
from fer.evaluate import evaluate_folder
from fer.train import get_args_parser, main, reproduce_command

pytestmark = pytest.mark.slow  # the real model and dataset end to end (AppTest, training, calibration)


def tiny_args(tiny_dataset, out, *extra, bf16: bool = False):
    """A small network on the tiny dataset; fp32 unless `bf16` (bf16 is emulated, slowly, on CPUs without it)."""
    return get_args_parser().parse_args(
        [
            "--data",
            str(tiny_dataset),
            "--out",
            str(out),
            "--batch-size",
            "32",
            "--widths",
            "8",
            "16",
            "24",
            "32",
            "--depths",
            "1",
            "1",
            "1",
            "1",
            "--quiet",
            *([] if bf16 else ["--no-bf16"]),
            *extra,
        ]
    )


def test_tiny_training_run_writes_a_checkpoint_that_evaluate_loads(tiny_dataset, tmp_path):
    summary = main(tiny_args(tiny_dataset, tmp_path, "--epochs", "1", bf16=True))  # the recipe's precision
    assert summary["data"]["n_train"] == 320 and summary["data"]["n_val"] == 100
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "last_state.pt").is_file()
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history) == 1 and {"train_loss", "val_loss", "val_accuracy", "images_per_s"} <= set(history[0])
    report, faces, probs, _ = evaluate_folder(tiny_dataset, "validation", tmp_path / "best.pt")
    assert report["n"] == 100 and probs.shape == (100, 4)
    assert abs(report["accuracy"] - history[0]["val_accuracy"]) < 0.05  # fp32 here, bf16 during training


def test_resume_continues_where_it_stopped(tiny_dataset, tmp_path):
    mixing = ["--mixup", "0.2", "--degrade", "0.5"]
    main(tiny_args(tiny_dataset, tmp_path, "--epochs", "1", *mixing))
    summary = main(tiny_args(tiny_dataset, tmp_path, "--epochs", "2", *mixing, "--resume"))
    assert [h["epoch"] for h in summary["history"]] == [0, 1]
    model, meta = load_model(tmp_path / "best.pt")
    assert meta["epoch"] in (0, 1)
    assert model(torch.rand(2, 1, 48, 48)).shape == (2, 4)


def test_eval_from_scores_only_the_later_epochs_and_the_best_is_one_of_them(tiny_dataset, tmp_path):
    summary = main(tiny_args(tiny_dataset, tmp_path, "--epochs", "3", "--eval-from", "1"))
    accuracies = [h["val_accuracy"] for h in summary["history"]]
    assert accuracies[0] is None and all(0.0 <= a <= 1.0 for a in accuracies[1:])
    assert summary["best_epoch"] in (1, 2)
    assert summary["best_val_accuracy"] == max(accuracies[1:])
    assert load_model(tmp_path / "best.pt")[1]["epoch"] == summary["best_epoch"]
    assert summary["wall_time_s"] >= summary["train_time_s"] > 0


def test_train_command_writes_a_json_summary_with_its_recipe(tiny_dataset, tmp_path):
    from fer.cli import main as cli

    args = ["train", "--data", str(tiny_dataset), "--out", str(tmp_path), "--epochs", "1", "--train-limit", "64"]
    assert cli([*args, "--widths", "8", "8", "8", "8", "--depths", "1", "1", "1", "1", "--quiet"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["recipe"]["epochs"] == 1 and summary["recipe"]["widths"] == [8, 8, 8, 8]
    assert "handler" not in summary["recipe"] and summary["command"].startswith("python -m fer train")


def test_the_crowd_head_changes_training_but_the_shipped_model_stays_four_class(tiny_dataset, tmp_path):
    plain = main(tiny_args(tiny_dataset, tmp_path / "plain", "--epochs", "1", "--crowd-aux", "0"))
    crowd = main(tiny_args(tiny_dataset, tmp_path / "crowd", "--epochs", "1", "--crowd-aux", "1"))
    assert crowd["recipe"]["crowd_aux"] == 1.0 and plain["recipe"]["crowd_aux"] == 0.0
    weights_plain, weights_crowd = (
        load_model(tmp_path / run / "best.pt")[0].state_dict() for run in ("plain", "crowd")
    )
    assert weights_plain.keys() == weights_crowd.keys()  # no crowd head in what ships
    assert not all(torch.equal(weights_plain[key], weights_crowd[key]) for key in weights_plain)
    # The head itself is kept for resuming: ten vote columns read from the last stage's 32 channels.
    state = torch.load(tmp_path / "crowd" / "last_state.pt", weights_only=True)
    assert state["crowd_head"]["weight"].shape == (10, 32)
    resumed = main(tiny_args(tiny_dataset, tmp_path / "crowd", "--epochs", "2", "--crowd-aux", "1", "--resume"))
    assert [h["epoch"] for h in resumed["history"]] == [0, 1]


def test_the_crowd_head_without_a_votes_file_is_a_clear_error(data_root, tmp_path):
    copy_images(data_root / "train", tmp_path / "train", 8)
    copy_images(data_root / "validation", tmp_path / "validation", 4)
    with pytest.raises(DataError, match="crowd-aux needs ferplus_votes.csv"):
        main(tiny_args(tmp_path, tmp_path / "run", "--epochs", "1", "--crowd-aux", "0.5"))


def test_the_shipped_run_is_trained_again_by_the_plain_command():
    card = json.loads((PROJECT_ROOT / "weights" / "model_card.json").read_text())
    assert (
        reproduce_command(card["training"]["recipe"])
        == card["training"]["reproduce"]
        == ("python -m fer train --out runs/final")
    )
    assert reproduce_command({**card["training"]["recipe"], "cutmix": 1.0}) is None  # a removed option


def test_the_defaults_are_the_shipped_recipe():
    # The model card records the options the shipped weights were trained with; `fer train` with no
    # options must train the same. Options removed since then were off (or AdamW) in that run.
    card = json.loads((PROJECT_ROOT / "weights" / "model_card.json").read_text())
    recipe = card["training"]["recipe"]
    defaults = vars(get_args_parser().parse_args([]))
    shared = set(defaults) & set(recipe) - {"out", "data", "command"}
    assert len(shared) >= 24 and {k: defaults[k] for k in shared} == {k: recipe[k] for k in shared}
    assert defaults["degrade"] == 0 and "degrade" not in recipe
    removed = {k: recipe[k] for k in set(recipe) - set(defaults) - {"command"}}
    assert removed == {
        "opt": "adamw",
        "momentum": 0.9,  # unused by AdamW
        "crowd_weight": 0.0,
        "drop_junk": False,
        "dedup": False,
        "teacher": None,
        "kd_weight": 0.5,  # unused without a teacher
        "kd_temperature": 2.0,
    }
