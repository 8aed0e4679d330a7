"""app.report: headline numbers, sections that follow the card, and the self-contained HTML export."""

import copy
import re
from html import unescape

import pytest

from app.report import (
    calibration_lines,
    calibration_summary,
    confusion_pair,
    crowd_agreement_sentence,
    crowd_sentence,
    curves_caption,
    fer2013_test_rows,
    figures,
    headline,
    model_details,
    per_class_rows,
    report_html,
    split_metrics,
    splits_with_metrics,
    stored_reliability,
    uncertainty_numbers,
    uncertainty_summary,
)
from fer.checkpoint import read_card
from fer.metrics import reliability_bins

MINIMAL = {"name": "FerNet", "classes": ["happy", "sad", "surprise", "neutral"]}


@pytest.fixture(scope="module")
def card():
    found = read_card()
    assert found is not None, "weights/model_card.json is missing"
    return found


@pytest.fixture(scope="module")
def html(card):
    return report_html(card, weights_bytes=5_000_000)


def test_headline_numbers_say_their_truth_split_and_size(card):
    items = headline(card, weights_bytes=5_000_000)
    splits = splits_with_metrics(card)
    assert splits and splits[0] == "validation"
    accuracy = {item.label: item for item in items if "accuracy" in item.label}
    for split in splits:
        for truth, name in (("crowd", "crowd"), ("folder", "FER2013 labels")):
            block = card["metrics"][split][truth]
            item = accuracy[f"{split.capitalize()} accuracy ({name})"]
            assert item.value == f"{block['accuracy']:.1%}"
            assert f"{block['n']:,} images" in item.detail and split in item.detail
            low, high = block["accuracy_interval"]
            assert f"95% interval {low:.1%}–{high:.1%}" in item.detail
    size = next(item for item in items if item.label == "Model size")
    assert "MB file" in size.detail and size.value.endswith("M")


def test_per_class_rows_follow_the_card(card):
    rows = per_class_rows(split_metrics(card, "validation"))
    assert [r["class"] for r in rows] == ["happy", "sad", "surprise", "neutral"]
    assert sum(r["images"] for r in rows) == card["metrics"]["validation"]["crowd"]["n"]  # the headline truth


def test_html_is_self_contained_and_offline(html):
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert not re.search(r"<script[^>]+src=", html)  # plotly.js is inline, not from a CDN
    assert not re.search(r"<link[^>]+href=", html)
    assert "<img" not in html  # no pictures at all, so no dataset faces
    assert "Plotly.newPlot" in html
    assert len(html) > 1_000_000  # the plotly.js bundle itself is inside


def test_html_has_every_section_the_card_supports(card, html):
    for heading in (
        "Intended use",
        "Known limitations",
        "Training curves",
        "Confusion matrix",
        "Per-class metrics",
        "Data card",
        "Model",
    ):
        assert f"<h2>{heading}" in html
    for limitation in card["limitations"]:
        assert limitation.replace("'", "&#x27;") in html
    assert f"{card['metrics']['validation']['crowd']['accuracy']:.1%}" in html


def test_html_escapes_card_text(card):
    hostile = copy.deepcopy(card)
    hostile["limitations"] = ["<script>alert('x')</script> & more"]
    out = report_html(hostile)
    assert "<script>alert" not in out and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in out


def test_a_minimal_card_still_gives_a_report():
    assert headline(MINIMAL) == []
    assert figures(MINIMAL) == {}
    out = report_html(MINIMAL)
    assert "<h1>" in out and "Training curves" not in out and "Confusion matrix" not in out


@pytest.mark.slow
def test_reliability_bins_are_read_from_the_card_when_present(card, val_subset, classifier):
    assert stored_reliability(MINIMAL) is None
    probs = classifier.predict_proba(val_subset.images)
    bins = reliability_bins(probs, val_subset.labels)
    with_bins = {
        **card,
        "calibration": {"split": "validation", "ece_before": 0.2, "ece_after": 0.05, "bins_after": bins},
    }
    found = stored_reliability(with_bins)
    assert found["bins"] == bins and found["ece"] == 0.05 and found["split"] == "validation"
    assert "reliability" in figures(with_bins)
    assert "<h2>Calibration" in report_html(with_bins)
    # Bins computed elsewhere (the app, from the dataset) can be passed in instead.
    passed = {"bins": bins, "bins_before": None, "ece": 0.03, "split": "validation"}
    assert "reliability" in figures(MINIMAL, reliability=passed)
    assert "Its expected calibration error is 3.0%." in report_html(MINIMAL, reliability=passed)


