"""The README's results: made from the model card and the real-photo evaluation JSON, never typed.

    python scripts/results_table.py            # print the block
    python scripts/results_table.py --write    # replace it in README.md

Inputs: weights/model_card.json (written by `fer card`: FER2013 validation, its test rows, one view)
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
PUBLIC_FER2013 = "best public FER2013 models: about 0.79–0.81 (4-way argmax)"
PUBLIC_WILD = "the `fer` package on PyPI (Haar + mini-Xception): 0.570"


def block(card: dict, wild: dict) -> str:
    val, one_view = card["metrics"]["validation"], card["metrics_one_view"]["validation"]
    rows_subsets = val["subsets"]
    test_rows = rows_subsets["fer2013_test_rows"]
    public, private = rows_subsets["fer2013_public_test"]["n"], rows_subsets["fer2013_private_test"]["n"]
    matrix, classes = val["confusion_matrix"], val["classes"]
    sad, neutral = classes.index("sad"), classes.index("neutral")
    errors = val["n"] - sum(matrix[i][i] for i in range(len(classes)))
    sad_neutral = matrix[sad][neutral] + matrix[neutral][sad]
    flag = card["uncertainty"]
    lines = [
        START,
        "| split (images) | accuracy | for comparison |",
        "|---|---:|---|",
        f"| **FER2013 validation, all ({val['n']:,})** | **{val['accuracy']:.3f}** | |",
        f"| FER2013 test rows in validation ({test_rows['n']:,} = PublicTest {public} + PrivateTest {private}) "
        f"| **{test_rows['accuracy']:.3f}** | {PUBLIC_FER2013} |",
        f"| validation without images that have a pixel-identical twin in train ({val['n_excluding_train_twins']:,}) "
        f"| {val['accuracy_excluding_train_twins']:.3f} | |",
        f"| validation, all, one view (`--no-tta`) ({one_view['n']:,}) | {one_view['accuracy']:.3f} | |",
        f"| **real news photos, whole pipeline** (`wild_dev`, {wild['n']:,} photos) | **{wild['accuracy']:.3f}** "
        f"| {PUBLIC_WILD} |",
        "",
        f"Sad and neutral make {sad_neutral} of the {errors} validation errors. On the news photos neutral recall "
        f"is {wild['per_class']['neutral']['recall']:.2f}, {wild['no_face_rate']:.1%} of photos have no face found, "
        f"and the calibration error is {wild['ece']:.3f} (validation {card['calibration']['ece_after']:.3f}, cross-fitted). The *may be another "
        f"expression* flag catches {flag['out_of_scope_flagged']:.1%} of the faces the crowd saw as another "
        f"expression on validation ({wild['uncertainty']['out_of_scope_flagged']:.1%} on news photos) and flags "
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
