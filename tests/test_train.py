import json

import pytest
import torch
from conftest import copy_images

from fer import train
from fer.checkpoint import load_model, sha256_of
from fer.errors import DataError, FerError
from fer.evaluate import evaluate_folder
from fer.train import get_args_parser, main

pytestmark = pytest.mark.slow  # the real model and dataset end to end (AppTest, training, calibration)


def tiny_args(tiny_dataset, out, *extra, bf16: bool = False):
    """A small random network on the tiny dataset; fp32 unless `bf16` (emulated, slowly, on CPUs without it)."""
    return get_args_parser().parse_args(
        [
            *("--data", str(tiny_dataset), "--out", str(out), "--quiet"),
            *("--init", "none", "--batch-size", "32", "--depths", "1", "1", "1", "1"),
            # A first stage of 16 channels, not 8: torch 2.14's channels-last backward crashes on 8 on this AVX-512 CPU.
            *("--widths", "16", "16", "24", "32"),
            *(["--bf16"] if bf16 else []),
            *extra,
        ]
    )


def test_tiny_training_run_writes_a_checkpoint_that_evaluate_loads(tiny_dataset, tmp_path):
    summary = main(tiny_args(tiny_dataset, tmp_path, "--epochs", "1", bf16=True))  # bf16 where a run asks for it
    assert summary["data"]["n_train"] == 320 and summary["data"]["n_val"] == 100
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "last_state.pt").is_file()
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history) == 1 and {"train_loss", "val_loss", "val_accuracy", "images_per_s"} <= set(history[0])
    report, faces, probs, _ = evaluate_folder(tiny_dataset, "validation", tmp_path / "best.pt")
    assert report["n"] == 100 and probs.shape == (100, 4)
    assert abs(report["folder"]["accuracy"] - history[0]["val_accuracy"]) < 0.05  # fp32 here, bf16 in training


