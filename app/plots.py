"""Charts shared by the app's pages and the HTML report, with one colour per class everywhere.

Every builder takes plain numbers (lists, dicts, arrays) and returns a plotly figure, except
`confusion_chart`, an Altair chart whose cells can be clicked in Streamlit (plotly heatmap clicks do
not reach Streamlit). Plotly and Altair are imported on first use to keep the app's start fast.
"""

from __future__ import annotations

import numpy as np

from fer.config import CLASS_COLORS, CLASSES
from fer.metrics import score_text

ACCENT = "#2E5EAA"  # the theme's primary colour (.streamlit/config.toml)
MUTED = "#B8C2D6"
FONT = "Source Sans Pro, Helvetica, Arial, sans-serif"
CONFUSION_SCALE = "blues"


def graph_objects():
    """plotly.graph_objects, once pandas is whole. plotly looks pandas up in sys.modules without importing
    it, so a page drawing while another thread (a previous run's warm-up) is still importing pandas met a
    half-initialised module; importing pandas here waits for that import to finish."""
    import pandas  # noqa: F401
    import plotly.graph_objects as go

    return go


def _layout(fig, height: int, title: str | None = None, **extra):
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        font={"family": FONT, "size": 14},
        title={"text": title} if title else None,
        **extra,
    )
    return fig


def probability_bars(probs, height: int = 190, title: str | None = None):
    """Horizontal bars of the four class probabilities, in class order, labelled in percent."""
    go = graph_objects()

    probs = [float(p) for p in probs]
    fig = go.Figure(
        go.Bar(
            x=probs,
            y=list(CLASSES),
            orientation="h",
            marker_color=[CLASS_COLORS[c] for c in CLASSES],
            text=[f"{p:.0%}" for p in probs],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.1%}<extra></extra>",
        )
    )
    # No axis: each bar carries its percentage; the room on the right keeps "100%" inside the chart.
    fig.update_xaxes(range=[0, 1.3], showticklabels=False, showgrid=False, zeroline=False, title=None)
    fig.update_yaxes(autorange="reversed", title=None)
    return _layout(fig, height, title, showlegend=False)


def row_normalised(matrix) -> np.ndarray:
    """Each row divided by its total (rows with no images stay 0): the share of each true class."""
    matrix = np.asarray(matrix, dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def confusion_heatmap(matrix, normalise: bool = False, height: int = 420, title: str | None = None):
    """A static confusion matrix (rows: true class, columns: predicted), counts or row shares."""
    go = graph_objects()

    counts = np.asarray(matrix, dtype=int)
    values = row_normalised(counts) if normalise else counts
    text = [[f"{v:.0%}" if normalise else f"{v:,}" for v in row] for row in values]
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=list(CLASSES),
            y=list(CLASSES),
            colorscale=CONFUSION_SCALE,
            text=text,
            texttemplate="%{text}",
            textfont={"size": 16},
            showscale=False,
            customdata=counts,
            hovertemplate="true %{y}, predicted %{x}: %{customdata:,} images<extra></extra>",
        )
    )
    fig.update_xaxes(title="predicted", side="top")
    fig.update_yaxes(title="true", autorange="reversed")
    fig = _layout(fig, height, title)
    if title:  # the title above the top axis and its "predicted" label, not on them
        fig.update_layout(margin={"t": 100}, title={"y": 0.98, "yanchor": "top"})
    return fig


def confusion_table(matrix) -> list[dict]:
    """One row per cell: true, predicted, count, share of the true class."""
    counts = np.asarray(matrix, dtype=int)
    shares = row_normalised(counts)
    return [
        {"true": t, "predicted": p, "count": int(counts[i, j]), "share": float(shares[i, j])}
        for i, t in enumerate(CLASSES)
        for j, p in enumerate(CLASSES)
    ]


CONFUSION_SELECTION = "cell"


