"""app.plots: one colour per class in every chart, and the clickable confusion matrix."""

import numpy as np

from app.plots import (
    CLASS_COLORS,
    CONFUSION_SELECTION,
    class_balance_bars,
    confusion_chart,
    confusion_heatmap,
    per_class_bars,
    probability_bars,
    reliability_diagram,
    row_normalised,
    training_curves,
)
from fer.config import CLASSES
from fer.metrics import score_text

MATRIX = [[50, 5, 3, 2], [4, 30, 1, 15], [2, 1, 40, 3], [0, 0, 0, 0]]


def test_every_class_has_one_distinct_colour():
    assert set(CLASS_COLORS) == set(CLASSES)
    assert len(set(CLASS_COLORS.values())) == len(CLASSES)


def test_class_charts_use_the_class_colours():
    bars = probability_bars([0.7, 0.1, 0.15, 0.05])
    assert list(bars.data[0].marker.color) == [CLASS_COLORS[c] for c in CLASSES]
    per_class = {c: {"precision": 0.5, "recall": 0.6, "f1": 0.55} for c in CLASSES}
    for fig in (per_class_bars(per_class), class_balance_bars({"train": dict.fromkeys(CLASSES, 10)})):
        assert {trace.name: trace.marker.color for trace in fig.data} == CLASS_COLORS


def test_row_normalised_keeps_empty_rows_at_zero():
    shares = row_normalised(MATRIX)
    np.testing.assert_allclose(shares[:3].sum(axis=1), 1.0)
    assert (shares[3] == 0).all()


def test_confusion_heatmap_shows_counts_or_shares():
    counts = confusion_heatmap(MATRIX)
    assert counts.data[0].text[0][0] == "50"
    shares = confusion_heatmap(MATRIX, normalise=True)
    assert shares.data[0].text[0][0] == "83%"


def test_confusion_chart_is_clickable_by_cell():
    spec = confusion_chart(MATRIX).to_dict()
    params = spec.get("params", []) + [p for layer in spec["layer"] for p in layer.get("params", [])]
    assert [p["name"] for p in params] == [CONFUSION_SELECTION]
    assert params[0]["select"]["fields"] == ["true", "predicted"]
    assert len(spec["datasets"][next(iter(spec["datasets"]))]) == 16


def test_curves_and_reliability_skip_missing_values():
    fig = training_curves(
        [{"epoch": 0, "train_loss": 1.2, "val_loss": 1.1}, {"epoch": 1, "train_loss": 1.0, "val_loss": 0.9}]
    )
    assert [t.name for t in fig.data] == ["train loss", "validation loss"]
    bins = [
        {"low": 0.5, "high": 0.6, "count": 3, "confidence": 0.55, "accuracy": 0.6},
        {"low": 0.6, "high": 0.7, "count": 0, "confidence": None, "accuracy": None},
    ]
    fig = reliability_diagram(bins)
    assert list(fig.data[1].y) == [0.6]


def test_training_curves_give_each_line_its_own_colour_and_room_for_the_titles():
    fig = training_curves(
        [
            {
                "epoch": e,
                "train_loss": 1.2 - e / 10,
                "val_loss": 1.1 - e / 20,
                "val_crowd_accuracy": 0.6 + e / 20,
                "val_accuracy": 0.5 + e / 20,
            }
            for e in range(3)
        ]
    )
    colours = {t.name: t.line.color for t in fig.data}
    assert list(colours) == [
        "train loss",
        "validation loss",
        "validation accuracy, crowd",
        "validation accuracy, FER2013 labels",
    ]
    assert len(set(colours.values())) == 4 and not set(colours.values()) & set(CLASS_COLORS.values())
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["Loss", "Validation accuracy"]
    # Subplot titles sit just above the plotting area: the top margin must leave room for them.
    assert fig.layout.margin.t >= 40


def test_score_text_is_signed_with_two_decimals_and_never_minus_zero():
    assert [score_text(v) for v in (0.456, -0.123, -0.004, 0.0, 0.004)] == ["+0.46", "-0.12", "+0.00", "+0.00", "+0.00"]
