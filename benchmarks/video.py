"""Video analysis on this machine: speed, memory over a long clip, and labels on a clip of dataset faces.

    python -m benchmarks.video [--trials 10] [--minutes 10] [--threads 2]

Prints a Markdown table of medians:
- decoding 60 s of 640x480 H.264 sampled at 5 frames/s, PyAV vs OpenCV (CPU seconds): why fer.video uses PyAV;
- sampled frames processed per second (decode + detect + align + classify + track) on 640x480 clips of
  1, 2 and 3 dataset faces, at `--threads` torch/OpenCV threads, with the served flip TTA and without,
  and the CPU time per frame (1000 / CPU ms is the rate one idle core would give);
- the live view's delay per processed 640x480 frame (fer.video.LiveAnalyser) and the frame rate it allows;
- resident memory over a `--minutes` 640x480 clip (5 frames/s analysed): growth after the first minute;
- per segment of a happy / surprise / neutral clip built from validation faces (chosen by the detector
  alone, not by the model), the share of sampled frames labelled right.
Clips are made here (PyAV) and deleted; dataset faces come from FER_DATA_DIR or ../shared/data.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import make_clip  # noqa: E402  (the tests' clip maker: one way to build clips)

from fer import data, video  # noqa: E402
from fer.config import CLASSES  # noqa: E402
from fer.predict import Predictor, load_classifier  # noqa: E402

SIZE = (640, 480)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def background(size=SIZE) -> np.ndarray:
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    return np.repeat((90 + 60 * xx / width + 30 * yy / height).astype(np.uint8)[..., None], 3, axis=2)


def paste(frame: np.ndarray, face: np.ndarray, x: int, y: int, side: int) -> None:
    import cv2

    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    frame[y : y + side, x : x + side] = big[..., None]


def moving_faces(faces: list[np.ndarray], seconds: float, fps: int = 25, side: int = 130):
    """Frames of `faces` side by side, each drifting a little (so tracking has work to do)."""
    base = background()
    gap = (SIZE[0] - len(faces) * side) // (len(faces) + 1)
    for i in range(int(seconds * fps)):
        frame = base.copy()
        for k, face in enumerate(faces):
            x = gap + k * (side + gap) + int(10 * np.sin(i / 20 + k))
            y = 150 + int(20 * np.cos(i / 15 + k))
            paste(frame, face, x, y, side)
        yield frame


def detectable(validation, predictor, label: str, count: int, truth=None) -> list[np.ndarray]:
    """Validation faces of `label` the detector finds alone on a 640x480 frame (the model is not asked).
    `truth`: per face the label to match instead of the folder's (e.g. -1 where the two truths differ)."""
    truth = validation.labels if truth is None else truth
    chosen = []
    for i in np.flatnonzero(truth == CLASSES.index(label)):
        frame = background()
        paste(frame, validation.images[i], 250, 150, 150)
        if len(predictor.detector.detect(frame)) == 1:
            chosen.append(validation.images[i])
            if len(chosen) == count:
                break
    return chosen


def decode_speed(path: str, repeats: int = 3) -> dict[str, float]:
    """CPU seconds to decode 60 s and convert the 5-per-second sampled frames to RGB arrays."""
    import cv2

    def pyav():
        with video.Video(path) as clip:
            for _ in clip.frames(5):
                pass

    def opencv():
        capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        rate = capture.get(cv2.CAP_PROP_FPS)
        i = 0
        while capture.grab():
            if i % round(rate / 5) == 0:
                capture.retrieve()
            i += 1
        capture.release()

    out = {}
    for name, fn in (("PyAV", pyav), ("OpenCV", opencv)):
        samples = []
        for _ in range(repeats):
            start = cpu_seconds()
            fn()
            samples.append(cpu_seconds() - start)
        out[name] = statistics.median(samples)
    return out