def block(n, accuracy, matrix, ece, ece_uncalibrated, subsets, truth, interval=(0.70, 0.76)):
    return {
        "truth": truth,
        "n": n,
        "accuracy": accuracy,
        "accuracy_interval": list(interval),
        "confusion_matrix": matrix,
        "ece": ece,
        "ece_uncalibrated": ece_uncalibrated,
        "subsets": subsets,
    }


CROWD, FOLDER = "the crowd's label", "the folder labels"
STUDIED = {
    **MINIMAL,
    "temperature": 0.51,
    "calibration": {
        "method": "fitted on validation halves",
        "target": "crowd_label",
        "ece_before": 0.046,
        "ece_after": 0.022,
        "tv_before": 0.2,
        "tv_after": 0.14,
        "share_ece_before": 0.041,
        "share_ece_after": 0.081,
        "temperature": 0.51,
        "people": {
            "target": "crowd_vote_shares",
            "share_ece_before": 0.041,
            "share_ece_after": 0.012,
            "temperature": 0.81,
        },
    },
    "metrics": {
        "validation": {
            "n": 4977,
            "headline": "crowd",
            "crowd": {
                **block(
                    4688,
                    0.89,
                    [[1700, 30, 40, 60], [10, 300, 4, 170], [20, 2, 620, 16], [50, 60, 20, 1586]],
                    0.06,
                    0.1,
                    {"fer2013_test_rows": {"n": 929, "accuracy": 0.881, "accuracy_interval": [0.86, 0.90]}},
                    CROWD,
                    (0.881, 0.899),
                ),
                "no_label": {"no_votes": 0, "tie": 183, "other_expression": 71, "unknown": 14, "not_a_face": 21},
                "vote_shares_tv": 0.152,
            },
            "folder": block(
                4977,
                0.73,
                [[1500, 100, 80, 145], [40, 620, 30, 449], [30, 20, 700, 47], [60, 230, 50, 876]],
                0.014,
                0.045,
                {
                    "fer2013_public_test": {"n": 452, "accuracy": 0.712, "accuracy_interval": [0.67, 0.75]},
                    "fer2013_private_test": {"n": 531, "accuracy": 0.742, "accuracy_interval": [0.70, 0.78]},
                    "fer2013_test_rows": {"n": 983, "accuracy": 0.728, "accuracy_interval": [0.70, 0.755]},
                    "crowd_agrees_with_label": {"n": 3886, "accuracy": 0.899, "accuracy_interval": [0.89, 0.91]},
                    "crowd_disagrees_with_label": {"n": 1066, "accuracy": 0.52, "accuracy_interval": [0.49, 0.55]},
                },
                FOLDER,
            ),
        },
        "test": {
            "n": 128,
            "headline": "folder",
            "folder": block(
                128, 0.77, [[26, 1, 2, 3], [2, 20, 1, 9], [1, 1, 27, 3], [1, 5, 1, 25]], 0.07, 0.079, {}, FOLDER
            ),
        },
    },
    "inference": {"precision": "int8 (post-training static quantization)", "int8_calibration": "2048 training faces"},
    "uncertainty": {
        "score": "1 - max probability",
        "threshold": 0.46,
        "auroc_out_of_scope": 0.6,
        "in_scope_flagged": 0.2,
        "out_of_scope_flagged": 0.34,
        "n_out_of_scope": 74,
        "chosen_to_flag": "20% of in-scope validation faces",
    },
    "training": {"best_epoch": 14, "recipe": {"epochs": 15, "out": "/work/runs/x", "data": None}},
}


def test_calibration_says_which_ece_is_which():
    assert calibration_summary(MINIMAL) is None and calibration_lines(MINIMAL) == []
    summary = calibration_summary(STUDIED)
    assert "T = 0.510" in summary and summary.count("emperature scaling") == 1
    assert "how likely most people would call the face that" in summary  # calibrated to the crowd's label
    assert "T = 0.810, fitted to the crowd's vote shares" in summary  # the people's reading
    lines = calibration_lines(STUDIED)
    assert lines == [
        "Cross-fitted ECE (fit on one half of validation, scored on the other): 4.6% before → 2.2% after",
        "Cross-fitted distance to the crowd's four vote shares (mean total variation): 20.0% before → 14.0% after",
        "The people's reading (how many of ten): cross-fitted ECE against the share of people: 4.1% before → 1.2% after",
        "In-sample: the shipped model on all of validation (4,688 images, where T was fitted): 10.0% before → 6.0% after",
        "The shipped model on the test split (128 images): 7.9% before → 7.0% after",
    ]
    assert not any("emperature scaling" in line for line in lines)
    ece = next(item for item in headline(STUDIED) if item.label == "Calibration error")
    assert ece.value == "2.2%" and "cross-fitted" in ece.detail
    out = report_html(STUDIED)
    assert "<h2>Calibration</h2>" in out
    assert all(line in unescape(out) for line in lines)


