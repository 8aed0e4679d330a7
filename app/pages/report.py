"""Model report: what the shipped model does, how well, where it fails, and the data it learnt from."""

import streamlit as st

from app import state, widgets
from app.plots import (
    class_balance_bars,
    confusion_heatmap,
    per_class_bars,
    reliability_diagram,
    training_curves,
)
from app.report import (
    PERCENT_FORMAT,
    calibration_lines,
    calibration_summary,
    confusion_pair,
    curves_caption,
    headline,
    model_details,
    people_caption,
    people_figure,
    per_class_rows,
    reliability_caption,
    result_sentences,
    split_metrics,
    splits_with_metrics,
    stored_reliability,
    uncertainty_numbers,
    uncertainty_summary,
)
from app.results import escape_markdown
from app.session import Key
from fer.config import CLASSES

widgets.keep(Key.REPORT_SPLIT)  # this page's settings survive a visit to another page


def metric_cards(items, per_row: int = 4) -> None:
    """Headline numbers as metric cards, a few to a row so that no label is cut short."""
    rows = -(-len(items) // per_row)
    per_row = -(-len(items) // max(rows, 1)) if items else per_row  # rows of even length: 6 as 3 + 3
    for start in range(0, len(items), per_row):
        for column, item in zip(st.columns(per_row), items[start : start + per_row], strict=False):
            column.metric(item.label, item.value, border=True)
            column.caption(item.detail)


def render() -> None:
    st.title("Model report")
    card = state.card()
    if not card:
        st.warning(
            "There is no model card (weights/model_card.json) beside the weights, so there is nothing to report. "
            "Create one with `python -m fer card --run RUN_DIR`.",
            icon=":material/description:",
        )
        return
    st.markdown(
        f"**{escape_markdown(card.get('name', 'The model'))}** recognises {', '.join(card.get('classes', CLASSES))} in faces. "
        f"Weights created {escape_markdown(card.get('created', 'on an unknown date'))}, sha256 `{str(card.get('weights_sha256', ''))[:12]}`."
    )
    size = state.weights_size()
    reliability = stored_reliability(card)
    if reliability is None and "validation" in splits_with_metrics(card):
        reliability = state.validation_reliability()
    st.download_button(
        "Download the report (HTML)",
        state.report_download(card, size, reliability),
        file_name="fer-model-report.html",
        mime="text/html",
        on_click="ignore",
        icon=":material/download:",
        type="primary",
        help="One self-contained HTML file with every chart; it opens offline and holds no dataset images.",
    )

    metric_cards(headline(card, size))
    for sentence in result_sentences(card):
        st.markdown(escape_markdown(sentence))

    if card.get("intended_use") or card.get("limitations"):
        st.header("Intended use and limitations")
        if card.get("intended_use"):
            st.info(escape_markdown(card["intended_use"]), icon=":material/info:")
        for item in card.get("limitations") or []:
            st.markdown(f"- {escape_markdown(item)}")

    if card.get("curves"):
        st.header("Training curves")
        st.caption(escape_markdown(curves_caption(card)))
        st.plotly_chart(training_curves(card["curves"]), key="report-curves")

    splits = splits_with_metrics(card)
    if splits:
        st.header("Results by class")
        split = st.radio("Split", splits, horizontal=True, key=Key.REPORT_SPLIT)
        metrics = split_metrics(card, split)
        st.caption(
            f"{metrics.get('n', 0):,} images of the {split} split, against {metrics.get('truth', 'their labels')}. "
            "Rows: the true class; columns: what the model predicted."
        )
        left, right = st.columns(2, gap="large")
        left.plotly_chart(confusion_heatmap(metrics["confusion_matrix"], title="Counts"), key="report-confusion")
        right.plotly_chart(
            confusion_heatmap(metrics["confusion_matrix"], normalise=True, title="Share of each true class"),
            key="report-confusion-normalised",
        )
        pair = confusion_pair(metrics)
        if pair:
            st.markdown(escape_markdown(pair))
        left, right = st.columns([3, 2], gap="large")
        if metrics.get("per_class"):
            left.plotly_chart(per_class_bars(metrics["per_class"]), key="report-per-class")
            right.dataframe(
                per_class_rows(metrics, in_percent=True),
                hide_index=True,
                column_config={
                    k: st.column_config.NumberColumn(k, format=PERCENT_FORMAT) for k in ("precision", "recall", "F1")
                },
            )

    st.header("Calibration")
    summary = calibration_summary(card)
    if summary:
        st.markdown(escape_markdown(summary))
    lines = calibration_lines(card)
    if lines:
        st.markdown("Expected calibration error (ECE, 15 bins) and distance to the crowd's votes; lower is better:")
        st.markdown("\n".join(f"- {escape_markdown(line)}" for line in lines))
    if reliability:
        st.markdown(escape_markdown(reliability_caption(reliability)))
        st.plotly_chart(
            reliability_diagram(reliability["bins"], compare=reliability.get("bins_before")), key="report-reliability"
        )
    else:
        st.info(
            "The reliability diagram is computed from the validation predictions: open the Dataset page on the "
            "validation split once, then come back.",
            icon=":material/insights:",
        )
    people = people_caption(card)
    if people:
        st.markdown(escape_markdown(people))
        st.plotly_chart(people_figure(card), key="report-people")
    uncertain = uncertainty_summary(card)
    if uncertain:
        st.header("When the model is unsure")
        metric_cards(uncertainty_numbers(card))
        st.markdown(" ".join(escape_markdown(line) for line in uncertain))

    data_card = card.get("data_card") or {}
    if data_card:
        st.header("Data card")
        for key, label in (("source", "Source"), ("soft_labels", "Soft labels"), ("licence", "Licence")):
            if data_card.get(key):
                st.markdown(f"**{label}:** {escape_markdown(data_card[key])}")
        if data_card.get("class_balance"):
            st.plotly_chart(class_balance_bars(data_card["class_balance"]), key="report-balance")
        if data_card.get("defects"):
            st.markdown("**Known defects**")
            for defect in data_card["defects"]:
                st.markdown(f"- {escape_markdown(defect)}")

    details = model_details(card)
    if details:
        st.header("Model details")
        for label, value in details:
            st.markdown(f"**{label}:** {escape_markdown(value)}")


widgets.run(render)