def confusion_chart(matrix, normalise: bool = False, height: int = 380):
    """A clickable confusion matrix (Altair rects): Streamlit reports the clicked cell's true/predicted."""
    graph_objects()  # altair reads pandas too
    import altair as alt
    import pandas as pd

    table = pd.DataFrame(confusion_table(matrix))
    table["label"] = [
        f"{s:.0%}" if normalise else f"{c:,}" for c, s in zip(table["count"], table["share"], strict=True)
    ]
    value = "share" if normalise else "count"
    select = alt.selection_point(name=CONFUSION_SELECTION, fields=["true", "predicted"], on="click")
    base = alt.Chart(table).encode(
        x=alt.X("predicted:N", sort=list(CLASSES), title="predicted", axis=alt.Axis(orient="top", labelAngle=0)),
        y=alt.Y("true:N", sort=list(CLASSES), title="true"),
    )
    cells = (
        base.mark_rect(stroke="white", strokeWidth=2)
        .encode(
            color=alt.Color(f"{value}:Q", scale=alt.Scale(scheme=CONFUSION_SCALE), legend=None),
            opacity=alt.condition(select, alt.value(1.0), alt.value(0.45)),
            tooltip=[
                alt.Tooltip("true:N"),
                alt.Tooltip("predicted:N"),
                alt.Tooltip("count:Q", format=","),
                alt.Tooltip("share:Q", format=".1%", title="share of true class"),
            ],
        )
        .add_params(select)
    )
    threshold = float(table[value].max()) * 0.55
    text = base.mark_text(fontSize=16).encode(
        text="label:N",
        color=alt.condition(f"datum.{value} > {threshold}", alt.value("white"), alt.value("#1B1F24")),
    )
    return (cells + text).properties(height=height).configure_axis(labelFontSize=14, titleFontSize=14)


def _grouped_class_bars(x: list, values: dict, text, hover: str):
    """Bars grouped by `x`, one colour per class; values[class] gives one number per x. `text` formats a
    bar's label, `hover` is the hover template after the class name."""
    go = graph_objects()

    fig = go.Figure()
    for name in CLASSES:
        fig.add_bar(
            name=name,
            x=x,
            y=values[name],
            marker_color=CLASS_COLORS[name],
            text=[text(v) for v in values[name]],
            textposition="outside",
            cliponaxis=False,
            hovertemplate=f"{name} {hover}<extra></extra>",
        )
    return fig


def per_class_bars(per_class: dict, height: int = 320, title: str | None = None):
    """Precision, recall and F1 per class: bars grouped by metric, coloured by class."""
    metrics = ["precision", "recall", "f1"]
    values = {name: [float(per_class.get(name, {}).get(m, 0.0)) for m in metrics] for name in CLASSES}
    fig = _grouped_class_bars(["precision", "recall", "F1"], values, lambda v: f"{v:.0%}", "%{x}: %{y:.1%}")
    fig.update_yaxes(range=[0, 1.1], tickformat=".0%")
    return _layout(fig, height, title, barmode="group", legend={"orientation": "h", "y": -0.15})


def class_balance_bars(balance: dict, height: int = 320, title: str | None = None):
    """Images per class in each split ({split: {class: n}}): bars grouped by split, coloured by class."""
    splits = list(balance)
    values = {name: [int(balance[s].get(name, 0)) for s in splits] for name in CLASSES}
    fig = _grouped_class_bars(splits, values, lambda n: f"{n:,}", "in %{x}: %{y:,}")
    fig.update_yaxes(title="images")
    return _layout(fig, height, title, barmode="group", legend={"orientation": "h", "y": -0.15})


VALIDATION_ACCURACY_COLOR = "#D55E00"  # Okabe-Ito vermillion: apart from validation loss's blue and the classes
CROWD_ACCURACY_COLOR = "#000000"  # Okabe-Ito black, apart from the classes: the accuracy against the crowd


