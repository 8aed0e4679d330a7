"""Training: `python -m fer train --out DIR` trains the shipped recipe (fer.recipe: its defaults are it).

The whole training split is decoded once into a uint8 tensor; each step augments a batch in one go
(fer.augment), runs the model (in fp32, or under bf16 autocast where the CPU or GPU has it) and updates
an exponential moving average (EMA) of the weights. The four-class head learns a mix of the FERPlus
crowd's vote shares and the folder labels (`--crowd-weight`). Each scored epoch the EMA model is
scored on the validation split against both truths; the best epoch by the crowd's label is kept.
Validation is only ever used to select, never to train.

Every epoch's state (model, EMA, optimiser, schedule, random generators, history) is written whole and
then renamed, so a run killed at any moment continues with `--resume` as if it had never stopped.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from fer import data
from fer.augment import augment, mixup
from fer.checkpoint import load_model, save_weights, sha256_of
from fer.config import CLASSES, PROJECT_ROOT
from fer.errors import FerError
from fer.model import FerNet, count_macs, count_params, to_tensor
from fer.recipe import Recipe, add_recipe_arguments, recipe_from_args, reproduce_command


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train the fer emotion classifier: with no options, the shipped recipe", add_help=add_help
    )
    run = p.add_argument_group("where and how (not part of the recipe)")
    run.add_argument(
        "--data", help="dataset root with train/ and validation/ (default: FER_DATA_DIR or ../shared/data)"
    )
    run.add_argument(
        "--out", default="runs/train", help="output folder: best.pt, last_state.pt, history.json, summary.json"
    )
    run.add_argument("--resume", action="store_true", help="continue from OUT/last_state.pt (the last finished epoch)")
    run.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    run.add_argument("--device", default="cpu", help="cpu, or cuda where there is a GPU")
    run.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="bfloat16 autocast: about twice as fast on CPUs with AVX-512 BF16 and on GPUs, emulated and far "
        "slower elsewhere (a run may change it when resumed)",
    )
    run.add_argument("--train-limit", type=int, default=0, help="use only the first N shuffled train images (tests)")
    run.add_argument("--val-limit", type=int, default=0, help="use only the first N shuffled validation images (tests)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    add_recipe_arguments(p)
    return p


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class EMA:
    """Exponential moving average of the weights; the decay warms up so early epochs are not dominated by the init."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.module = copy.deepcopy(model).eval()
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        floats, others = [], []
        for averaged, current in zip(self.module.state_dict().values(), model.state_dict().values()):
            (floats if averaged.dtype.is_floating_point else others).append((averaged, current))
        # One fused call instead of one small op per tensor (matters on a GPU).
        torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], 1 - decay)
        for averaged, current in others:
            averaged.copy_(current)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = state["updates"]


def soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy against target distributions; `class_weights` (K,) scale each class's term."""
    terms = -targets * F.log_softmax(logits.float(), dim=1)
    if class_weights is not None:
        terms = terms * class_weights
    return terms.sum(dim=1).mean()


