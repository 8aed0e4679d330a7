"""Dataset: browse a split through the model's eyes, dig into the confusion matrix, spot bad labels."""

import numpy as np
import streamlit as st

from app import dataset, session, state, widgets
from app.dataset import ANY
from app.plots import (
    CONFUSION_SELECTION,
    class_balance_bars,
    confusion_chart,
    confusion_heatmap,
    per_class_bars,
)
from app.report import PERCENT_FORMAT, per_class_rows, split_metrics, splits_with_metrics, truths
from app.results import escape_markdown
from app.session import Key
from fer.browse import VERDICTS
from fer.config import CLASSES, SPLITS
from fer.explain import DEFAULT_METHOD, overlay

widgets.keep(
    *(Key.DATA_DIR, Key.DS_SPLIT, Key.DS_VIEW, Key.DS_TRUE, Key.DS_PRED, Key.DS_VERDICT, Key.DS_FLAGGED),
    *(Key.DS_CAMS, Key.DS_PAGE, Key.DS_CARD_SPLIT, Key.DS_CARD_VIEW, Key.DS_TRUTH),
)  # this page's settings survive a visit to another page

PAGE_SIZE = 24
PER_ROW = 8
VIEWS = ("Counts", "Share of true class")
TRUTHS = {"crowd": "Crowd (ten people per face)", "folder": "Folder label (FER2013, one person)"}


def dataset_setting(problem: str | None) -> None:
    """Where the images come from; the only place that shows server paths, and the folder field where allowed."""
    with st.expander("Dataset location", expanded=problem is not None, icon=":material/folder_open:"):
        if problem:
            st.markdown(escape_markdown(problem))
        st.caption(
            "The dataset comes from `FER_DATA_DIR`, set where the server starts: "
            "`FER_DATA_DIR=/path/to/Facial_emotion_images streamlit run streamlit_app.py` "
            "(without it, ../shared/data/Facial_emotion_images beside the app)."
        )
        if not state.data_dir_setting_allowed():
            st.caption(
                "To choose the folder on this page instead, start the server with `FER_ALLOW_DATA_DIR_SETTING=1` "
                "as well (only where you trust everyone who can open the app: they could point it at any folder)."
            )
            return
        st.text_input(
            "Dataset folder",
            key=Key.DATA_DIR,
            placeholder=state.data_dir_placeholder(),
            help=f"A folder with {'/'.join(SPLITS)} split folders, each holding {'/'.join(CLASSES)} folders "
            "(or just the class folders). Empty: FER_DATA_DIR, else ../shared/data/Facial_emotion_images.",
        )
        st.caption(
            "This field is shown because the server was started with `FER_ALLOW_DATA_DIR_SETTING=1`: anyone "
            "using this app can point it at any folder the server can read. Leave that variable unset on a shared server."
        )


def without_dataset() -> None:
    """No images: show what the model card stored for the shipped weights, and how to add a dataset."""
    st.info(
        "No dataset found, so the images cannot be browsed. The server reads it from the folder in **FER_DATA_DIR**, "
        "set where the app is started (see **Dataset location** above). "
        "Meanwhile, here are the results stored in the model card for the shipped weights.",
        icon=":material/folder_off:",
    )
    card = state.card() or {}
    splits = splits_with_metrics(card)
    if not splits:
        st.warning("The model card has no stored metrics either: train and card the model with `python -m fer card`.")
        return
    st.header("Stored results")
    split = st.radio("Split", splits, horizontal=True, key=Key.DS_CARD_SPLIT)
    truth = truth_setting(truths(card, split))
    metrics = split_metrics(card, split, truth)
    show_headline(metrics, flagged=None)
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("Confusion matrix")
        normalise = st.radio("Show", VIEWS, horizontal=True, key=Key.DS_CARD_VIEW) == VIEWS[1]
        st.plotly_chart(confusion_heatmap(metrics["confusion_matrix"], normalise=normalise), key="card-confusion")
    with right:
        st.subheader("Per-class precision, recall and F1")
        st.plotly_chart(per_class_bars(metrics["per_class"]), key="card-per-class")
    balance = (card.get("data_card") or {}).get("class_balance")
    if balance:
        st.subheader("Class balance")
        st.plotly_chart(class_balance_bars(balance), key="card-balance")