def test_fer2013_test_rows_are_compared_on_fer2013s_labels_and_scored_on_the_crowds_too():
    assert fer2013_test_rows(MINIMAL) is None
    rows = fer2013_test_rows(STUDIED, "folder")
    assert rows["split"] == "validation" and rows["n"] == 983 and rows["accuracy"] == 0.728
    assert fer2013_test_rows(STUDIED)["n"] == 929  # the headline truth: the crowd's label
    item = next(item for item in headline(STUDIED) if item.label == "FER2013 test rows")
    assert item.value == "72.8%" and "983 validation images" in item.detail and "79-81%" in item.detail
    assert "FER2013's labels" in item.detail and "95% interval 70.0%–75.5%" in item.detail
    out = report_html(STUDIED).replace("&#x27;", "'")
    assert "983 of the validation images are FER2013's own test rows: against FER2013's original labels" in out
    assert "public test 71.2% of 452, private test 74.2% of 531" in out
    assert "Against the crowd's label the model is 88.1% accurate on the 929 of them the crowd labelled" in out


def test_the_truth_and_the_faces_without_a_crowd_label_are_spelt_out():
    assert crowd_sentence(MINIMAL) is None
    sentence = crowd_sentence(STUDIED)
    assert "the crowd labels 4,688 faces; 289 have no crowd label (tie 183, other expression 71" in sentence
    assert "0.15 (total-variation distance" in sentence
    items = {item.label: item for item in headline(STUDIED)}
    assert items["Validation accuracy (crowd)"].value == "89.0%"
    assert items["Validation accuracy (FER2013 labels)"].value == "73.0%"


def test_accuracy_where_the_crowd_agrees_with_the_label_is_spelt_out():
    assert crowd_agreement_sentence(MINIMAL) is None
    sentence = crowd_agreement_sentence(STUDIED)
    assert sentence.startswith("The FERPlus crowd (ten people per face) reads 3,886 of the validation faces")
    assert "agrees with that label on 89.9%. On the 1,066 faces it reads as another of the four" in sentence
    assert "52.0%" in sentence
    assert sentence.replace("'", "&#x27;") in report_html(STUDIED)


def test_the_sad_neutral_confusion_is_spelt_out():
    text = confusion_pair(split_metrics(STUDIED, "validation", "folder"))
    assert text == (
        "Sad and neutral, the two classes most often taken for each other: 449 of the 1,139 sad faces (39.4%) "
        "are called neutral, and 230 of the 1,216 neutral faces (18.9%) are called sad."
    )
    assert confusion_pair({"confusion_matrix": [[5, 0, 0, 0], [0, 5, 0, 1], [9, 0, 5, 0], [0, 2, 0, 5]]}) == (
        "Sad and neutral: 1 of the 6 sad faces (16.7%) are called neutral, and 2 of the 7 neutral faces (28.6%) are called sad."
    )
    assert confusion_pair(MINIMAL) is None
    crowd = confusion_pair(split_metrics(STUDIED, "validation"))  # what the report shows: the headline truth
    assert crowd.startswith("Sad and neutral, the two classes most often taken for each other: 170 of the 484")
    assert crowd in report_html(STUDIED).replace("&#x27;", "'")


def test_the_uncertainty_study_and_inference_precision_are_reported():
    assert uncertainty_summary(MINIMAL) == [] and uncertainty_numbers(MINIMAL) == []
    numbers = {item.label: item.value for item in uncertainty_numbers(STUDIED)}
    assert numbers == {
        "Threshold": "0.46",
        "Flagged, in scope": "20.0%",
        "Flagged, out of scope": "34.0%",
        "AUROC": "0.60",
    }
    assert "74 faces" in next(i.detail for i in uncertainty_numbers(STUDIED) if i.label == "Flagged, out of scope")
    lines = " ".join(uncertainty_summary(STUDIED))
    assert "at least 0.46" in lines and "20% of in-scope validation faces" in lines and "AUROC" in lines
    details = dict(model_details(STUDIED))
    assert details["Inference precision"] == "int8 (post-training static quantization)"
    assert details["Int8 calibration"] == "2048 training faces"
    assert details["Recipe"] == "epochs=15"  # no server paths
    assert details["Softmax temperature"] == "0.510" and details["People's temperature (how many of ten)"] == "0.810"
    assert "People's temperature (how many of ten)" not in dict(model_details(MINIMAL))
    out = report_html(STUDIED)
    assert "When the model is unsure" in out and "Flagged, out of scope" in out and "34.0%" in out
    assert "int8 (post-training static quantization)" in out and "/work/runs" not in out


