"""fer.report: headline numbers, sections that follow the card, and the self-contained HTML export."""

import copy
import re

import pytest

from fer.checkpoint import read_card
from fer.evaluate import reliability_bins
from fer.report import (
    calibration_summary,
    figures,
    headline,
    per_class_rows,
    report_html,
    splits_with_metrics,
    stored_reliability,
    uncertainty_summary,
)

MINIMAL = {"name": "FerNet", "classes": ["happy", "sad", "surprise", "neutral"]}


@pytest.fixture(scope="module")
def card():
    found = read_card()
    assert found is not None, "weights/model_card.json is missing"
    return found


@pytest.fixture(scope="module")
def html(card):
    return report_html(card, weights_bytes=5_000_000)


def test_headline_numbers_say_their_split_and_size(card):
    items = headline(card, weights_bytes=5_000_000)
    splits = splits_with_metrics(card)
    assert splits and splits[0] == "validation"
    accuracy = {item.label: item for item in items if item.label.endswith("accuracy")}
    for split in splits:
        item = accuracy[f"{split.capitalize()} accuracy"]
        assert item.value == f"{card['metrics'][split]['accuracy']:.1%}"
        assert f"{card['metrics'][split]['n']:,} images" in item.detail and split in item.detail
    size = next(item for item in items if item.label == "Model size")
    assert "MB file" in size.detail and size.value.endswith("M")


def test_per_class_rows_follow_the_card(card):
    rows = per_class_rows(card["metrics"]["validation"])
    assert [r["class"] for r in rows] == ["happy", "sad", "surprise", "neutral"]
    assert sum(r["images"] for r in rows) == card["metrics"]["validation"]["n"]


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
    assert f"{card['metrics']['validation']['accuracy']:.1%}" in html


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
    assert "Expected calibration error: 3.0%" in report_html(MINIMAL, reliability=passed)


def test_calibration_and_uncertainty_summaries_say_what_the_card_holds():
    assert calibration_summary(MINIMAL) is None and uncertainty_summary(MINIMAL) == []
    card = {
        **MINIMAL,
        "calibration": {
            "method": "fitted on validation halves",
            "ece_before": 0.044,
            "ece_after": 0.021,
            "temperature": 0.81,
        },
        "uncertainty": {
            "score": "1 - max probability",
            "threshold": 0.46,
            "auroc_out_of_scope": 0.6,
            "in_scope_flagged": 0.2,
            "out_of_scope_flagged": 0.34,
            "n_out_of_scope": 74,
        },
    }
    summary = calibration_summary(card)
    assert "T = 0.810" in summary and "4.4% before, 2.1% after" in summary
    lines = " ".join(uncertainty_summary(card))
    assert (
        "0.46" in lines and "20.0% of faces" in lines and "34.0%" in lines and "74 faces" in lines and "0.60" in lines
    )
    out = report_html(card)
    assert "<h2>Calibration</h2>" in out and "When the model is unsure" in out
