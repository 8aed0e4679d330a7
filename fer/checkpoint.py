"""Saving and loading model weights safely: tensors and plain values only, sha256-checked.

A checkpoint is a dict saved with `torch.save` and loaded with `weights_only=True`, so loading never
unpickles arbitrary objects. The shipped weights carry their sha256 in the model card beside them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path

import torch

from fer.config import CLASSES, DEFAULT_WEIGHTS, environment
from fer.errors import WeightsError
from fer.model import FerNet, ModelConfig

FORMAT = "fer-checkpoint-v1"
# Loading the int8 tensors makes torch announce deprecations that are no fault of the file. Filtered once
# here, at import, because warnings.catch_warnings() is not thread-safe (the app loads in a thread).
warnings.filterwarnings("ignore", message="TypedStorage is deprecated", category=UserWarning)
warnings.filterwarnings(
    "ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel", category=UserWarning
)
CARD_NAME = "model_card.json"


def weights_path() -> Path:
    """The weights the app and the CLI use by default: `FER_WEIGHTS` if set, else the shipped file."""
    return environment().weights


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_weights(
    path: str | os.PathLike,
    model: FerNet,
    temperature: float = 1.0,
    extra: dict | None = None,
    dtype: torch.dtype = torch.float32,
) -> str:
    """Write an inference checkpoint (state dict, config, classes, temperature); returns its sha256.

    `dtype` is how float tensors are stored: the shipped file uses float16 to halve its size (`fer card`
    rounds the model to float16 first, so every number in the card is measured on what ships); loading
    always gives a float32 model.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "classes": list(CLASSES),
        "config": model.config.to_dict(),
        "state_dict": {
            k: v.detach().to(dtype).clone() if v.is_floating_point() else v.detach().clone()
            for k, v in model.state_dict().items()
        },
        "temperature": float(temperature),
        **(extra or {}),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return sha256_of(path)


def card_path_for(weights: Path) -> Path:
    return weights.parent / CARD_NAME


def read_card(weights: str | os.PathLike = DEFAULT_WEIGHTS) -> dict | None:
    card = card_path_for(Path(weights))
    if not card.is_file():
        return None
    try:
        return json.loads(card.read_text())
    except (OSError, ValueError) as error:
        raise WeightsError(f"The model card {card} is not valid JSON: {error}") from error


def read_checkpoint(path: str | os.PathLike, verify: bool | None = None) -> dict:
    """Load and validate a checkpoint dict.

    `verify` checks the file's sha256 against the model card beside it; by default it does so for the
    shipped weights and for any file whose model card names it.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"Weights file not found: {path}. Train one with `python -m fer train` or restore "
            "weights/fer_net.pt from the repository."
        )
    if verify is None and path.resolve() == DEFAULT_WEIGHTS.resolve():
        verify = True  # the shipped file is always checked: a missing or broken card is an error, not a skip
    card = None
    try:
        card = read_card(path)
    except WeightsError:
        if verify:
            raise
    expected = card.get("weights_sha256") if isinstance(card, dict) and card.get("weights_file") == path.name else None
    if verify is None:
        verify = expected is not None
    if verify:
        if expected is None:
            raise WeightsError(f"No sha256 for {path.name} in the model card {card_path_for(path)}.")
        actual = sha256_of(path)
        if actual != expected:
            raise WeightsError(
                f"Weights file {path} is corrupt or was modified: its sha256 is {actual[:12]}..., the "
                f"model card expects {expected[:12]}.... Restore it from the repository or retrain."
            )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file: pickle, zip, runtime errors
        raise WeightsError(f"{path} is not a readable fer checkpoint ({type(error).__name__}: {error}).") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WeightsError(f"{path} is not a fer checkpoint (expected format {FORMAT!r}).")
    if list(payload.get("classes", [])) != list(CLASSES):
        raise WeightsError(f"{path} was trained for classes {payload.get('classes')}, not {list(CLASSES)}.")
    # `people_temperature` (fer.calibrate) is optional: weights calibrated without the crowd's votes have none.
    for key, default in (("temperature", 1.0), ("people_temperature", None)):
        value = payload.get(key, default)
        if value is not None and (not isinstance(value, int | float) or not math.isfinite(value) or value <= 0):
            raise WeightsError(
                f"{path} has an unusable {key.replace('_', ' ')} {value!r}: it must be a number above 0."
            )
    return payload


def load_model(path: str | os.PathLike = DEFAULT_WEIGHTS, verify: bool | None = None) -> tuple[FerNet, dict]:
    """The model in eval mode and the checkpoint's metadata (everything but the state dict)."""
    payload = read_checkpoint(path, verify)
    try:
        model = FerNet(ModelConfig.from_dict(payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # ValueError: e.g. a config that is not a dict
        raise WeightsError(f"{path} does not match the model architecture: {error}") from error
    model.eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model, meta
