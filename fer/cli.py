"""Command line: python -m fer train | evaluate | predict | video | card (run with -h for the options)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from fer.config import CLASSES, DEFAULT_WEIGHTS
from fer.errors import FerError

TTA_HELP = (
    "also classify the mirrored face and average (about twice the model time); "
    "default: as the weights were shipped (see their model card)"
)


def _evaluate(args) -> int:
    from fer.evaluate import evaluate_folder, evaluate_photos, format_report, headline, write_outputs

    for out in (args.json, args.predictions):  # before the minutes of evaluating, not after
        if out and not Path(out).absolute().parent.is_dir():
            raise FerError(f"Cannot write {out}: the folder {Path(out).absolute().parent} does not exist.")
    evaluate = evaluate_photos if args.detect else evaluate_folder
    report, faces, probs, uncertainty = evaluate(args.data, args.split, args.weights, tta=args.tta)
    write_outputs(report, faces, probs, uncertainty, args.json, args.predictions)
    if not args.json:
        print(format_report(report))
    else:
        lead = headline(report)
        print(f"accuracy {lead['accuracy']:.4f} against {lead['truth']} on {lead['n']} images; report in {args.json}")
    return 0


def _predict(args) -> int:
    from tqdm import tqdm

    from fer.batch import predict_batch
    from fer.config import CLASSES
    from fer.predict import NO_FACE_HINT, NO_FACE_NOTE, Predictor, load_classifier
    from fer.record import results_json, write_csv

    predictor = Predictor(load_classifier(args.weights, tta=args.tta))
    # The bar shows only on a terminal (disable=None) and is cleared when done (leave=False).
    with tqdm(total=len(args.images), unit="file", file=sys.stderr, disable=None, leave=False) as bar:

        def progress(done: int, total: int, name: str) -> None:
            bar.total = total
            bar.update(done - bar.n)

        # The CLI never shows the photos: drop each decoded image as soon as its faces are found.
        results = predict_batch(
            predictor, args.images, progress=progress, detect=not args.no_detect, keep=lambda r: replace(r, image=None)
        )
    if args.csv:
        write_csv(results, args.csv)
    if args.json:
        sys.stdout.write(results_json(results))
    elif args.csv:  # a batch: the CSV holds the faces, the terminal gets the errors and a summary
        for r in results:
            if r.error:
                print(f"{r.file}: ERROR {r.error}")
        errors = sum(1 for r in results if r.error)
        faces = sum(len(r.faces) for r in results)
        print(f"wrote {args.csv}: {len(results)} file(s), {faces} face(s), {errors} error(s)")
    else:
        for r in results:
            if r.error:
                print(f"{r.file}: ERROR {r.error}")
                continue
            notes = f" ({'; '.join(r.notes)})" if r.notes else ""
            print(f"{r.file}: {len(r.faces)} face(s){notes}")
            if NO_FACE_NOTE in r.notes:
                print(f"  hint: {NO_FACE_HINT}")
            for face in r.faces:
                probs = "  ".join(f"{k} {v:.2f}" for k, v in zip(CLASSES, face.probs, strict=True))
                flag = "  (uncertain: may be another expression)" if face.uncertain else ""
                print(f"  #{face.index + 1} box {face.box.as_list()}: {face.label:8s} | {probs}{flag}")
    return 1 if any(r.error for r in results) else 0


def _video(args) -> int:
    from tqdm import tqdm

    from fer.config import CLASSES
    from fer.predict import Predictor, load_classifier
    from fer.video import check_fps, process_video, write_video_csv

    check_fps(args.fps)
    outputs = [None] * len(args.videos)
    if args.out:
        out = Path(args.out)
        if len(args.videos) > 1:  # several videos: --out is a folder, one annotated MP4 per video
            if not out.is_dir():
                raise FerError(f"With several videos, --out must be an existing folder; {out} is not one.")
            outputs = [out / f"{Path(v).stem}-annotated.mp4" for v in args.videos]
        elif out.is_dir():
            outputs = [out / f"{Path(args.videos[0]).stem}-annotated.mp4"]
        else:
            outputs = [out]
    for target in [args.csv, *outputs]:  # before the minutes of analysing, not after
        if target and not Path(target).absolute().parent.is_dir():
            raise FerError(f"Cannot write {target}: the folder {Path(target).absolute().parent} does not exist.")
    predictor = Predictor(load_classifier(args.weights, tta=args.tta))
    reports = []
    for video, output in zip(args.videos, outputs):
        # The bar shows only on a terminal (disable=None), in seconds of video, and is cleared when done.
        with tqdm(unit="s", file=sys.stderr, disable=None, leave=False, desc=Path(video).name) as bar:

            def progress(done: float, total: float | None) -> None:
                bar.total = round(total, 1) if total else None
                bar.update(round(done - bar.n, 1))

            report = process_video(video, predictor, fps=args.fps, name=video, annotated=output, progress=progress)
        reports.append(report)
        if report.error and not report.frames:
            print(f"{report.file}: ERROR {report.error}")
            continue
        info = report.info.describe() if report.info else ""
        print(f"{report.file}: {info}; {len(report.frames)} frames analysed at {report.fps:g}/s")
        for note in report.notes:
            print(f"  note: {note}")
        if report.error:
            print(f"  ERROR {report.error}")
        if not report.people:
            print("  no face found")
        for person in report.people:
            shares = "  ".join(f"{name} {share:.0%}" for name, share in zip(CLASSES, person.shares))
            print(
                f"  person {person.person} ({person.first:.1f}-{person.last:.1f} s, {person.frames} frames): {shares}"
            )
        if output is not None and Path(output).is_file():
            print(f"  wrote {output}")
    if args.csv:
        write_video_csv(reports, args.csv)
        print(f"wrote {args.csv}")
    return 1 if any(r.error for r in reports) else 0


def _train(args) -> int:
    from fer.train import main as train_main

    train_main(args)
    return 0


def _card(args) -> int:
    from fer.card import build_card
    from fer.evaluate import headline

    card = build_card(args.run, args.weights_out, args.data, args.command_line, tta=args.tta)
    val = card["metrics"].get("validation")
    score = f"; validation accuracy {headline(val)['accuracy']:.4f} against {headline(val)['truth']}" if val else ""
    print(f"wrote {args.weights_out} (sha256 {card['weights_sha256'][:12]}...) and its model card{score}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from fer.train import get_args_parser

    parser = argparse.ArgumentParser(
        prog="python -m fer", description=f"Facial emotion recognition: {', '.join(CLASSES)}"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("train", parents=[get_args_parser(add_help=False)], help="train a model").set_defaults(
        handler=_train
    )

    ev = commands.add_parser("evaluate", help="score weights on a folder of labelled face crops (or photos: --detect)")
    ev.add_argument(
        "--data",
        help="dataset root (with --split) or a folder of class folders (default: FER_DATA_DIR or ../shared/data)",
    )
    ev.add_argument("--split", help="split folder inside --data, e.g. validation")
    ev.add_argument("--weights", help="checkpoint (default: weights/fer_net.pt)")
    ev.add_argument("--json", metavar="OUT", help="write the metrics report as JSON")
    ev.add_argument("--predictions", metavar="OUT.csv", help="write per-image predictions as CSV")
    ev.add_argument("--tta", action=argparse.BooleanOptionalAction, help=TTA_HELP)
    ev.add_argument(
        "--detect",
        action="store_true",
        help="the images are whole photos: detect, align and score each photo's largest face (no face = wrong)",
    )
    ev.set_defaults(handler=_evaluate)

    pr = commands.add_parser("predict", help="find and classify the faces in photos")
    pr.add_argument("images", nargs="+", help="image files, or .zip archives of images (read in memory)")
    pr.add_argument("--json", action="store_true", help="print JSON, one entry per file")
    pr.add_argument("--no-detect", action="store_true", help="treat each whole image as one face")
    pr.add_argument("--weights", help="checkpoint (default: weights/fer_net.pt)")
    pr.add_argument("--tta", action=argparse.BooleanOptionalAction, help=TTA_HELP)
    pr.add_argument(
        "--csv", metavar="OUT.csv", help="also write one row per face (file, face, box, label, probabilities) as CSV"
    )
    pr.set_defaults(handler=_predict)

    vd = commands.add_parser("video", help="each person's expression over time in video files (MP4, WebM, MOV, AVI)")
    vd.add_argument("videos", nargs="+", help="video files")
    vd.add_argument("--fps", type=float, default=5.0, help="frames analysed per second of video (default 5)")
    vd.add_argument(
        "--csv", metavar="OUT.csv", help="write one row per face per analysed frame (time, person, box, probabilities)"
    )
    vd.add_argument(
        "--out", metavar="OUT.mp4", help="write the annotated video (for several videos: a folder, one MP4 each)"
    )
    vd.add_argument("--weights", help="checkpoint (default: weights/fer_net.pt)")
    vd.add_argument("--tta", action=argparse.BooleanOptionalAction, help=TTA_HELP)
    vd.set_defaults(handler=_video)

    cd = commands.add_parser("card", help="ship a training run: copy its best weights and write the model card")
    cd.add_argument("--run", required=True, help="training output folder (holds best.pt)")
    cd.add_argument("--weights-out", default=str(DEFAULT_WEIGHTS), help="where to write the shipped weights")
    cd.add_argument("--data", help="dataset root for the metrics (default: FER_DATA_DIR or ../shared/data)")
    cd.add_argument("--command-line", help="the exact training command, recorded in the card")
    cd.add_argument(
        "--tta",
        action="store_true",
        help="serve with flip test-time augmentation by default: calibrate and score the face + mirror average",
    )
    cd.set_defaults(handler=_card)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv[1:]  # the command's own words, for the records a run keeps (fer train's summary)
    try:
        return args.handler(args)
    except FerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
