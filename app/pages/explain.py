"""Explain: one face, every saliency method side by side, each with a faithfulness score, and one map per class."""

import numpy as np
import streamlit as st

from app import session, state, widgets
from app.plots import faithfulness_bars, probability_bars
from app.results import SAMPLE_CREDIT, SAMPLE_NAME, escape_markdown, in_reading_order
from app.session import Key
from fer.config import CLASSES
from fer.explain import METHOD_HELP, METHODS, PER_CLASS_METHODS, RANDOM_MAPS, RANDOM_MARGIN, most_faithful, overlay
from fer.images import MAX_FILE_BYTES
from fer.metrics import score_text

widgets.keep(
    *(Key.EXPLAIN_SOURCE, Key.EXPLAIN_PREDICT_FACE, Key.EXPLAIN_FACE_NUMBER, Key.EXPLAIN_SPLIT, Key.EXPLAIN_CLASS),
    *(Key.EXPLAIN_NUMBER, Key.EXPLAIN_TARGET, Key.EXPLAIN_LAYER, Key.EXPLAIN_OPACITY, Key.EXPLAIN_CLASS_METHOD),
)  # this page's settings survive a visit to another page

HELP = """
**What a saliency map shows.** The colours mark the pixels that most changed the model's score for the
chosen class: warm means "this region pushed the score up". Different methods ask that question in
different ways, so their maps differ.

**What it does not show.** A map is not a reason in the human sense: it does not say *why* a smile
means happy, only where the model's evidence sits. A bright region can also be a shortcut the model
learnt from the training photos (lighting, hair, image borders). A confident prediction with a sensible
map can still be wrong.

**Which map to trust.** The **ROAD score** tests each map against the model itself: the pixels the map
calls important are removed (filled in from their neighbours) and the model is asked again. A faithful
map loses a lot of confidence when its top pixels go and little when its bottom pixels go. The score is
half the gap between those two losses, as a probability (+0.45: removing the top pixels costs 90 points
more than removing the bottom ones). Random maps can score well above or below 0, depending on the face,
so each face gets its own baseline: the best of several random maps, shown last. Trust only the maps that
beat it; when none does, no map says more than chance on that face.

**Why some maps are identical.** On the last layer, Grad-CAM, HiRes-CAM and XGrad-CAM give the same
map for this network: it averages that layer over the whole face before its single output layer, so
their different ways of weighting the gradients coincide. Pick an earlier layer to see them differ.
"""


def points(change: float) -> str:
    """A change in probability as signed points ('-83', '+0'), never '-0'."""
    return f"{round(change * 100):+d}"


def choose_face(tta: bool):
    """(title, face 48x48, probs) from the Predict page, an upload, the sample photo or the dataset;
    `tta`: the probabilities also read the mirrored face (the sidebar switch)."""
    from_predict = session.faces_to_explain()
    sources = (["Faces from the Predict page"] if from_predict else []) + ["Upload a photo", "Sample photo"]
    root, _ = state.data_root()
    if root is not None:
        sources.append("A dataset image")
    source = st.radio("Face to explain", sources, horizontal=True, key=Key.EXPLAIN_SOURCE)
    if source == "Faces from the Predict page":
        index = st.selectbox(
            "Face", range(len(from_predict)), format_func=lambda i: from_predict[i].title, key=Key.EXPLAIN_PREDICT_FACE
        )
        chosen = from_predict[index or 0]
        # Re-read with the current switch: it may have changed since the Predict page ran (one face: milliseconds).
        return chosen.title, chosen.face, state.face_probs(chosen.face, tta)
    if source == "A dataset image":
        return dataset_face(root, tta)
    if source == "Upload a photo":
        # No `type=` list: another kind of file reaches fer, which says what is wrong with it.
        file = st.file_uploader(
            "Upload a photo with a face",
            key=Key.EXPLAIN_UPLOAD,
            help=f"A JPEG, PNG, WebP, BMP or GIF photo up to {MAX_FILE_BYTES // 2**20} MB.",
        )
        if file is None:
            return None
        name, data = file.name, file.getvalue()
    else:
        st.caption(SAMPLE_CREDIT)
        name, data = SAMPLE_NAME, state.sample_photo()
    result = in_reading_order(state.predict_photo(data, name, tta=tta))  # faces numbered as on the Predict page
    if result.error:
        st.error(escape_markdown(result.error), icon=":material/broken_image:")
        return None
    if not result.faces:
        st.warning(
            "No face found in this photo: the whole image is explained as one face.", icon=":material/search_off:"
        )
        result = in_reading_order(state.predict_photo(data, name, detect=False, tta=tta))
    face = result.faces[0]
    if len(result.faces) > 1:
        index = st.selectbox(
            "Face",
            range(len(result.faces)),
            format_func=lambda i: f"face {i + 1}: {result.faces[i].label}",
            key=Key.EXPLAIN_FACE_NUMBER,
        )
        face = result.faces[index or 0]
    return f"{result.file}, face {face.index + 1}", face.face, face.probs


