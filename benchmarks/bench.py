"""Speed and memory of the shipped model on this machine; prints a Markdown table for the README.

    python -m benchmarks.bench [--weights PATH] [--repeats 200]

Measures: single-face classification latency (model only, median and p95; 1 thread and torch's
default threads), batch throughput (faces/s), the whole-photo pipeline (decode + detect + classify) on a
~1-megapixel photo, training throughput (images/s, bf16 autocast and fp32) and peak resident memory.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import resource
import statistics
import time
from datetime import date

import numpy as np
import torch
from PIL import Image

from fer import Predictor, load_classifier
from fer.augment import AugmentConfig, augment
from fer.model import FerNet, count_macs, count_params
from fer.train import soft_cross_entropy


def timings(fn, repeats: int, warmup: int = 10) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:.2f} ms (p95 {np.percentile(values, 95) * 1e3:.2f})"


def train_speed(config, bf16: bool, steps: int = 8, batch: int = 128) -> float:
    model = FerNet(config).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.rand(batch, 1, 48, 48)
    y = torch.eye(4)[torch.randint(0, 4, (batch,))]
    generator = torch.Generator().manual_seed(0)

    def step():
        inputs = augment(x, AugmentConfig(), generator).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = soft_cross_entropy(model(inputs), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return batch / statistics.median(timings(step, steps, warmup=2))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    classifier = load_classifier(args.weights)  # as served: flip TTA where the weights were shipped with it
    one_view, with_mirror = classifier.with_tta(False), classifier.with_tta(True)
    predictor = Predictor(classifier)
    face = (np.random.default_rng(0).random((1, 48, 48)) * 255).astype(np.uint8)
    batch = (np.random.default_rng(1).random((512, 48, 48)) * 255).astype(np.uint8)

    rows = []
    for threads in sorted({1, default_threads}):  # once where only one thread is available
        torch.set_num_threads(threads)
        thread_label = f"{threads} thread" + ("s" if threads > 1 else "")
        for label, model in (("single face", one_view), ("single face with flip TTA", with_mirror)):
            rows.append(
                (
                    f"{label}, {thread_label}",
                    ms(timings(lambda m=model: m.predict_proba(face), args.repeats, warmup=100)),
                )
            )
        for label, model in (("batch of 512", one_view), ("batch of 512 with flip TTA", with_mirror)):
            per_batch = statistics.median(timings(lambda m=model: m.predict_proba(batch), 5, 2))
            rows.append((f"{label}, {thread_label}", f"{512 / per_batch:.0f} faces/s"))
    torch.set_num_threads(default_threads)

    from skimage.data import astronaut, coffee  # public-domain / CC0 photos bundled with scikit-image

    photo = Image.fromarray(astronaut()).resize((1152, 1152))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=90)
    jpeg = buffer.getvalue()
    result = predictor.predict(jpeg, name="astronaut.jpg")
    pipeline = timings(lambda: predictor.predict(jpeg, name="astronaut.jpg"), 20, 3)
    served = "with flip TTA" if classifier.tta else "one view"
    rows.append(
        (
            f"photo 1152x1152 (1.3 MP) JPEG: decode + detect + classify ({len(result.faces)} face, {served})",
            ms(pipeline),
        )
    )
    # The product's photo: about 1 MP with three faces (the astronaut's head three times on a kitchen photo).
    group = Image.fromarray(coffee()).resize((1200, 840))
    head = Image.fromarray(astronaut()).crop((150, 20, 330, 230))
    for x in (100, 500, 900):
        group.paste(head, (x, 300))
    buffer = io.BytesIO()
    group.save(buffer, "JPEG", quality=90)
    group_jpeg = buffer.getvalue()
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    found = len(predictor.predict(group_jpeg, name="group.jpg").faces)
    pipeline = timings(lambda: predictor.predict(group_jpeg, name="group.jpg"), 30, 3)
    torch.set_num_threads(default_threads)
    cv2.setNumThreads(default_threads)
    rows.append(
        (f"photo 1200x840 (1 MP) JPEG: decode + detect + classify ({found} faces, {served}), 1 thread", ms(pipeline))
    )

    config = classifier.model.config
    rows.append(
        (f"training, bf16 autocast, batch 128, {default_threads} threads", f"{train_speed(config, True):.0f} images/s")
    )
    rows.append((f"training, fp32, batch 128, {default_threads} threads", f"{train_speed(config, False):.0f} images/s"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(("peak resident memory of this benchmark process", f"{peak:.0f} MiB"))

    model = classifier.model
    print(
        f"Measured {date.today()} on {platform.processor() or platform.machine()} ({os.cpu_count()} cores), torch {torch.__version__}"
    )
    print(f"Model: {count_params(model) / 1e6:.2f} M params, {count_macs(model) / 1e6:.0f} M MACs per face\n")
    print("| measurement | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
