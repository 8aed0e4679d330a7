"""Run many `fer.train` recipes side by side on one GPU and print a table of their validation accuracy.

Used to choose the shipped recipe when a GPU machine is available: every run trains on the GPU with
the same seeded CPU-side augmentation as on the CPU, and each recipe's epochs are sized so the same
command fits the 90-minute budget on the 2-core CPU (`cpu_min` = the estimate from measured img/s).

    FER_DATA_DIR=... python scripts/sweep.py --parallel 16 --deadline 480 --out sweep_out
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# Training images/s of each architecture on the 2-core CPU (bf16, batch 128; measured 2026-11-26).
CPU_IMG_S = {
    "w32 d1121 se8": 272,
    "w48 d1121 se8": 102,
    "w32 d1121": 285,
    "w32 d1111": 340,
    "w48 d1111": 162,
    "w24 d1222": 262,
    "w40 d1121": 148,
    "w32 d1221": 213,
}
ARCH = {
    "w32 d1121 se8": "--widths 32 64 128 256 --depths 1 1 2 1 --se 8",
    # CPU speed not measured: scaled from w40 d1121's by the MACs (416 M vs 288 M); over the budget anyway.
    "w48 d1121 se8": "--widths 48 96 192 384 --depths 1 1 2 1 --se 8",
    "w32 d1121": "--widths 32 64 128 256 --depths 1 1 2 1",
    "w32 d1111": "--widths 32 64 128 256 --depths 1 1 1 1",
    "w48 d1111": "--widths 48 96 192 384 --depths 1 1 1 1",
    "w24 d1222": "--widths 24 48 96 192 --depths 1 2 2 2",
    "w40 d1121": "--widths 40 80 160 320 --depths 1 1 2 1",
    "w32 d1221": "--widths 32 64 128 256 --depths 1 2 2 1",
}
BASE = "--lr 2e-3 --wd 0.05"
SHIPPED = "--mixup 0.2 --crowd-aux 0.5"  # on top of BASE and the gated architecture: the recipe shipped 2026-11-27
# name: (architecture, epochs, extra options); the first ones matter most.
RECIPES = {
    "base90": ("w32 d1121", 90, ""),
    "shipped75": ("w32 d1121", 75, ""),
    "d1111_e110": ("w32 d1111", 110, ""),
    "w48_d1111_e50": ("w48 d1111", 50, ""),
    "w24_d1222_e82": ("w24 d1222", 82, ""),
    "w40_d1121_e46": ("w40 d1121", 46, ""),
    "d1221_e66": ("w32 d1221", 66, ""),
    "base90_lr1e-3": ("w32 d1121", 90, "--lr 1e-3"),
    "base90_lr4e-3": ("w32 d1121", 90, "--lr 4e-3"),
    "base90_wd0.1": ("w32 d1121", 90, "--wd 0.1"),
    "base90_drop0.4": ("w32 d1121", 90, "--dropout 0.4"),
    "base90_mixup0.2": ("w32 d1121", 90, "--mixup 0.2"),
    "base90_strongaug": ("w32 d1121", 90, "--rotate 20 --scale 0.2 --shift 0.12"),
    "base90_erase0.25": ("w32 d1121", 90, "--erase 0.25"),
    "base90_ls0.2": ("w32 d1121", 90, "--label-smoothing 0.2"),
    "base90_seed1": ("w32 d1121", 90, "--seed 1"),
    "base90_noema": ("w32 d1121", 90, "--ema-decay 0"),
    "base90_wd0.02": ("w32 d1121", 90, "--wd 0.02"),
    # 2026-11-26, second GPU session: around the shipped recipe (base + mixup 0.2).
    "shipped_seed1": ("w32 d1121", 90, "--mixup 0.2 --seed 1"),
    "shipped_crowdaux0.25": ("w32 d1121", 90, "--mixup 0.2 --crowd-aux 0.25"),
    "shipped_crowdaux0.5": ("w32 d1121", 90, "--mixup 0.2 --crowd-aux 0.5"),
    "shipped_crowdaux0.5_seed1": ("w32 d1121", 90, "--mixup 0.2 --crowd-aux 0.5 --seed 1"),
    "shipped_crowdaux1": ("w32 d1121", 90, "--mixup 0.2 --crowd-aux 1"),
    "shipped_crowdaux1_seed1": ("w32 d1121", 90, "--mixup 0.2 --crowd-aux 1 --seed 1"),
    "shipped_mixup0.4": ("w32 d1121", 90, "--mixup 0.4"),
    "shipped_lr3e-3": ("w32 d1121", 90, "--mixup 0.2 --lr 3e-3"),
    "shipped_wd0.1": ("w32 d1121", 90, "--mixup 0.2 --wd 0.1"),
    "shipped_strongaug": ("w32 d1121", 90, "--mixup 0.2 --rotate 20 --scale 0.2 --shift 0.12"),
    # Runs with options since removed from fer train (distillation, cutmix, crowd soft labels, dedup, SGD)
    # are listed at commit def136b; their results are in docs/training.md.
    # 2026-11-27, third GPU session: around the gated recipe shipped then (se8 + mixup 0.2 + crowd head 0.5).
    "se8": ("w32 d1121 se8", 90, SHIPPED),
    "se8_seed1": ("w32 d1121 se8", 90, SHIPPED + " --seed 1"),
    "se8_nomixup": ("w32 d1121 se8", 90, "--crowd-aux 0.5"),
    "se8_ls0": ("w32 d1121 se8", 90, SHIPPED + " --label-smoothing 0"),
    # Over the CPU budget, to see how far more compute would go: twice the schedule, a wider network.
    "se8_e180": ("w32 d1121 se8", 180, SHIPPED),
    "se8_w48": ("w48 d1121 se8", 90, SHIPPED),
}


def command(name: str, runs: Path, device: str = "cuda", extra_args: str = "") -> list[str]:
    arch, epochs, extra = RECIPES[name]
    args = f"{BASE} {ARCH[arch]} --epochs {epochs} --eval-from 40 {extra} {extra_args}".split()
    return [
        sys.executable,
        "-m",
        "fer.train",
        "--device",
        device,
        "--threads",
        "1",
        "--quiet",
        "--out",
        str(runs / name),
        *args,
    ]


def read_history(run: Path) -> list[dict]:
    try:  # the run may be rewriting it right now
        return json.loads((run / "history.json").read_text())
    except (OSError, ValueError):
        return []


def epochs_done(run: Path) -> int:
    return len(read_history(run))


def result(name: str, runs: Path, status: str) -> dict:
    arch, epochs, extra = RECIPES[name]
    history = read_history(runs / name)
    accs = [h["val_accuracy"] for h in history]  # None where the epoch was not scored (--eval-from)
    scored = [i for i, a in enumerate(accs) if a is not None]
    best = max(scored, key=accs.__getitem__) if scored else -1
    late = [accs[i] for i in scored if 70 <= i <= 79]
    return {
        "name": name,
        "status": status,
        "arch": arch,
        "epochs": epochs,
        "extra": extra,
        "cpu_min": round(epochs * 15109 / CPU_IMG_S[arch] / 60, 1),
        "epochs_done": len(accs),
        "best_val": accs[best] if scored else None,
        "best_epoch": best,
        "mean_val_70_79": sum(late) / len(late) if late else None,  # less sensitive to one lucky epoch
        "last_val": accs[-1] if accs else None,
        "val_curve": [None if a is None else round(a, 4) for a in accs],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--parallel", type=int, default=16)
    p.add_argument("--deadline", type=float, default=480, help="seconds; runs still going are stopped")
    p.add_argument("--out", default="sweep_out")
    p.add_argument("--only", nargs="*", help="recipe names (default: all)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--extra", default="", help="appended to every run's options, e.g. a tiny dry run on the CPU")
    args = p.parse_args()
    out, runs = Path(args.out), Path("/tmp/sweep_runs")
    out.mkdir(parents=True, exist_ok=True)
    queue = list(args.only or RECIPES)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    running, results, start = {}, [], time.time()
    with open(out / "sweep.log", "w") as log:
        while queue or running:
            while queue and len(running) < args.parallel:
                name = queue.pop(0)
                running[name] = subprocess.Popen(
                    command(name, runs, args.device, args.extra), stdout=log, stderr=subprocess.STDOUT, env=env
                )
            time.sleep(5)
            for name, proc in list(running.items()):
                if proc.poll() is not None:
                    results.append(result(name, runs, "done" if proc.returncode == 0 else f"rc={proc.returncode}"))
                    del running[name]
            if time.time() - start > args.deadline:
                for name, proc in running.items():
                    proc.terminate()
                    proc.wait()
                    results.append(result(name, runs, "stopped at deadline"))
                running, queue = {}, []
            elapsed = time.time() - start
            progress = {n: epochs_done(runs / n) for n in running}
            print(f"{elapsed:5.0f}s done={len(results)} running={progress}", flush=True)
            with open(out / "results.jsonl", "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in results)
    print(
        f"{'recipe':24} {'arch':14} {'ep':>4} {'cpu_min':>7} {'done':>4} {'best':>6} {'@ep':>4} {'70-79':>6} {'last':>6} status"
    )
    for r in sorted(results, key=lambda r: -(r["best_val"] or 0)):
        print(
            f"{r['name']:24} {r['arch']:14} {r['epochs']:4d} {r['cpu_min']:7.1f} {r['epochs_done']:4d} "
            f"{r['best_val'] or 0:6.4f} {r['best_epoch']:4d} {r['mean_val_70_79'] or 0:6.4f} {r['last_val'] or 0:6.4f} "
            f"{r['status']}"
        )


if __name__ == "__main__":
    main()