def dataset_face(root, tta: bool):
    splits = state.splits_in(root)
    left, middle, right = st.columns(3)
    default = splits.index("validation") if "validation" in splits else 0
    split = left.selectbox("Split", splits, index=default, format_func=lambda s: s or "all", key=Key.EXPLAIN_SPLIT)
    faces = state.load_split(str(root), split)
    name = middle.selectbox("True class", CLASSES, key=Key.EXPLAIN_CLASS)
    index = state.class_images(str(root), split, name)
    if len(index) == 0:
        st.info(f"No {name} images in this split.")
        return None
    number = right.number_input(f"Image (1 to {len(index)})", 1, len(index), key=Key.EXPLAIN_NUMBER)
    i = int(index[int(number) - 1])
    return f"{faces.keys[i]} (true: {name})", faces.images[i], state.face_probs(faces.images[i], tta)


def render() -> None:
    st.title("Explain a prediction")
    st.markdown(
        "One face: every saliency method side by side, each scored on how faithfully it follows the model, "
        "and where the evidence for each expression sits."
    )
    with st.expander("How to read these maps", icon=":material/help:"):
        st.markdown(HELP)
    tta = widgets.tta_setting()
    chosen = choose_face(tta)
    if chosen is None:
        st.info(
            "Choose a face above: upload a photo, use the sample photo, or classify photos on the Predict page first.",
            icon=":material/face:",
        )
        return
    title, face, probs = chosen
    left, middle, right = st.columns([1, 2, 1])
    target_name = left.selectbox("Explain which class", [widgets.PREDICTED, *CLASSES], key=Key.EXPLAIN_TARGET)
    target = widgets.targets_for(probs, target_name)[0]
    layers = widgets.layer_choices()
    layer = middle.selectbox("Layer", layers, key=Key.EXPLAIN_LAYER)
    session.default(Key.EXPLAIN_OPACITY, 0.5)  # the default in the state, not the widget: kept across pages
    opacity = right.slider("Heat-map opacity", 0.0, 1.0, step=0.05, key=Key.EXPLAIN_OPACITY)

    st.subheader(escape_markdown(title))
    face_column, chart_column = st.columns([1, 3], vertical_alignment="center")
    face_column.image(overlay(face, np.zeros(face.shape), 0.0), caption="the 48x48 face the model saw", width="stretch")
    with chart_column:
        predicted = CLASSES[int(np.argmax(probs))]
        st.markdown(f"Predicted **{predicted}** ({float(np.max(probs)):.0%}); the maps explain **{CLASSES[target]}**.")
        st.plotly_chart(probability_bars(probs, height=180), key="explain-probs", config={"displayModeBar": False})
        if tta:
            st.caption(
                "Probabilities average the face and its mirror image (sidebar switch); "
                "the maps explain the model on the face as it is."
            )

    with st.spinner("Computing every saliency map and its faithfulness score (Score-CAM takes a few seconds)..."):
        maps, scores, baseline = state.all_methods(np.asarray(face, dtype=np.uint8), target, layer)
    # Decided on the rounded scores people see: methods showing the same number get the same badge, and
    # only if they beat the random maps' bar (fer.explain.random_bar).
    best = most_faithful({m: scores[m]["road"] for m in METHODS}, baseline["bar"])
    random_maps = (
        f"{baseline['count']} random maps scored {score_text(baseline['mean'])} on average on this face, give or "
        f"take {baseline['sd']:.2f}"
    )
    st.subheader("Saliency maps")
    if best:
        st.caption(
            f"{random_maps}: a method is marked **most faithful here** only above {score_text(baseline['bar'])}, "
            f"{RANDOM_MARGIN} spreads above their average (a map no better than random gets there less than 1 time "
            "in 100)."
        )
    else:
        st.warning(
            f"**No map beat a random one on this face.** {random_maps}; no method scored clearly above them "
            f"(above {score_text(baseline['bar'])}). Here the maps show where the model looked no better than "
            "chance would: do not read their bright regions as what the prediction rests on.",
            icon=":material/casino:",
        )
    names = list(maps)
    per_row = 4
    for start in range(0, len(names), per_row):
        for column, name in zip(st.columns(per_row, gap="medium"), names[start : start + per_row], strict=False):
            with column, st.container(border=True):
                score = scores[name]
                st.markdown(f"**{name}**")
                st.image(overlay(face, maps[name], opacity), width="stretch")
                st.metric(
                    "ROAD score",
                    score_text(score["road"]),
                    help="Half the gap between the confidence lost without the top pixels and without the bottom "
                    "ones, as a probability (+0.45: a 90-point gap). Higher is more faithful; about 0 is no better "
                    "than chance.",
                )
                st.caption(
                    f"Confidence when its top pixels are removed: {points(-score['drop_most'])} points; "
                    f"its bottom pixels: {points(-score['drop_least'])}."
                )
                if name in best:
                    st.badge("most faithful here", icon=":material/verified:", color="green")
                st.caption(
                    METHOD_HELP.get(name, f"The best of {RANDOM_MAPS} smooth random maps on this face: chance alone.")
                )
    st.subheader("Faithfulness compared")
    st.plotly_chart(
        faithfulness_bars({name: s["road"] for name, s in scores.items()}),
        key="explain-faithfulness",
        config={"displayModeBar": False},
    )
    st.caption(
        "ROAD (Remove And Debias, pytorch-grad-cam's metrics.road) averaged over removing 20, 40, 60 and 80% of the pixels. "
        "Scores describe this face only: compare methods on several faces before trusting one in general."
    )
    evidence_per_class(face, probs, layer, opacity)