def show_headline(metrics: dict, flagged: int | None, unlabelled: int | None = None) -> None:
    columns = st.columns(5 if flagged is not None else 4)
    low, high = metrics.get("accuracy_interval") or (None, None)
    columns[0].metric(
        "Images",
        f"{metrics['n']:,}",
        help=f"{unlabelled:,} more faces have no crowd label (a tie, another expression, 'unknown' or 'not a face')."
        if unlabelled
        else None,
    )
    columns[1].metric(
        "Accuracy",
        f"{metrics['accuracy']:.1%}",
        help=f"95% interval {low:.1%}–{high:.1%} (Wilson)." if low is not None else None,
    )
    columns[2].metric("Macro F1", f"{metrics['macro_f1']:.1%}")
    columns[3].metric(
        "Calibration error (ECE)",
        f"{metrics['ece']:.1%}",
        help="Lower is better: confidence that matches accuracy. On validation this is in-sample (the softmax "
        "temperature was fitted there); the Model report has the cross-fitted number.",
    )
    if flagged is not None:
        columns[4].metric("Flagged images", f"{flagged:,}", help="Exact pixel duplicates or conflicting labels.")


def truth_setting(available) -> str:
    """Which labels count as the truth: the crowd's (the default, where there are votes) or the folder's."""
    available = [t for t in TRUTHS if t in available]
    session.keep_within(Key.DS_TRUTH, available, available[0])
    return st.radio(
        "Truth",
        available,
        horizontal=True,
        key=Key.DS_TRUTH,
        format_func=TRUTHS.get,
        help="The crowd's label is the most-voted of the ten FERPlus votes per face (ten people), where it is one "
        "of the four classes; the folder label is FER2013's original label, given by one person.",
    )


def confusion_section(metrics: dict, split: str) -> None:
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("Confusion matrix")
        normalise = st.radio("Show", VIEWS, horizontal=True, key=Key.DS_VIEW) == VIEWS[1]
        st.altair_chart(
            confusion_chart(metrics["confusion_matrix"], normalise=normalise),
            key=Key.DS_CONFUSION,
            on_select=dataset.select_cell,
            selection_mode=CONFUSION_SELECTION,
            width="stretch",
        )
        st.caption(
            "Rows: true class, columns: prediction. Click a cell (or pick the classes below) to see exactly those images."
        )
    with right:
        st.subheader("Per-class precision, recall and F1")
        st.plotly_chart(per_class_bars(metrics["per_class"], height=300), key="ds-per-class")
        st.dataframe(
            per_class_rows(metrics, in_percent=True),
            hide_index=True,
            column_config={
                k: st.column_config.NumberColumn(k, format=PERCENT_FORMAT) for k in ("precision", "recall", "F1")
            },
        )


def balance_section(root) -> None:
    st.subheader("Class balance")
    st.plotly_chart(class_balance_bars(state.class_balance(str(root))), key="ds-balance")


def filters() -> dict:
    columns = st.columns([1, 1, 1.6, 1.1, 1.3], vertical_alignment="bottom")
    true = columns[0].selectbox("True class", [ANY, *CLASSES], key=Key.DS_TRUE, on_change=dataset.first_page)
    predicted = columns[1].selectbox("Predicted class", [ANY, *CLASSES], key=Key.DS_PRED, on_change=dataset.first_page)
    verdict = columns[2].selectbox(
        "Verdict",
        VERDICTS,
        key=Key.DS_VERDICT,
        on_change=dataset.first_page,
        help="Most confident mistakes: wrong, highest confidence first. Least confident: all, lowest confidence first.",
    )
    flagged = columns[3].toggle(
        "Only flagged", key=Key.DS_FLAGGED, on_change=dataset.first_page, help="Exact duplicates or conflicting labels."
    )
    cams = columns[4].toggle(
        "Show Grad-CAM", key=Key.DS_CAMS, help="Overlay the Grad-CAM map of the predicted class on each image."
    )
    return {
        "true": None if true == ANY else true,
        "predicted": None if predicted == ANY else predicted,
        "verdict": verdict,
        "flagged": flagged,
        "cams": cams,
    }