def balancing_weights(targets: torch.Tensor, power: float) -> torch.Tensor | None:
    """Per-class loss weights (inverse class share)**power, scaled so the average face weighs 1; None at 0.

    The crowd calls many folder-sad faces neutral, so sad becomes a small class of the crowd's targets:
    weighing it up keeps the network learning what makes a face sad."""
    if power == 0:
        return None
    share = targets.sum(dim=0) / targets.sum()
    weights = torch.where(share > 0, share.clamp(min=1e-12) ** -power, torch.zeros_like(share))
    return weights / (share * weights).sum()


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, images: np.ndarray, batch_size: int = 512, bf16: bool = False
) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        x = to_tensor(images[start : start + batch_size]).to(device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out.append(model(x).float().cpu())
    return torch.cat(out)


@dataclass
class TrainState:
    """What an epoch of training updates (and reads): the model, its optimiser and their helpers."""

    model: FerNet
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # drives the order, the augmentation and mixup partners: seeded, resumable
    ema: EMA | None = None
    crowd_head: torch.nn.Linear | None = None  # auxiliary crowd-vote head (--crowd-aux), not shipped
    class_weights: torch.Tensor | None = None  # the four classes' loss weights (--balance)


def train_one_epoch(
    state: TrainState,
    images: np.ndarray,
    targets: torch.Tensor,
    recipe: Recipe,
    epoch: int,
    quiet: bool = False,
    bf16: bool = False,
) -> dict:
    """One pass over the training images. targets: (N, 4) four-class targets, then (N, 10) vote shares
    when the crowd head is on."""
    model, generator, scheduler = state.model, state.generator, state.scheduler
    model.train()
    for module in model.modules():  # frozen layers (--train-layers) keep their BatchNorm statistics too
        if isinstance(module, torch.nn.BatchNorm2d) and not module.weight.requires_grad:
            module.eval()
    n, n_classes = len(images), len(CLASSES)
    order = torch.randperm(n, generator=generator)
    steps = n // recipe.batch_size  # drop the last partial batch: BatchNorm dislikes tiny batches
    device = next(model.parameters()).device
    total_loss, seen, start = torch.zeros((), device=device), 0, time.perf_counter()
    bar = tqdm(range(steps), desc=f"epoch {epoch}", leave=False, disable=quiet, mininterval=2)
    smoothing = recipe.label_smoothing
    for step in bar:
        idx = order[step * recipe.batch_size : (step + 1) * recipe.batch_size]
        x = augment(to_tensor(images[idx.numpy()]), recipe.augment, generator)
        y = targets[idx]  # a copy (index tensor), so smoothing below leaves `targets` alone
        if smoothing > 0:  # the four-class targets only
            y[:, :n_classes] = y[:, :n_classes] * (1 - smoothing) + smoothing / n_classes
        x, y = mixup(x, y, recipe.mixup, generator)
        # Augmentation runs on the CPU with the seeded generator, so a GPU run sees the same batches.
        x, y = x.to(device).contiguous(memory_format=torch.channels_last), y.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            embedding = model.embed(x)
            logits = model.head(model.dropout(embedding))
            crowd_logits = state.crowd_head(embedding) if state.crowd_head is not None else None
        loss = soft_cross_entropy(logits, y[:, :n_classes], state.class_weights)
        if crowd_logits is not None:  # images without votes have all-zero shares: no loss
            loss = loss + recipe.crowd_aux * soft_cross_entropy(crowd_logits, y[:, n_classes:])
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        scheduler.step()
        if state.ema is not None:
            state.ema.update(model)
        total_loss += loss.detach() * len(idx)
        seen += len(idx)
        if not bar.disable:  # reading the loss waits for the device; only the progress bar needs it
            bar.set_postfix(loss=f"{total_loss.item() / seen:.3f}", lr=f"{scheduler.get_last_lr()[0]:.4f}")
    total_loss = total_loss.item()
    elapsed = time.perf_counter() - start
    return {"train_loss": total_loss / max(seen, 1), "images_per_s": seen / elapsed, "epoch_s": elapsed}


@dataclass
class ValidationSet:
    """The validation faces with both truths: the folder labels and, where the FERPlus crowd has one, its
    label (data.crowd_labels) and its vote shares over the four classes."""

    images: np.ndarray
    labels: np.ndarray
    crowd_labels: np.ndarray | None = None
    crowd_shares: np.ndarray | None = None  # (N, 4); rows without votes for the four are zero


def evaluate(model, val: ValidationSet, bf16: bool = True) -> dict:
    """Folder-label loss and accuracy; with the crowd, accuracy against its label and the mean
    total-variation distance between the probabilities and its vote shares."""
    logits = predict_logits(model, val.images, bf16=bf16)
    y = torch.from_numpy(val.labels)
    pred = logits.argmax(1).numpy()
    stats = {
        "val_loss": F.cross_entropy(logits, y).item(),
        "val_accuracy": float((pred == val.labels).mean()),
    }
    if val.crowd_labels is not None:
        labelled = val.crowd_labels != data.NO_CROWD_LABEL
        has_shares = val.crowd_shares.sum(1) > 0
        probs = torch.softmax(logits, 1).numpy()
        stats["val_crowd_accuracy"] = float((pred[labelled] == val.crowd_labels[labelled]).mean())
        stats["val_crowd_tv"] = float(0.5 * np.abs(probs - val.crowd_shares)[has_shares].sum(1).mean())
    return stats


def lr_lambda(total_steps: int, warmup_steps: int):
    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return schedule


def prepare_data(args, recipe: Recipe) -> tuple[data.FaceSet, torch.Tensor, ValidationSet, dict]:
    """The train faces with their targets ((N, 4) four-class targets, then (N, 10) vote shares when the
    crowd head is on) and the validation set."""
    root = data.find_data_dir(args.data)
    train = data.load_folder(root, "train")
    val = data.load_folder(root, "validation")
    info = {"data_root": str(root)}
    rng = np.random.default_rng(recipe.seed)
    if args.train_limit:
        train = train.subset(np.sort(rng.permutation(len(train))[: args.train_limit]))
    if args.val_limit:
        val = val.subset(np.sort(rng.permutation(len(val))[: args.val_limit]))
    votes_file = data.find_votes_file(root)
    votes = data.load_votes(votes_file) if votes_file else None
    for option, value in (("--crowd-aux", recipe.crowd_aux), ("--crowd-weight", recipe.crowd_weight)):
        if value > 0 and not votes:
            raise data.DataError(f"{option} needs {data.VOTES_FILE} next to the dataset at {root}")
    folder = np.eye(len(CLASSES), dtype=np.float32)[train.labels]
    if recipe.crowd_weight > 0:
        shares, has_votes = data.crowd_distribution(train, votes)
        crowd = np.where(has_votes[:, None], shares, folder)
        folder = recipe.crowd_weight * crowd + (1 - recipe.crowd_weight) * folder
    targets = torch.from_numpy(folder.astype(np.float32))
    if recipe.crowd_aux > 0:
        targets = torch.cat([targets, torch.from_numpy(data.crowd_vote_shares(train, votes))], dim=1)
    validation = ValidationSet(val.images, val.labels)
    if votes:
        validation.crowd_labels = data.crowd_labels(val, votes)[0]
        validation.crowd_shares = data.crowd_distribution(val, votes)[0]
    info.update(n_train=len(train), n_val=len(val), votes_file=str(votes_file) if votes else None)
    return train, targets, validation, info


def set_trainable(model: FerNet, layers: str) -> list[torch.nn.Parameter]:
    """Freeze all but `layers` (TRAINABLE) and return the parameters that still learn."""
    learning = {
        "all": [model],
        "last-stage": [model.stages[-1], model.head],
        "head": [model.head],
    }[layers]
    for param in model.parameters():
        param.requires_grad_(False)
    for module in learning:
        for param in module.parameters():
            param.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def initial_weights(recipe: Recipe) -> tuple[Path | None, FerNet]:
    """The network training starts from: the recipe's --init weights (checked to be its network), or a
    random one seeded by the recipe."""
    torch.manual_seed(recipe.seed)
    model = FerNet(recipe.model)
    if recipe.init is None:
        return None, model
    path = Path(recipe.init)
    path = path if path.is_absolute() or path.exists() else PROJECT_ROOT / path
    initial, _ = load_model(path, verify=False)
    if initial.config != recipe.model:
        raise FerError(f"--init {recipe.init} is a {initial.config}, not the recipe's {recipe.model}")
    model.load_state_dict(initial.state_dict())
    return path, model


def build_state(recipe: Recipe, model: FerNet, n_train: int, device: torch.device) -> TrainState:
    """The optimiser, schedule, EMA, crowd head and generator of a fresh run."""
    crowd_head = None
    if recipe.crowd_aux > 0:
        crowd_head = torch.nn.Linear(recipe.model.widths[-1], len(data.ALL_VOTE_COLUMNS)).to(device)
    trained_params = set_trainable(model, recipe.train_layers)
    trained_params += list(crowd_head.parameters()) if crowd_head is not None else []
    decay, no_decay = [], []
    for param in trained_params:
        (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": recipe.wd}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=recipe.lr)
    steps_per_epoch = n_train // recipe.batch_size
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(recipe.epochs * steps_per_epoch, int(recipe.warmup_epochs * steps_per_epoch))
    )
    ema = EMA(model, recipe.ema_decay) if recipe.ema_decay > 0 else None
    generator = torch.Generator().manual_seed(recipe.seed)
    return TrainState(model, optimizer, scheduler, generator, ema, crowd_head)


def save_state(path: Path, state: TrainState, recipe: Recipe, progress: dict) -> None:
    """Everything a resumed run needs, written whole and then renamed: a run killed at any moment
    leaves the last finished epoch intact."""
    payload = {
        "recipe": json.dumps(recipe.to_dict()),
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "ema": state.ema.state_dict() if state.ema is not None else {},
        "crowd_head": state.crowd_head.state_dict() if state.crowd_head is not None else {},
        "generator": state.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": json.dumps(progress["history"]),
        "best": json.dumps(progress["best"]),
        "epoch": progress["epoch"],
        "train_time": progress["train_time"],
        "wall_time": progress["wall_time"],
    }
    atomic_save(payload, path)


def load_state(path: Path, state: TrainState, recipe: Recipe) -> dict:
    """Restore a saved run into `state`; returns its progress (history, best, epoch, times)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if "recipe" in saved and Recipe.from_dict(json.loads(saved["recipe"])) != recipe:
        raise FerError(f"{path} was saved by a run with another recipe: resume it with the same options.")
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    if state.ema is not None:
        state.ema.load_state_dict(saved["ema"])
    if state.crowd_head is not None:
        state.crowd_head.load_state_dict(saved["crowd_head"])
    state.generator.set_state(saved["generator"])
    torch.set_rng_state(saved["torch_rng"])
    return {
        "history": json.loads(saved["history"]),
        "best": json.loads(saved["best"]),
        "epoch": saved["epoch"],
        "train_time": saved["train_time"],
        "wall_time": saved.get("wall_time", 0.0),
    }


def main(args) -> dict:
    """Train the recipe the parsed options describe; returns (and writes) the run's summary."""
    recipe = recipe_from_args(args)
    np.random.seed(recipe.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, targets, val, info = prepare_data(args, recipe)
    print(f"train: {len(train)} images {train.class_counts} | validation: {len(val.labels)} images")

    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    init_path, model = initial_weights(recipe)
    model = model.to(device, memory_format=torch.channels_last)
    print(f"model: {count_params(model) / 1e6:.2f} M params, {count_macs(model) / 1e6:.0f} M MACs per face")
    state = build_state(recipe, model, len(train), device)
    state.class_weights = balancing_weights(targets[:, : len(CLASSES)], recipe.balance)
    if state.class_weights is not None:
        print("class weights: " + ", ".join(f"{c} {w:.2f}" for c, w in zip(CLASSES, state.class_weights.tolist())))
        state.class_weights = state.class_weights.to(device)

    # The best epoch is the one the crowd labels best where there are votes, else the folder labels.
    selected = "val_crowd_accuracy" if val.crowd_labels is not None else "val_accuracy"
    progress = {"history": [], "best": {selected: -1.0, "epoch": -1}, "epoch": -1, "train_time": 0.0, "wall_time": 0.0}
    state_path = out / "last_state.pt"
    if args.resume and state_path.is_file():
        progress = load_state(state_path, state, recipe)
        print(f"resumed from {state_path} at epoch {progress['epoch'] + 1}")
    elif args.resume:
        print(f"no saved state in {out}: starting afresh")
    wall_start, wall_before = time.perf_counter(), progress["wall_time"]
    history, best = progress["history"], progress["best"]

    scored = state.ema.module if state.ema is not None else model
    for epoch in range(progress["epoch"] + 1, recipe.epochs):
        stats = train_one_epoch(state, train.images, targets, recipe, epoch, args.quiet, args.bf16)
        progress["train_time"] += stats["epoch_s"]
        scored_now = epoch >= recipe.eval_from or epoch == recipe.epochs - 1
        if scored_now:
            stats.update(evaluate(scored, val, bf16=args.bf16))
        else:  # None, not a number: the curves show a gap there
            stats.update({key: None for key in ("val_loss", "val_accuracy", "val_crowd_accuracy", "val_crowd_tv")})
        stats.update(epoch=epoch, lr=state.scheduler.get_last_lr()[0], elapsed_s=round(progress["train_time"], 1))
        stats["precision"] = "bf16" if args.bf16 else "fp32"
        history.append(stats)
        is_best = scored_now and stats[selected] > best[selected]
        if is_best:
            best.update({selected: stats[selected], "epoch": epoch})
            save_weights(out / "best.pt", scored, extra={"epoch": epoch})
        print(epoch_line(stats, is_best, progress["train_time"]), flush=True)
        progress.update(epoch=epoch, wall_time=wall_before + time.perf_counter() - wall_start)
        save_state(state_path, state, recipe, progress)
        atomic_write_text(out / "history.json", json.dumps(history, indent=1))

    best_stats = history[best["epoch"]] if best["epoch"] >= 0 else {}
    summary = {
        "command": shlex.join(["python", "-m", "fer", "train", *getattr(args, "argv", sys.argv[1:])]),
        "reproduce": reproduce_command(recipe),
        "recipe": recipe.to_dict(),
        "init_sha256": sha256_of(init_path) if init_path else None,
        "data": info,
        "model": {"config": recipe.model.to_dict(), "params": count_params(model), "macs": count_macs(model)},
        "best_epoch": best["epoch"],
        "selected_by": selected,
        "best_val_accuracy": best_stats.get("val_accuracy"),
        "best_val_crowd_accuracy": best_stats.get("val_crowd_accuracy"),
        "train_time_s": round(progress["train_time"], 1),
        "wall_time_s": round(progress["wall_time"], 1),  # data loading excluded (seconds)
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "precision": sorted({h.get("precision", "fp32") for h in history}),
        "torch": torch.__version__,
        "history": history,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    print(f"best {selected} {best[selected]:.4f} at epoch {best['epoch']}; weights in {out / 'best.pt'}")
    return summary


def epoch_line(stats: dict, is_best: bool, train_time: float) -> str:
    scores = "not scored"
    if stats["val_loss"] is not None:
        scores = f"val loss {stats['val_loss']:.4f} acc {stats['val_accuracy']:.4f}"
        if stats.get("val_crowd_accuracy") is not None:
            scores += f" crowd acc {stats['val_crowd_accuracy']:.4f} tv {stats['val_crowd_tv']:.4f}"
    return (
        f"epoch {stats['epoch']:3d} | loss {stats['train_loss']:.4f} | {scores}{' *' if is_best else ''} "
        f"| {stats['images_per_s']:.0f} img/s | {train_time / 60:.1f} min"
    )


if __name__ == "__main__":
    main(get_args_parser().parse_args())
