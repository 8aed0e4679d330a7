"""The README's results: made from the model card and the real-photo evaluation JSON, never typed.

    python scripts/results_table.py            # print the block
    python scripts/results_table.py --write    # replace it in README.md

Inputs: weights/model_card.json (written by `fer card`: FER2013 validation against both truths, its test rows)
and docs/results/wild_dev.json (written by `python -m fer evaluate --data ../shared/data/wild_dev
--split faces --detect --json docs/results/wild_dev.json`; numbers only, no image). After new weights,
rerun both commands and this script; tests/test_results_table.py fails while README.md is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "weights" / "model_card.json"
WILD = ROOT / "docs" / "results" / "wild_dev.json"
README = ROOT / "README.md"
START = "<!-- results: made by scripts/results_table.py from the model card and docs/results/wild_dev.json -->"
END = "<!-- end of results -->"
# Measured elsewhere, on other code: the public comparisons (docs/evaluation.md says how).
PUBLIC_FER2013 = "best public FER2013 models: about 0.79–0.81"
PUBLIC_CROWD_ROWS = "the `fer` package on PyPI: 0.770 (measured outside this project)"
PUBLIC_WILD = "the `fer` package on PyPI (Haar + mini-Xception): 0.570"


def accuracy(block: dict, bold: bool = False) -> str:
    """'**0.903** (0.894–0.911)': the accuracy and its 95% interval."""
    low, high = block["accuracy_interval"]
    value = f"**{block['accuracy']:.3f}**" if bold else f"{block['accuracy']:.3f}"
    return f"{value} ({low:.3f}–{high:.3f})"


def block(card: dict, wild: dict) -> str:
    val = card["metrics"]["validation"]
    crowd, folder, photos = val["crowd"], val["folder"], wild["folder"]
    rows_crowd, rows_folder = crowd["subsets"]["fer2013_test_rows"], folder["subsets"]["fer2013_test_rows"]
    recall = {name: m["recall"] for name, m in crowd["per_class"].items()}
    wild_recall = {name: m["recall"] for name, m in photos["per_class"].items()}
    flag, calibration = card["uncertainty"], card["calibration"]
    people = calibration.get("people") or {}
    lines = [
        START,
        "| set (images) | truth | accuracy (95% interval) | for comparison |",
        "|---|---|---:|---|",
        f"| **FER2013 validation** ({crowd['n']:,} of {val['n']:,} with a crowd label) | crowd | "
        f"{accuracy(crowd, bold=True)} | |",
        f"| FER2013's own test rows in validation ({rows_crowd['n']:,}) | crowd | {accuracy(rows_crowd)} "
        f"| {PUBLIC_CROWD_ROWS} |",
        f"| FER2013 validation ({folder['n']:,}) | FER2013 labels | {accuracy(folder)} | |",
        f"| FER2013's own test rows in validation ({rows_folder['n']:,}) | FER2013 labels | {accuracy(rows_folder)} "
        f"| {PUBLIC_FER2013} |",
        f"| **real news photos, whole pipeline** (`wild_dev`, {wild['n']:,} photos) | the set's labels "
        f"| {accuracy(photos, bold=True)} | {PUBLIC_WILD} |",
        "",
        "*Crowd*: the most-voted of the ten FERPlus votes per face (ten people), where it is one of the four "
        "classes; *FER2013 labels*: one person per face, the truth public FER2013 models were trained on. "
        "Recall against the crowd on validation: "
        + ", ".join(f"{name} {value:.2f}" for name, value in recall.items())
        + "; on the news photos: "
        + ", ".join(f"{name} {value:.2f}" for name, value in wild_recall.items())
        + f" (macro {photos['macro_recall']:.2f}; no face found in {wild['no_face_rate']:.1%} of photos). "
        "Probabilities are calibrated to the crowd's label (cross-fitted on validation: calibration error "
        f"{calibration['ece_after']:.3f}; {calibration['tv_after']:.3f} from the four vote shares, mean total "
        "variation)"
        + (
            f'; the app\'s "about 7 in 10 people" is a second temperature, fitted to the shares '
            f"({people['share_ece_after']:.3f} from the share of people choosing the top class)"
            if "share_ece_after" in people
            else ""
        )
        + ". The *may be another expression* flag catches "
        f"{flag['out_of_scope_flagged']:.1%} of the faces the crowd saw as another expression on validation "
        f"({wild['uncertainty']['out_of_scope_flagged']:.1%} on news photos) and flags "
        f"{flag['in_scope_flagged']:.1%} of in-scope validation faces ({wild['uncertainty']['in_scope_flagged']:.1%} "
        "of in-scope news photos).",
        END,
    ]
    return "\n".join(lines)


def current() -> str:
    return block(json.loads(CARD.read_text()), json.loads(WILD.read_text()))


def replaced(readme: str, new_block: str) -> str:
    start, end = readme.index(START), readme.index(END) + len(END)
    return readme[:start] + new_block + readme[end:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="replace the block in README.md")
    args = parser.parse_args()
    new_block = current()
    if args.write:
        README.write_text(replaced(README.read_text(), new_block))
    else:
        print(new_block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