def browse_section(data: dataset.Split, labels) -> None:
    """`labels`: the chosen truth's (below 0 where the crowd gave none)."""
    st.subheader("Browse images")
    chosen = filters()
    index = dataset.select(data, labels, chosen)
    st.markdown(f"**{len(index):,} images** match: {dataset.describe(chosen)}.")
    if len(index) == 0:
        st.info(
            "No image matches these filters: widen them, or click another cell of the confusion matrix.",
            icon=":material/filter_alt_off:",
        )
        return
    pages = max(1, -(-len(index) // PAGE_SIZE))
    session.keep_within(Key.DS_PAGE, range(1, pages + 1), 1)
    page = st.number_input(f"Page (of {pages})", 1, pages, key=Key.DS_PAGE) if pages > 1 else 1
    shown = index[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    faces, probs = data.faces, data.probs
    preds = probs.argmax(axis=1)
    if chosen["cams"]:  # Grad-CAM on the last stage, as the toggle says (fast: a page of 24 in a few seconds)
        maps = state.cams(faces.images[shown], DEFAULT_METHOD, preds[shown], widgets.layer_choices()[0])
    for start in range(0, len(shown), PER_ROW):
        for offset, column in enumerate(st.columns(PER_ROW)):
            if start + offset >= len(shown):
                break
            i = shown[start + offset]
            cam = maps[start + offset] if chosen["cams"] else np.zeros((48, 48))
            mark = " :material/warning:" if data.flags[i] else ""
            column.image(
                overlay(faces.images[i], cam, 0.5 if chosen["cams"] else 0.0, size=144),
                caption=f"{dataset.true_name(labels[i])} → {CLASSES[preds[i]]} {probs[i].max():.0%}{mark}",
                width="stretch",
            )
            if data.votes is not None:
                column.caption(f"crowd: {dataset.vote_text(data.votes[i])}")
    st.caption(
        "Caption: true class → predicted class and its probability; :material/warning: marks a flagged image. "
        + ("Below each face: the ten FERPlus votes." if data.votes is not None else "")
    )
    st.dataframe(  # percentages (85.2 for 85.2%), shown with one decimal like every table of the app
        dataset.table(data, labels, index),
        hide_index=True,
        key=Key.DS_TABLE,
        column_config={
            "confidence": st.column_config.ProgressColumn(
                "confidence", format=PERCENT_FORMAT, min_value=0, max_value=100
            ),
            **{c: st.column_config.NumberColumn(c, format=PERCENT_FORMAT) for c in CLASSES},
        },
    )


def render() -> None:
    st.title("Dataset explorer")
    st.markdown(
        "Where is the model right and wrong? Pick a split, click a cell of the confusion matrix, and look at the faces."
    )
    root, problem = state.data_root()
    dataset_setting(problem)
    if root is None:
        without_dataset()  # the stored results, as the weights are served: no switch to offer
        return
    tta = widgets.tta_setting()  # the split is classified as the other pages classify a face
    splits = state.splits_in(root)
    session.keep_within(Key.DS_SPLIT, splits, splits[splits.index("validation") if "validation" in splits else 0])
    split = st.radio("Split", splits, horizontal=True, key=Key.DS_SPLIT, format_func=lambda s: s or "all images")
    with st.spinner(f"Loading the {split or 'dataset'} images..."):
        state.load_split(str(root), split)
    data = dataset.scored(root, split, tta)
    truth = truth_setting(data.truths)
    labels = data.labels(truth)
    metrics = dataset.metrics(labels, data.probs)
    show_headline(metrics, flagged=data.flagged, unlabelled=int((labels < 0).sum()))
    # The folder's name only: the server's full path is for the Dataset location expander.
    folder = f"{root.name}/{split}" if split else root.name
    st.caption(
        f"{escape_markdown(folder)}: {data.flagged:,} images are exact pixel duplicates of another image "
        f"({data.conflicting:,} of them with conflicting labels)."
    )
    confusion_section(metrics, split)
    balance_section(root)
    browse_section(data, labels)


widgets.run(render)
