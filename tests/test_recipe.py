import json
import shlex

import pytest
import torch

from fer.augment import AugmentConfig
from fer.checkpoint import load_model
from fer.config import DEFAULT_WEIGHTS, PROJECT_ROOT
from fer.model import FerNet, ModelConfig
from fer.recipe import Recipe, reproduce_command
from fer.train import get_args_parser


def parsed(*options: str) -> Recipe:
    from fer.recipe import recipe_from_args

    return recipe_from_args(get_args_parser().parse_args(list(options)))


def card() -> dict:
    return json.loads((PROJECT_ROOT / "weights" / "model_card.json").read_text())


def test_the_plain_command_trains_the_shipped_recipe():
    shipped = Recipe.from_dict(card()["training"]["recipe"])
    assert parsed() == Recipe() == shipped
    assert card()["training"]["reproduce"] == reproduce_command(shipped) == "python -m fer train --out runs/final"


def test_ferNet_is_the_shipped_network_and_the_defaults_are_one_list():
    assert Recipe().model == ModelConfig() and Recipe().augment == AugmentConfig()
    shipped, _ = load_model(DEFAULT_WEIGHTS)
    assert shipped.config == FerNet().config
    assert {k: v.shape for k, v in FerNet().state_dict().items()} == {
        k: v.shape for k, v in shipped.state_dict().items()
    }


def test_the_fine_tuning_start_is_shipped_beside_the_weights():
    init = PROJECT_ROOT / Recipe().init
    model, _ = load_model(init, verify=False)
    assert model.config == Recipe().model
    assert not all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), load_model()[0].state_dict().values())
    )


@pytest.mark.parametrize(
    "options",
    [
        ("--epochs", "3"),
        ("--init", "none", "--widths", "16", "16", "24", "32", "--depths", "1", "1", "1", "1"),
        ("--degrade", "0", "--erase-area", "0.1", "0.3", "--train-layers", "head"),
        ("--se-reduction", "0", "--rotate-deg", "20", "--crowd-weight", "0.5", "--lr", "0.001"),
    ],
)
def test_reproduce_names_only_what_differs_and_parses_back_to_the_same_recipe(options):
    recipe = parsed(*options)
    command = reproduce_command(recipe)
    words = shlex.split(command)
    assert words[:6] == ["python", "-m", "fer", "train", "--out", "runs/final"]
    assert parsed(*words[6:]) == recipe != Recipe()
    assert len([w for w in words[6:] if w.startswith("--")]) == len([o for o in options if o.startswith("--")])
    assert Recipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe  # what the card stores


def test_unknown_recipe_keys_are_refused_and_moved_ones_ignored():
    with pytest.raises(ValueError, match="unknown recipe options: cutmix"):
        Recipe.from_dict({**Recipe().to_dict(), "cutmix": 1.0})
    # bf16 is how a run computes, not what it learns: a card or saved state that still has it reads the same.
    assert Recipe.from_dict({**Recipe().to_dict(), "bf16": True}) == Recipe()
    assert parsed("--bf16") == Recipe()


def test_help_shows_every_option_with_its_default_in_groups(capsys):
    with pytest.raises(SystemExit):
        get_args_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for group in ("start", "targets", "schedule", "augmentation", "network"):
        assert f"recipe: {group}:" in text
    assert "(default: 1.0)" in text and "--se-reduction" in text and "--crowd-weight" in text
