"""Names, paths and environment settings the whole project shares.

Imports nothing from the project, so any module (the model, the app, a test) may import it without
pulling in the dataset loader or torch. Every `FER_*` environment variable is read here and only here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLASSES = ("happy", "sad", "surprise", "neutral")
# Each class's colour in every chart, box and video (Okabe-Ito: distinguishable with the common colour-vision
# deficiencies and on a projector). A new class needs one here too.
CLASS_COLORS = {"happy": "#E69F00", "sad": "#0072B2", "surprise": "#CC79A7", "neutral": "#009E73"}
SPLITS = ("train", "validation", "test")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_DIR = PROJECT_ROOT / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "fer_net.pt"
DEFAULT_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data" / "Facial_emotion_images"


@dataclass(frozen=True)
class Environment:
    """The operator's settings, from `FER_*` environment variables."""

    data_dir: Path | None  # FER_DATA_DIR: the dataset root when no --data is given
    weights: Path  # FER_WEIGHTS: the weights the app and CLI serve
    cache_dir: Path  # FER_CACHE_DIR: the Dataset page's cached split predictions
    app_torch_threads: int  # FER_APP_TORCH_THREADS: torch threads in the app (0: torch's default)
    warm_up: bool  # FER_NO_WARMUP=1 turns off the app's background model load (tests)
    allow_data_dir_setting: bool  # FER_ALLOW_DATA_DIR_SETTING=1 lets visitors type a dataset folder
    # FER_ICE_SERVERS: the Live page's STUN/TURN servers as JSON (RTCIceServer dicts); none by default, which
    # works on one machine (localhost) and a local network.
    ice_servers: str = "[]"


def environment() -> Environment:
    """The settings as they are now (read on each call: tests and the CLI set them while running)."""
    env = os.environ
    return Environment(
        data_dir=Path(env["FER_DATA_DIR"]) if env.get("FER_DATA_DIR") else None,
        weights=Path(env.get("FER_WEIGHTS") or DEFAULT_WEIGHTS),
        cache_dir=Path(env.get("FER_CACHE_DIR") or PROJECT_ROOT / ".cache" / "predictions"),
        app_torch_threads=int(env.get("FER_APP_TORCH_THREADS") or 1),
        warm_up=not env.get("FER_NO_WARMUP"),
        allow_data_dir_setting=env.get("FER_ALLOW_DATA_DIR_SETTING") == "1",
        ice_servers=env.get("FER_ICE_SERVERS") or "[]",
    )