def test_the_shipped_card_fills_every_new_section(card):
    """Whatever the numbers of the weights in the repo, their card carries what the report shows."""
    assert fer2013_test_rows(card) is not None
    assert len(calibration_lines(card)) >= 2
    assert confusion_pair(split_metrics(card, "validation"))
    assert crowd_sentence(card) and len(calibration_lines(card)) >= 3  # ECE and the distance to the votes
    assert {item.label for item in uncertainty_numbers(card)} >= {"Threshold", "AUROC"}
    assert "Inference precision" in dict(model_details(card))


def test_a_card_with_the_another_expression_head_explains_it_and_compares_with_top_probability():
    card = {
        **STUDIED,
        "uncertainty": {
            **STUDIED["uncertainty"],
            "head": "logistic regression on the 256 pooled features",
            "auroc_out_of_scope_max_probability": 0.58,
            "auroc_out_of_scope": 0.83,
        },
    }
    numbers = {item.label: item.value for item in uncertainty_numbers(card)}
    assert numbers["AUROC"] == "0.83" and numbers["AUROC of 1 - top probability"] == "0.58"
    assert "logistic regression on the 256 pooled features" in " ".join(uncertainty_summary(card))
    assert "AUROC of 1 - top probability" in report_html(card)


def test_a_card_served_with_flip_tta_says_so_next_to_its_accuracy(card):
    served = copy.deepcopy(card)
    served["metrics"]["validation"]["tta"] = True
    one_view = copy.deepcopy(card["metrics"]["validation"])
    one_view["crowd"]["accuracy"] = 0.8123
    served["metrics_one_view"] = {"validation": {**one_view, "tta": False}}
    served["inference"]["test_time_augmentation"] = "on by default: each face is classified as it is and mirrored"
    item = next(i for i in headline(served) if i.label == "Validation accuracy (crowd)")
    assert "face and mirror averaged, as served (one view 81.2%)" in item.detail
    assert ("Test-time augmentation", served["inference"]["test_time_augmentation"]) in model_details(served)
    # Weights served on one view: nothing said about TTA next to the accuracy.
    plain_card = copy.deepcopy(card)
    plain_card["metrics"]["validation"]["tta"] = False
    plain_card.pop("metrics_one_view", None)
    plain = next(i for i in headline(plain_card) if i.label == "Validation accuracy (crowd)")
    assert "mirror" not in plain.detail


def test_the_training_curves_say_what_they_cover():
    assert curves_caption(MINIMAL) is None
    late = {"curves": [{"epoch": e, "val_accuracy": None if e < 60 else 0.8} for e in range(90)], "training": {}}
    text = curves_caption(late)
    assert text.startswith("90 epochs. Validation was scored from epoch 60 on: earlier epochs")
    tuned = {
        "curves": [{"epoch": e, "val_accuracy": 0.8, "val_crowd_accuracy": 0.9} for e in range(12)],
        "training": {"init": {"file": "weights/fer_net_folder_labels.pt"}},
    }
    text = curves_caption(tuned)
    assert text == (
        "12 epochs of a fine-tuning stage: it started from trained weights (weights/fer_net_folder_labels.pt), "
        "whose own epochs are not drawn."
    )
    names = [trace.name for trace in figures(tuned)["curves"].data]
    assert names == ["validation accuracy, crowd", "validation accuracy, FER2013 labels"]  # no loss recorded here
    assert text in unescape(report_html(tuned))


def test_the_share_of_people_diagram_follows_the_cards_bins(card):
    from app.report import people_caption, people_figure

    assert people_caption(MINIMAL) is None and people_figure(MINIMAL) is None and "people" not in figures(MINIMAL)
    bins = card["calibration"]["people"]["share_reliability"]
    used = [b for b in bins if b["count"]]
    bars = next(t for t in people_figure(card).data if t.type == "bar")
    assert list(bars.y) == [b["share"] for b in used] and bars.name == "share of people"
    assert f"on the {sum(b['count'] for b in used):,} validation faces with crowd votes" in people_caption(card)
    out = unescape(report_html(card))
    assert people_caption(card) in out and "people" in figures(card)