def test_a_run_stopped_after_epoch_two_and_resumed_ends_with_the_unbroken_runs_weights(
    tiny_dataset, tmp_path, monkeypatch
):
    # Everything random in a step is in play: mixup, degradations, erasing, dropout, the crowd's targets
    # and head, EMA. A resume that restored less (the optimiser, the schedule, an RNG) would diverge.
    recipe = ["--epochs", "4", "--eval-from", "0", "--mixup", "0.2", "--degrade", "0.5", "--crowd-weight", "0.7"]
    unbroken = main(tiny_args(tiny_dataset, tmp_path / "unbroken", *recipe))
    stopped = tmp_path / "stopped"
    one_epoch = train.train_one_epoch

    def killed_in_epoch_two(state, images, targets, recipe, epoch, *args):
        if epoch == 2:  # the third epoch: epochs 0 and 1 are finished and saved
            raise KeyboardInterrupt
        return one_epoch(state, images, targets, recipe, epoch, *args)

    monkeypatch.setattr(train, "train_one_epoch", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        main(tiny_args(tiny_dataset, stopped, *recipe))
    monkeypatch.setattr(train, "train_one_epoch", one_epoch)
    assert [h["epoch"] for h in json.loads((stopped / "history.json").read_text())] == [0, 1]
    resumed = main(tiny_args(tiny_dataset, stopped, *recipe, "--resume"))

    assert [h["epoch"] for h in resumed["history"]] == [0, 1, 2, 3]
    for key in ("train_loss", "val_loss", "val_accuracy", "val_crowd_accuracy"):
        assert [h[key] for h in resumed["history"]] == pytest.approx([h[key] for h in unbroken["history"]], rel=1e-5)
    final = [torch.load(run / "last_state.pt", weights_only=True) for run in (tmp_path / "unbroken", stopped)]
    for part in ("model", "crowd_head"):
        for key, value in final[0][part].items():
            torch.testing.assert_close(final[1][part][key], value, rtol=1e-5, atol=1e-6)
    for key, value in final[0]["ema"]["module"].items():
        torch.testing.assert_close(final[1]["ema"]["module"][key], value, rtol=1e-5, atol=1e-6)
    assert resumed["best_epoch"] == unbroken["best_epoch"]
    # Another recipe cannot continue this run (its schedule, its targets would not be the saved ones).
    with pytest.raises(FerError, match="another recipe"):
        main(tiny_args(tiny_dataset, stopped, *recipe[:1], "5", *recipe[2:], "--resume"))


def test_resuming_without_a_saved_state_starts_afresh_and_says_so(tiny_dataset, tmp_path, capsys):
    summary = main(tiny_args(tiny_dataset, tmp_path, "--epochs", "1", "--resume"))
    assert [h["epoch"] for h in summary["history"]] == [0]
    assert "no saved state" in capsys.readouterr().out


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
    args += ["--init", "none"]
    assert cli([*args, "--widths", "16", "16", "16", "16", "--depths", "1", "1", "1", "1", "--quiet"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["recipe"]["epochs"] == 1 and summary["recipe"]["model"]["widths"] == [16, 16, 16, 16]
    assert summary["command"].startswith("python -m fer train --data")
    # Where and how (--data, --train-limit, --quiet) are not the recipe; what differs from the shipped one is.
    assert summary["reproduce"] == (
        "python -m fer train --out runs/final --init none --epochs 1 --widths 16 16 16 16 --depths 1 1 1 1"
    )


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
    assert state["crowd_head"]["weight"].shape == (10, 32)  # restored on --resume (the resume test checks it)


def test_the_crowd_head_without_a_votes_file_is_a_clear_error(data_root, tmp_path):
    copy_images(data_root / "train", tmp_path / "train", 8)
    copy_images(data_root / "validation", tmp_path / "validation", 4)
    with pytest.raises(DataError, match="crowd-aux needs ferplus_votes.csv"):
        main(tiny_args(tmp_path, tmp_path / "run", "--epochs", "1", "--crowd-aux", "0.5"))


def test_fine_tuning_starts_from_the_init_weights_and_can_train_the_head_alone(tiny_dataset, tmp_path):
    first = main(tiny_args(tiny_dataset, tmp_path / "first", "--epochs", "1"))
    assert first["init_sha256"] is None
    start = load_model(tmp_path / "first" / "best.pt")[0].state_dict()
    args = (
        "--epochs",
        "1",
        "--init",
        str(tmp_path / "first" / "best.pt"),
        "--train-layers",
        "head",
        "--ema-decay",
        "0",
    )
    tuned = main(tiny_args(tiny_dataset, tmp_path / "tuned", *args))
    assert tuned["init_sha256"] == sha256_of(tmp_path / "first" / "best.pt")
    after = load_model(tmp_path / "tuned" / "best.pt")[0].state_dict()
    learnt = {key for key in start if not torch.equal(start[key], after[key])}
    assert learnt == {"head.weight", "head.bias"}  # frozen layers keep their weights and BatchNorm statistics


def test_init_weights_of_another_network_are_a_clear_error(tiny_dataset, tmp_path):
    with pytest.raises(FerError, match="not the recipe's"):
        main(tiny_args(tiny_dataset, tmp_path, "--epochs", "1", "--init", "weights/fer_net.pt"))


def test_balancing_weighs_each_class_by_its_inverse_share_and_keeps_the_average_face_at_one():
    from fer.train import balancing_weights, soft_cross_entropy

    targets = torch.tensor([[1.0, 0, 0, 0]] * 3 + [[0, 0.5, 0, 0.5]])  # shares 3/4, 1/8, 0, 1/8
    assert balancing_weights(targets, 0) is None
    full = balancing_weights(targets, 1.0)
    share = targets.sum(0) / targets.sum()
    torch.testing.assert_close(full * share, torch.tensor([1 / 3, 1 / 3, 0.0, 1 / 3]))  # each present class alike
    assert float((full * share).sum()) == pytest.approx(1.0)
    half = balancing_weights(targets, 0.5)
    assert 1 < half[1] < full[1] and full[0] < half[0] < 1
    logits = torch.zeros(4, 4)
    weighted, plain = soft_cross_entropy(logits, targets, full), soft_cross_entropy(logits, targets)
    assert float(weighted) == pytest.approx(float(plain))  # uniform predictions: the average weight is 1