def throughput(
    predictor,
    clip: bytes,
    repeats: int,
    batch_frames: int = video.BATCH_FRAMES,
    detect_side: int | None = video.DETECT_SIDE,
) -> tuple[float, float]:
    """(sampled frames per second, CPU ms per sampled frame), medians over `repeats` runs."""
    rates, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        report = video.process_video(clip, predictor, fps=5, batch_frames=batch_frames, detect_side=detect_side)
        wall, used = time.perf_counter() - start, cpu_seconds() - start_cpu
        assert report.error is None, report.error
        rates.append(len(report.frames) / wall)
        cpu.append(1000 * used / len(report.frames))
    return statistics.median(rates), statistics.median(cpu)


def live_delay(predictor, frames: list[np.ndarray]) -> float:
    analyser = video.LiveAnalyser(predictor)
    for i, frame in enumerate(frames[:5]):
        analyser.process(frame, i / 25)
    delays = []
    for i, frame in enumerate(frames[5:]):
        start = time.perf_counter()
        analyser.process(frame, (i + 5) / 25)
        delays.append(time.perf_counter() - start)
    return statistics.median(delays) * 1000


def memory_over(predictor, faces: list[np.ndarray], minutes: float) -> tuple[float, float, float, int]:
    """(MB resident after the first minute, growth from then to the end, peak growth, frames analysed)."""
    handle, path = tempfile.mkstemp(suffix=".mp4")
    os.close(handle)
    try:
        with open(path, "wb") as out:  # encoded as a stream: the clip is never all in memory
            out.write(make_clip(moving_faces(faces, minutes * 60, fps=10), fps=10))
        marks = {"first": None, "peak": 0.0}

        def progress(done: float, total: float | None) -> None:
            now = rss_mb()
            marks["peak"] = max(marks["peak"], now)
            if marks["first"] is None and done >= min(60.0, minutes * 30):
                marks["first"] = now

        before = rss_mb()
        report = video.process_video(path, predictor, fps=5, progress=progress, annotated=io.BytesIO())
        assert report.error is None, report.error
        end = rss_mb()
        return marks["first"], end - marks["first"], marks["peak"] - before, len(report.frames)
    finally:
        os.unlink(path)


