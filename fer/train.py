"""Training: `python -m fer train --out DIR` trains the shipped recipe: the argument defaults are the recipe.

The whole training split is decoded once into a uint8 tensor; each step augments a batch in one go
(fer.augment), runs the model under bf16 autocast (fast on CPUs with AVX-512 BF16; emulated and far
slower without it, where `--no-bf16` trains in fp32: docs/training.md) and
updates an exponential moving average (EMA) of the weights. Each epoch the EMA model is scored on the
validation split; the best epoch is kept. Validation is only ever used to select, never to train.
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
from fer.augment import AugmentConfig, augment, mixup
from fer.checkpoint import load_model, save_weights
from fer.config import CLASSES
from fer.model import FerNet, ModelConfig, count_macs, count_params, to_tensor

TRAINABLE = ("all", "last-stage", "head")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train the fer emotion classifier", add_help=add_help)
    p.add_argument("--data", help="dataset root with train/ and validation/ (default: FER_DATA_DIR or ../shared/data)")
    p.add_argument("--out", default="runs/train", help="output folder: best.pt, last_state.pt, history.json")
    p.add_argument("--epochs", type=int, default=90)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of AdamW")
    p.add_argument("--wd", type=float, default=0.05, help="AdamW's weight decay (not on biases and norms)")
    p.add_argument("--warmup-epochs", type=float, default=2.0)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument(
        "--crowd-aux",
        type=float,
        default=0.5,
        help="weight of an auxiliary head that learns the FERPlus vote shares of all ten columns (0 = off); "
        "the four-class head still learns the folder labels, and the auxiliary head is not shipped",
    )
    p.add_argument(
        "--crowd-weight",
        type=float,
        default=0.0,
        help="the four-class head's target: this share of the FERPlus crowd's vote shares over the four classes, "
        "the rest the folder label (a face without votes for the four: the folder label alone)",
    )
    p.add_argument("--init", help="start from these weights (a fine-tuning stage) instead of a random network")
    p.add_argument(
        "--train-layers",
        choices=TRAINABLE,
        default="all",
        help="which layers learn: all, the last stage and the head, or the head alone (the rest frozen)",
    )
    p.add_argument("--mixup", type=float, default=0.2, help="mixup alpha (0 = off)")
    p.add_argument("--ema-decay", type=float, default=0.999, help="per-step EMA decay (0 = no EMA)")
    p.add_argument("--widths", type=int, nargs="+", default=list(ModelConfig.widths))
    p.add_argument("--depths", type=int, nargs="+", default=[1, 1, 2, 1])
    p.add_argument("--dropout", type=float, default=ModelConfig.dropout)
    p.add_argument("--se", type=int, default=8, help="squeeze-and-excitation reduction (0 = no gates)")
    p.add_argument("--erase", type=float, default=AugmentConfig.erase, help="random-erasing probability")
    p.add_argument("--rotate", type=float, default=AugmentConfig.rotate_deg, help="max rotation in degrees")
    p.add_argument("--shift", type=float, default=AugmentConfig.shift, help="max shift, fraction of the size")
    p.add_argument("--scale", type=float, default=AugmentConfig.scale, help="max zoom change, e.g. 0.12 = +-12%%")
    p.add_argument(
        "--degrade",
        type=float,
        default=AugmentConfig.degrade,
        help="probability of each photo degradation (small face, blur, noise, gamma, JPEG; 0 = off)",
    )
    p.add_argument("--no-bf16", action="store_true", help="train in fp32 (slower)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--device", default="cpu", help="cpu (the shipped recipe) or cuda (for sweeps)")
    p.add_argument("--train-limit", type=int, default=0, help="use only the first N shuffled train images (tests)")
    p.add_argument("--val-limit", type=int, default=0, help="use only the first N shuffled validation images")
    p.add_argument(
        "--eval-from",
        type=int,
        default=60,
        help="score validation only from this epoch on (and at the last epoch); earlier ones cannot be the best "
        "anyway, and each check scores the whole validation split",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last_state.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


# Options the recipe used to have, with the value that meant "off": a run that used any other value cannot
# be trained again with today's options (docs/training.md lists them, with their results).
REMOVED_OPTIONS = {
    "opt": "adamw",
    "drop_junk": False,
    "dedup": False,
    "cutmix": 0.0,
    "teacher": None,
}
NOT_RECIPE = ("data", "out", "resume", "quiet", "threads", "device", "command")  # where and how, not what


def reproduce_command(recipe: dict, out: str = "runs/final") -> str | None:
    """The shortest `python -m fer train` command that trains `recipe` (a run's summary "recipe") with
    today's options: only the options that differ from the defaults. None when the run used an option
    that has since been removed."""
    if any(recipe.get(key, off) != off for key, off in REMOVED_OPTIONS.items()):
        return None
    parser = get_args_parser()
    words = ["python", "-m", "fer", "train", "--out", out]
    for action in parser._actions:  # argparse keeps its options in _actions; there is no public list
        key = action.dest
        if key in NOT_RECIPE or key not in recipe or not action.option_strings or recipe[key] == action.default:
            continue
        value = recipe[key]
        if isinstance(action, argparse._StoreTrueAction):
            words.append(action.option_strings[0])
        else:
            values = value if isinstance(value, list) else [value]
            words += [action.option_strings[0], *(str(v) for v in values)]
    return shlex.join(words)


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


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


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


def train_one_epoch(state: TrainState, images: np.ndarray, targets: torch.Tensor, args, epoch: int) -> dict:
    """One pass over the training images. targets: (N, 4) folder-label targets, then (N, 10) vote shares
    when the crowd head is on."""
    model, generator, scheduler = state.model, state.generator, state.scheduler
    model.train()
    for module in model.modules():  # frozen layers (--train-layers) keep their BatchNorm statistics too
        if isinstance(module, torch.nn.BatchNorm2d) and not module.weight.requires_grad:
            module.eval()
    n, n_classes = len(images), len(CLASSES)
    order = torch.randperm(n, generator=generator)
    steps = n // args.batch_size  # drop the last partial batch: BatchNorm dislikes tiny batches
    aug = AugmentConfig(
        erase=args.erase, rotate_deg=args.rotate, shift=args.shift, scale=args.scale, degrade=args.degrade
    )
    device = next(model.parameters()).device
    total_loss, seen, start = torch.zeros((), device=device), 0, time.perf_counter()
    bar = tqdm(range(steps), desc=f"epoch {epoch}", leave=False, disable=args.quiet, mininterval=2)
    for step in bar:
        idx = order[step * args.batch_size : (step + 1) * args.batch_size]
        x = augment(to_tensor(images[idx.numpy()]), aug, generator)
        y = targets[idx]  # a copy (index tensor), so smoothing below leaves `targets` alone
        if args.label_smoothing > 0:  # the folder labels only; vote shares are soft already
            y[:, :n_classes] = y[:, :n_classes] * (1 - args.label_smoothing) + args.label_smoothing / n_classes
        x, y = mixup(x, y, args.mixup, generator)
        # Augmentation runs on the CPU with the seeded generator, so a GPU run sees the same batches.
        x, y = x.to(device).contiguous(memory_format=torch.channels_last), y.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=not args.no_bf16):
            embedding = model.embed(x)
            logits = model.head(model.dropout(embedding))
            crowd_logits = state.crowd_head(embedding) if state.crowd_head is not None else None
        loss = soft_cross_entropy(logits, y[:, :n_classes])
        if crowd_logits is not None:  # images without votes have all-zero shares: no loss
            loss = loss + args.crowd_aux * soft_cross_entropy(crowd_logits, y[:, n_classes:])
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


def prepare_data(args) -> tuple[data.FaceSet, torch.Tensor, ValidationSet, dict]:
    """The train faces with their targets ((N, 4) four-class targets, then (N, 10) vote shares when the
    crowd head is on) and the validation set."""
    root = data.find_data_dir(args.data)
    train = data.load_folder(root, "train")
    val = data.load_folder(root, "validation")
    info = {"data_root": str(root)}
    rng = np.random.default_rng(args.seed)
    if args.train_limit:
        train = train.subset(np.sort(rng.permutation(len(train))[: args.train_limit]))
    if args.val_limit:
        val = val.subset(np.sort(rng.permutation(len(val))[: args.val_limit]))
    votes_file = data.find_votes_file(root)
    votes = data.load_votes(votes_file) if votes_file else None
    for option, value in (("--crowd-aux", args.crowd_aux), ("--crowd-weight", args.crowd_weight)):
        if value > 0 and not votes:
            raise data.DataError(f"{option} needs {data.VOTES_FILE} next to the dataset at {root}")
    folder = np.eye(len(CLASSES), dtype=np.float32)[train.labels]
    if args.crowd_weight > 0:
        shares, has_votes = data.crowd_distribution(train, votes)
        crowd = np.where(has_votes[:, None], shares, folder)
        folder = args.crowd_weight * crowd + (1 - args.crowd_weight) * folder
    targets = torch.from_numpy(folder.astype(np.float32))
    if args.crowd_aux > 0:
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


def main(args) -> dict:
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, targets, val, info = prepare_data(args)
    print(f"train: {len(train)} images {train.class_counts} | validation: {len(val.labels)} images")

    config = ModelConfig(
        widths=tuple(args.widths), depths=tuple(args.depths), dropout=args.dropout, se_reduction=args.se
    )
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    model = FerNet(config)
    if args.init:
        initial, _ = load_model(args.init, verify=False)
        if initial.config != config:
            raise data.DataError(f"--init {args.init} is a {initial.config}, not the recipe's {config}")
        model.load_state_dict(initial.state_dict())
    model = model.to(device, memory_format=torch.channels_last)
    print(f"model: {count_params(model) / 1e6:.2f} M params, {count_macs(model) / 1e6:.0f} M MACs per face")
    crowd_head = None
    if args.crowd_aux > 0:
        crowd_head = torch.nn.Linear(config.widths[-1], len(data.ALL_VOTE_COLUMNS)).to(device)
    trained_params = set_trainable(model, args.train_layers)
    trained_params += list(crowd_head.parameters()) if crowd_head is not None else []
    decay, no_decay = [], []
    for param in trained_params:
        (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=args.lr)
    steps_per_epoch = len(train) // args.batch_size
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(args.epochs * steps_per_epoch, int(args.warmup_epochs * steps_per_epoch))
    )
    ema = EMA(model, args.ema_decay) if args.ema_decay > 0 else None
    generator = torch.Generator().manual_seed(args.seed)
    train_state = TrainState(model, optimizer, scheduler, generator, ema, crowd_head)

    # The best epoch is the one the crowd labels best where there are votes, else the folder labels.
    selected = "val_crowd_accuracy" if val.crowd_labels is not None else "val_accuracy"
    history, best, start_epoch, train_time = [], {selected: -1.0, "epoch": -1}, 0, 0.0
    wall_start, wall_before = time.perf_counter(), 0.0

    def wall_time() -> float:
        """Seconds of this run so far, resumed parts included: training, validation and checkpoints."""
        return wall_before + time.perf_counter() - wall_start

    state_path = out / "last_state.pt"
    if args.resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        if crowd_head is not None:
            crowd_head.load_state_dict(state["crowd_head"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, best, start_epoch = json.loads(state["history"]), json.loads(state["best"]), state["epoch"] + 1
        train_time, wall_before = state["train_time"], state.get("wall_time", 0.0)
        print(f"resumed from {state_path} at epoch {start_epoch}")

    scored = ema.module if ema is not None else model
    for epoch in range(start_epoch, args.epochs):
        stats = train_one_epoch(train_state, train.images, targets, args, epoch)
        train_time += stats["epoch_s"]
        scored_now = epoch >= args.eval_from or epoch == args.epochs - 1
        if scored_now:
            stats.update(evaluate(scored, val, bf16=not args.no_bf16))
        else:  # None, not a number: the curves show a gap there
            stats.update({key: None for key in ("val_loss", "val_accuracy", "val_crowd_accuracy", "val_crowd_tv")})
        stats.update(epoch=epoch, lr=scheduler.get_last_lr()[0], elapsed_s=round(train_time, 1))
        history.append(stats)
        is_best = scored_now and stats[selected] > best[selected]
        if is_best:
            best = {selected: stats[selected], "epoch": epoch}
            save_weights(out / "best.pt", scored, extra={"epoch": epoch})
        scores = "not scored"
        if scored_now:
            scores = f"val loss {stats['val_loss']:.4f} acc {stats['val_accuracy']:.4f}"
            if "val_crowd_accuracy" in stats:
                scores += f" crowd acc {stats['val_crowd_accuracy']:.4f} tv {stats['val_crowd_tv']:.4f}"
        print(
            f"epoch {epoch:3d} | loss {stats['train_loss']:.4f} | {scores}{' *' if is_best else ''} "
            f"| {stats['images_per_s']:.0f} img/s | {train_time / 60:.1f} min",
            flush=True,
        )
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "ema": ema.state_dict() if ema is not None else {},
            "crowd_head": crowd_head.state_dict() if crowd_head is not None else {},
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": json.dumps(history),
            "best": json.dumps(best),
            "epoch": epoch,
            "train_time": train_time,
            "wall_time": wall_time(),
        }
        # Written whole, then renamed: a run killed at any moment leaves the last finished epoch intact.
        atomic_save(state, state_path)
        atomic_write_text(out / "history.json", json.dumps(history, indent=1))

    argv = sys.argv[1:]
    argv = argv[1:] if argv[:1] == ["train"] else argv
    summary = {
        "command": "python -m fer train " + shlex.join(argv),
        # Only the training options: the CLI adds its own entries (its handler function) to `args`.
        "recipe": {k: v for k, v in vars(args).items() if k not in ("resume", "quiet") and not callable(v)},
        "data": info,
        "model": {"config": config.to_dict(), "params": count_params(model), "macs": count_macs(model)},
        "best_epoch": best["epoch"],
        "selected_by": selected,
        "best_val_accuracy": history[best["epoch"]]["val_accuracy"] if best["epoch"] >= 0 else None,
        "best_val_crowd_accuracy": history[best["epoch"]].get("val_crowd_accuracy") if best["epoch"] >= 0 else None,
        "train_time_s": round(train_time, 1),
        "wall_time_s": round(wall_time(), 1),  # data loading excluded (seconds)
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "history": history,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    print(f"best {selected} {best[selected]:.4f} at epoch {best['epoch']}; weights in {out / 'best.pt'}")
    return summary


if __name__ == "__main__":
    main(get_args_parser().parse_args())