def training_curves(curves: list[dict], height: int = 380):
    """Loss (train and validation) and validation accuracy (against the crowd's label, where scored, and
    FER2013's labels) per epoch, side by side, each in its own colour."""
    graph_objects()
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Validation accuracy"), horizontal_spacing=0.1)
    epochs = [c.get("epoch", i) for i, c in enumerate(curves)]
    lines = (
        ("train_loss", "train loss", MUTED, 1),
        ("val_loss", "validation loss", ACCENT, 1),
        ("val_crowd_accuracy", "validation accuracy, crowd", CROWD_ACCURACY_COLOR, 2),
        ("val_accuracy", "validation accuracy, FER2013 labels", VALIDATION_ACCURACY_COLOR, 2),
    )
    for key, name, color, column in lines:
        values = [c.get(key) for c in curves]
        if any(v is not None for v in values):
            fig.add_scatter(
                x=epochs,
                y=values,
                name=name,
                mode="lines+markers",
                line={"color": color, "width": 3},
                row=1,
                col=column,
            )
    fig.update_xaxes(title="epoch")
    # One decimal: a run scored only over its last epochs spans about a point, where ".0%" repeated labels.
    fig.update_yaxes(tickformat=".1%", row=1, col=2)
    fig = _layout(
        fig,
        height,
        None,
        legend={"orientation": "h", "x": 0.5, "xanchor": "center", "y": -0.22, "yanchor": "top", "font": {"size": 15}},
    )
    # Room above for the subplot titles, below for the axis titles and the legend.
    fig.update_layout(margin={"t": 50, "b": 90})
    return fig


def reliability_diagram(
    bins: list[dict],
    height: int = 360,
    title: str | None = None,
    compare: list[dict] | None = None,
    measure: str = "accuracy",
):
    """`measure` against confidence per bin (fer.metrics.reliability_bins: accuracy; share_reliability:
    "share", the share of people choosing the class), with the perfect diagonal.

    `compare`: a second set of bins drawn as a line (e.g. before temperature scaling).
    """
    go = graph_objects()

    name = "accuracy" if measure == "accuracy" else "share of people"

    def points(rows):
        used = [b for b in rows if b.get("count") and b.get(measure) is not None]
        return used, [(b["low"] + b["high"]) / 2 for b in used]

    used, centres = points(bins)
    fig = go.Figure()
    fig.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated", line={"color": MUTED, "dash": "dash"}
    )
    fig.add_bar(
        x=centres,
        y=[b[measure] for b in used],
        width=[b["high"] - b["low"] for b in used],
        name=name,
        marker_color=ACCENT,
        opacity=0.85,
        customdata=[[b["count"], b["confidence"]] for b in used],
        hovertemplate=f"confidence %{{customdata[1]:.0%}}: {name} %{{y:.0%}} (%{{customdata[0]:,}} images)<extra></extra>",
    )
    if compare:
        used_before, centres_before = points(compare)
        fig.add_scatter(
            x=centres_before,
            y=[b[measure] for b in used_before],
            mode="lines+markers",
            name="before calibration",
            line={"color": "#D55E00"},
        )
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title="confidence")
    fig.update_yaxes(range=[0, 1], tickformat=".0%", title=name)
    return _layout(fig, height, title, legend={"orientation": "h", "y": -0.25})


def faithfulness_bars(scores: dict[str, float], height: int = 300, title: str | None = None):
    """ROAD score per saliency method (higher is more faithful), best first."""
    go = graph_objects()

    ordered = sorted(scores.items(), key=lambda item: -item[1])
    fig = go.Figure(
        go.Bar(
            x=[v for _, v in ordered],
            y=[k for k, _ in ordered],
            orientation="h",
            marker_color=[MUTED if "random" in k.lower() else ACCENT for k, _ in ordered],
            text=[score_text(v) for _, v in ordered],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:+.3f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="ROAD score (higher is more faithful)", zeroline=True)
    return _layout(fig, height, title, showlegend=False)