def evidence_per_class(face: np.ndarray, probs: np.ndarray, layer: str, opacity: float) -> None:
    """The face explained once for each class: what tips the balance between the likeliest two."""
    st.subheader("Evidence for each expression")
    runner_up, top = np.argsort(probs)[-2:]
    st.markdown(
        f"The same face explained once for each class. Likeliest: **{CLASSES[top]}** ({probs[top]:.0%}), "
        f"then **{CLASSES[runner_up]}** ({probs[runner_up]:.0%}); compare their maps to see what tips the balance."
    )
    method = st.columns([1, 2])[0].selectbox(
        "Method",
        PER_CLASS_METHODS,
        key=Key.EXPLAIN_CLASS_METHOD,
        help="Eigen-CAM is not offered here: it ignores the class and draws the same map for all four.",
    )
    with st.spinner(f"Computing {method} for each class..."):
        maps = state.maps_per_class(np.asarray(face, dtype=np.uint8), method, layer)
    for k, (column, name) in enumerate(zip(st.columns(len(CLASSES), gap="medium"), CLASSES, strict=True)):
        with column, st.container(border=True):
            st.markdown(f"**{name}** {probs[k]:.0%}")
            st.image(overlay(face, maps[k], opacity), width="stretch")
            if k == top:
                st.badge("predicted", icon=":material/check:", color="blue")
            elif not maps[k].any():
                st.caption("No region speaks for this class.")
    st.caption(
        "Each map is scaled to its own maximum, so it shows where a class's evidence sits, not how strong it "
        "is: the probabilities say that."
    )


widgets.run(render)
