"""How much more test-time views and a second model buy: validation accuracy per set of views.

Each face is also read mirrored, zoomed (0.92x, 1.08x) and shifted by 2 pixels; the softmax outputs of
the views (and of every model given) are averaged. Float models (the int8 copy serves only the plain
and mirrored views in the app), so compare rows with each other, not with the int8 numbers.

    python -m scripts.test_time_views --weights weights/fer_net.pt runs/other/best.pt
"""

from __future__ import annotations

import argparse

import torch
from torch.nn import functional as F

from fer import data
from fer.checkpoint import load_model
from fer.model import to_tensor

VIEW_SETS = {
    "face only": ["face"],
    "face + mirror (the app's switch)": ["face", "mirror"],
    "+ zoom 0.92x and 1.08x, each mirrored (6 views)": ["face", "mirror", "zoom0.92", "zoom1.08"],
    "+ shifts of 2 px, each mirrored (10 views)": ["face", "mirror", "shift"],
    "all of them (14 views)": ["face", "mirror", "zoom0.92", "zoom1.08", "shift"],
}


def zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Zoom about the centre, keeping 48x48: crop when enlarging, pad with the edge pixels when shrinking."""
    size = x.shape[-1]
    scaled = round(size * factor)
    z = F.interpolate(x, size=(scaled, scaled), mode="bilinear", align_corners=False, antialias=factor < 1)
    if scaled >= size:
        offset = (scaled - size) // 2
        return z[..., offset : offset + size, offset : offset + size]
    pad = size - scaled
    return F.pad(z, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2), mode="replicate")


def shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    pad = max(abs(dx), abs(dy))
    size = x.shape[-1]
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    return padded[..., pad + dy : pad + dy + size, pad + dx : pad + dx + size]


def views(x: torch.Tensor, name: str) -> list[torch.Tensor]:
    """The batches for one named view group; each non-mirror group also comes mirrored."""
    if name == "face":
        return [x]
    if name == "mirror":
        return [torch.flip(x, dims=[3])]
    if name.startswith("zoom"):
        z = zoom(x, float(name[4:]))
        return [z, torch.flip(z, dims=[3])]
    shifted = [shift(x, dx, dy) for dx, dy in ((2, 0), (-2, 0), (0, 2), (0, -2))]
    return shifted + [torch.flip(s, dims=[3]) for s in shifted]


@torch.inference_mode()
def probabilities(model, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    return torch.cat([model(x[i : i + batch_size]).softmax(1) for i in range(0, len(x), batch_size)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", nargs="+", default=["weights/fer_net.pt"])
    parser.add_argument("--data", help="dataset root (default: FER_DATA_DIR or ../shared/data)")
    parser.add_argument("--split", default="validation")
    args = parser.parse_args()

    faces = data.load_folder(data.find_data_dir(args.data), args.split)
    x = to_tensor(faces.images)
    y = torch.from_numpy(faces.labels)
    groups = sorted({g for names in VIEW_SETS.values() for g in names})
    per_model = []  # per model: view group -> list of (N, 4) probabilities
    for path in args.weights:
        model = load_model(path, verify=False)[0].eval()
        per_model.append({g: [probabilities(model, v) for v in views(x, g)] for g in groups})

    def accuracy(names: list[str], models: list[dict]) -> float:
        stacked = torch.stack([p for m in models for g in names for p in m[g]])
        return (stacked.mean(0).argmax(1) == y).float().mean().item()

    header = " | ".join(["views", *args.weights] + (["ensemble of all"] if len(args.weights) > 1 else []))
    print(f"{args.split}: {len(y)} images, accuracy of the float models\n\n| {header} |")
    print("|---" * (header.count("|") + 1) + "|")
    for label, names in VIEW_SETS.items():
        row = [accuracy(names, [m]) for m in per_model]
        if len(per_model) > 1:
            row.append(accuracy(names, per_model))
        print(f"| {label} | " + " | ".join(f"{a:.4f}" for a in row) + " |")


if __name__ == "__main__":
    main()