def segment_accuracy(validation, predictor, trials: int) -> tuple[list[float], dict[str, float], list[float]]:
    """Per trial (a clip of a new happy, surprise and neutral face, 4 s each): the share of sampled frames
    labelled right, per segment, and per class over all trials; and per segment the share of sampled
    frames whose label is the photo pipeline's on the same frame as a still PNG (the video path's own
    agreement, apart from the model's accuracy). The faces are those whose two truths agree: the FERPlus
    crowd's label is the folder's, so "right" is not a matter of which truth."""
    from PIL import Image

    from fer.images import LoadedImage

    crowd, _ = data.crowd_labels(validation, data.load_votes(data.find_votes_file(data.find_data_dir())))
    agreed = np.where(crowd == validation.labels, validation.labels, -1)
    pools = {name: detectable(validation, predictor, name, trials, agreed) for name in ("happy", "surprise", "neutral")}
    per_segment, per_class, agreement = [], {name: [] for name in pools}, []
    for trial in range(trials):

        def frame_at(k: int, i: int, trial=trial) -> np.ndarray:
            frame = background()
            paste(frame, pools[list(pools)[k]][trial], 220 + (k * 40 + i) // 2, 140, 170)
            return frame

        frames = (frame_at(k, i) for k in range(3) for i in range(40))  # 4 s a segment at 10 frames/s
        report = video.process_video(make_clip(frames, fps=10), predictor, fps=5)
        for k, name in enumerate(pools):
            sampled = [f for f in report.frames if 4 * k <= f.time < 4 * (k + 1)]
            right = sum(1 for f in sampled if f.faces and f.faces[0].label == name)  # no face counts as wrong
            share = right / max(len(sampled), 1)
            per_segment.append(share)
            per_class[name].append(share)
            still = predictor.predict_loaded(LoadedImage(Image.fromarray(frame_at(k, 0)), "PNG"), "still").faces
            if still:
                same = sum(1 for f in sampled if f.faces and f.faces[0].label == still[0].label)
                agreement.append(same / max(len(sampled), 1))
    return per_segment, {name: float(np.mean(v)) for name, v in per_class.items()}, agreement


def label_rows(validation, served, trials: int) -> list[tuple[str, str]]:
    per_segment, per_class, agreement = segment_accuracy(validation, served, trials)
    return [
        (
            f"label right per segment, {trials} clips x 3 segments of new validation faces, crowd = folder label "
            "(median; mean)",
            f"{np.median(per_segment):.0%}; {np.mean(per_segment):.0%} "
            f"({', '.join(f'{k} {v:.0%}' for k, v in per_class.items())})",
        ),
        (
            f"same label as the photo pipeline on the still frame, per segment ({len(agreement)} segments; median; mean)",
            f"{np.median(agreement):.0%}; {np.mean(agreement):.0%}",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=10, help="clips of different faces for the label accuracy")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the memory clip")
    parser.add_argument("--labels-only", action="store_true", help="only the label rows (no speed, no memory)")
    args = parser.parse_args()
    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    validation = data.load_folder(data.find_data_dir(), "validation")
    classifier = load_classifier()
    served = Predictor(classifier)
    one_view = Predictor(classifier.with_tta(False), served.detector)
    faces = [detectable(validation, served, name, 1)[0] for name in ("happy", "surprise", "neutral")]
    rows = [("load average at the start (1 min)", f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")]
    if args.labels_only:
        print_table(rows + label_rows(validation, served, args.trials), args.threads)
        return

    handle, path = tempfile.mkstemp(suffix=".mp4")
    os.close(handle)
    try:
        Path(path).write_bytes(make_clip(moving_faces(faces[:1], 60, fps=25), fps=25))
        decode = decode_speed(path)
    finally:
        os.unlink(path)
    rows.append(
        (
            "decode 60 s 640x480 H.264, 5 frames/s to RGB: CPU s",
            f"PyAV {decode['PyAV']:.2f}, OpenCV {decode['OpenCV']:.2f}",
        )
    )
    for n in (1, 2, 3):
        clip = make_clip(moving_faces(faces[:n], 10, fps=25), fps=25)
        for label, predictor in (("flip TTA (served)", served), ("one view", one_view)):
            rate, cpu = throughput(predictor, clip, args.repeats)
            rows.append(
                (
                    f"video, 640x480, {n} face(s), {label}: sampled frames/s ({args.threads} threads)",
                    f"{rate:.1f} ({cpu:.0f} CPU ms per frame)",
                )
            )
        if n == 1:
            rate, cpu = throughput(served, clip, args.repeats, detect_side=480)
            rows.append(
                (
                    "video, 1 face, flip TTA, faces searched at 480 px (not used: misses faces)",
                    f"{rate:.1f} ({cpu:.0f} CPU ms)",
                )
            )
        if n == 2:
            for batch in (1, 8):
                rate, _ = throughput(served, clip, args.repeats, batch_frames=batch)
                rows.append((f"video, 2 faces, flip TTA, faces of {batch} frame(s) per model call", f"{rate:.1f}"))
        frames = list(moving_faces(faces[:n], 2, fps=25))
        delay = live_delay(served, frames)
        rows.append(
            (f"live, 640x480, {n} face(s): delay per processed frame", f"{delay:.0f} ms ({1000 / delay:.1f} frames/s)")
        )

    rows += label_rows(validation, served, args.trials)
    first, growth, peak, count = memory_over(served, faces[:2], args.minutes)
    rows.append(
        (
            f"memory, {args.minutes:g} min 640x480 clip, 2 faces, {count} frames analysed, annotated MP4 in memory",
            f"{first:.0f} MB after the first minute, +{growth:.0f} MB by the end (peak +{peak:.0f} MB over the start)",
        )
    )
    rows.append(("load average at the end (1 min)", f"{os.getloadavg()[0]:.1f}"))

    print_table(rows, args.threads)


def print_table(rows: list[tuple[str, str]], threads: int) -> None:
    print(f"Video benchmark, {date.today()}, {os.cpu_count()} cores, torch threads {threads}")
    print()
    print("| what | measured |")
    print("|---|---|")
    for what, value in rows:
        print(f"| {what} | {value} |")


if __name__ == "__main__":
    main()
