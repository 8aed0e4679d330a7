"""The training recipe: one typed record whose defaults are the shipped run.

    recipe = Recipe()                          # what weights/fer_net.pt was trained with
    recipe = Recipe.from_dict(card["training"]["recipe"])
    reproduce_command(recipe)                  # "python -m fer train --out runs/final" for the shipped run

`python -m fer train` builds its options from these fields (grouped, with their help and defaults), so
the command line, the defaults, the model card and the "reproduce" command are one list that cannot
drift. The network's options are `ModelConfig`'s fields and the augmentation's are `AugmentConfig`'s:
`FerNet()` is the shipped network and `AugmentConfig()` the shipped augmentation.
"""

from __future__ import annotations

import argparse
import shlex
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields

from fer.augment import AugmentConfig
from fer.model import ModelConfig

TRAINABLE = ("all", "last-stage", "head")
# Options that were recipe fields and are now where-and-how options of a run: a recipe that still has
# them (an earlier card, a saved state) is read without them.
MOVED_TO_RUN_OPTIONS = ("bf16",)
# The model's fields that are not options: they follow from the classes and the input size.
FIXED_MODEL_FIELDS = ("num_classes", "input_size")


def option(default, help: str, group: str, **kwargs):
    """A recipe field: its default, its --help text and its group in `python -m fer train --help`."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default, metadata={"help": help, "group": group, **kwargs})
    return field(default=default, metadata={"help": help, "group": group, **kwargs})


@dataclass
class Recipe:
    # Where training starts and what it learns.
    init: str | None = option(
        "weights/fer_net_folder_labels.pt",
        "start from these weights (a fine-tuning stage; relative paths are from the project root), "
        "or 'none' for a random network",
        "start",
    )
    train_layers: str = option(
        "all", "which layers learn: all, the last stage and the head, or the head alone", "start", choices=TRAINABLE
    )
    crowd_weight: float = option(
        1.0,
        "the four-class head's target: this share of the FERPlus crowd's vote shares over the four classes, "
        "the rest the folder label (a face without votes for the four: the folder label alone)",
        "targets",
    )
    crowd_aux: float = option(
        0.5,
        "weight of an auxiliary head that learns the crowd's shares of all ten FERPlus columns (0 = off; not shipped)",
        "targets",
    )
    label_smoothing: float = option(0.0, "label smoothing of the four-class targets", "targets")
    balance: float = option(
        0.5,
        "weigh each class's loss by (1 / its share of the targets) ** this: 0 = as the targets come, 1 = every "
        "class counts the same",
        "targets",
    )
    # The schedule.
    epochs: int = option(12, "epochs (passes over the training split)", "schedule")
    batch_size: int = option(128, "faces per step", "schedule")
    lr: float = option(5e-4, "peak learning rate of AdamW", "schedule")
    wd: float = option(0.05, "AdamW's weight decay (not on biases and norms)", "schedule")
    warmup_epochs: float = option(1.0, "linear warm-up, then a cosine decay to zero", "schedule")
    ema_decay: float = option(
        0.995, "per-step decay of the weights' moving average, which is scored (0 = none)", "schedule"
    )
    eval_from: int = option(0, "score validation from this epoch on (and at the last epoch)", "schedule")
    seed: int = option(0, "seed of the order, the augmentation and the initial weights", "schedule")
    # Augmentation (AugmentConfig's fields) and mixup.
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    mixup: float = option(0.2, "mixup's Beta(alpha, alpha) parameter (0 = off)", "augmentation")
    # The network (ModelConfig's fields).
    model: ModelConfig = field(default_factory=ModelConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Recipe:
        """A recipe from its dict (a model card's), refusing keys this version does not know."""
        values = {k: v for k, v in values.items() if k not in MOVED_TO_RUN_OPTIONS}
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown recipe options: {', '.join(sorted(unknown))}")
        values["augment"] = _nested(AugmentConfig, values.get("augment", {}))
        values["model"] = ModelConfig.from_dict(values.get("model", {}))
        return cls(**values)


def _nested(cls, values: dict):
    names = {f.name for f in fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} options: {', '.join(sorted(unknown))}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


# Help for the nested configs' fields, which live in fer/augment.py and fer/model.py.
NESTED_HELP = {
    "flip": "probability of a horizontal flip",
    "rotate_deg": "maximum rotation in degrees",
    "shift": "maximum shift, a fraction of the face's size",
    "scale": "maximum zoom change (0.12 = +-12%%)",
    "brightness": "maximum brightness change",
    "contrast": "maximum contrast change (0.25 = +-25%%)",
    "erase": "probability of erasing one random rectangle",
    "erase_area": "smallest and largest erased share of the face",
    "degrade": "probability of each photo degradation: small face, blur, noise, gamma, JPEG (0 = off)",
    "widths": "channels of the four stages",
    "depths": "residual blocks in each stage",
    "dropout": "dropout before the head",
    "se_reduction": "squeeze-and-excitation reduction in the blocks after the first stage (0 = no gates)",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _options():
    """(name, path in the recipe, field, type, metadata) of every option, nested configs flattened."""
    for f in fields(Recipe):
        if f.name in ("augment", "model"):
            cls, group = (AugmentConfig, "augmentation") if f.name == "augment" else (ModelConfig, "network")
            hints = typing.get_type_hints(cls)
            for inner in fields(cls):
                if inner.name not in FIXED_MODEL_FIELDS:
                    meta = {"help": NESTED_HELP[inner.name], "group": group}
                    yield inner.name, (f.name, inner.name), inner, hints[inner.name], meta
        else:
            yield f.name, (f.name,), f, typing.get_type_hints(Recipe)[f.name], f.metadata


def _default(f):
    return f.default_factory() if f.default is MISSING else f.default


def _base_type(hint):
    """X for `X | None`, else the hint itself."""
    if isinstance(hint, types.UnionType):
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per recipe field, in groups, each with its help and the shipped default."""
    groups = {}
    for name, _, f, hint, meta in _options():
        group = groups.get(meta["group"]) or groups.setdefault(
            meta["group"], parser.add_argument_group(f"recipe: {meta['group']}")
        )
        kind = _base_type(hint)
        kwargs = {"help": meta["help"] + " (default: %(default)s)", "default": _default(f), "dest": name}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple:
            kwargs.update(nargs="+", type=typing.get_args(kind)[0])
        else:
            kwargs["type"] = kind
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        group.add_argument(_flag(name), **kwargs)


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """The recipe the parsed options describe ('none' as --init means a random network)."""
    values: dict = {"augment": {}, "model": {}}
    for name, path, _, _, _ in _options():
        value = getattr(args, name)
        value = tuple(value) if isinstance(value, list) else value
        if name == "init" and value in ("", "none", "None"):
            value = None
        if len(path) == 2:
            values[path[0]][path[1]] = value
        else:
            values[name] = value
    return Recipe.from_dict(values)


def reproduce_command(recipe: Recipe | dict, out: str = "runs/final") -> str:
    """The shortest `python -m fer train` command that trains `recipe`: the options that differ from the
    defaults (the shipped recipe), none for the shipped run itself."""
    recipe = Recipe.from_dict(recipe) if isinstance(recipe, dict) else recipe
    shipped = Recipe()
    words = ["python", "-m", "fer", "train", "--out", out]
    for name, path, _, _, _ in _options():
        value, default = recipe, shipped
        for part in path:
            value, default = getattr(value, part), getattr(default, part)
        if value == default:
            continue
        if isinstance(value, bool):
            words.append(_flag(name) if value else "--no-" + name.replace("_", "-"))
        elif value is None:
            words += [_flag(name), "none"]
        else:
            words += [_flag(name), *(str(v) for v in (value if isinstance(value, tuple) else [value]))]
    return shlex.join(words)
