"""Predict (home): photos in, every face boxed with its emotion, probabilities and saliency map."""

import streamlit as st

from fer.data import CLASSES
from fer.explain import overlay
from fer.faces import MAX_FILE_BYTES
from fer.plots import probability_bars
from fer.results import (
    SAMPLE_CREDIT,
    SAMPLE_NAME,
    UNCERTAIN_TEXT,
    annotate,
    escape_markdown,
    face_title,
    faces_table,
    is_uncertain,
    png_bytes,
    results_csv,
    results_json,
)
from pages import common

common.use_navigation()  # before anything is drawn: see common.use_navigation

SOURCES = ("Upload photos", "Take a photo", "Try a sample photo")
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif"]
MAX_FACE_CARDS = 12  # more faces are still in the table and the downloads


def photo_inputs() -> list[tuple[str, bytes]]:
    """(name, bytes) of every photo the user gave, kept in memory only."""
    source = st.radio("Photo source", SOURCES, horizontal=True, key="predict_source")
    if source == "Upload photos":
        files = st.file_uploader(
            "Upload photos of faces",
            type=UPLOAD_TYPES,
            accept_multiple_files=True,
            key="uploads",
            help=f"JPEG, PNG, WebP, BMP or GIF, up to {MAX_FILE_BYTES // 2**20} MB each. Several at once are fine.",
        )
        return [(file.name, file.getvalue()) for file in files or []]
    if source == "Take a photo":
        shot = st.camera_input(
            "Camera",
            key="camera",
            help="Allow the browser to use your camera, then press the button to take the photo.",
        )
        return [("camera.jpg", shot.getvalue())] if shot else []
    st.caption(SAMPLE_CREDIT)
    return [(SAMPLE_NAME, common.sample_photo())]


def whole_image_button(key: str) -> None:
    def remember():
        st.session_state.setdefault("whole_image", set()).add(key)

    st.button(
        "Classify the whole image as one face", key=f"whole-{key}", on_click=remember, icon=":material/crop_free:"
    )


def predict_all(photos):
    whole = st.session_state.get("whole_image", set())
    results = []
    for name, data in photos:
        key = common.digest(data)
        results.append((key, common.predict_photo(data, name, detect=key not in whole)))
    return results


def face_cards(key: str, result, settings) -> None:
    faces = result.faces[:MAX_FACE_CARDS]
    if len(result.faces) > MAX_FACE_CARDS:
        st.caption(
            f"Showing the first {MAX_FACE_CARDS} of {len(result.faces)} faces; all are in the table and the downloads."
        )
    targets = common.targets_for([f.probs for f in faces], settings["target"])
    maps = common.cams([f.face for f in faces], settings["method"], targets, settings["layer"])
    per_row = min(3, max(2, len(faces)))
    for start in range(0, len(faces), per_row):
        columns = st.columns(per_row, gap="medium")
        row = zip(columns, faces[start : start + per_row], targets[start:], maps[start:], strict=False)
        for column, face, target, cam in row:
            with column, st.container(border=True):
                st.subheader(face_title(face))
                if is_uncertain(face):
                    st.badge(UNCERTAIN_TEXT, icon=":material/help:", color="orange")
                seen, explained = st.columns(2)
                seen.image(overlay(face.face, cam, 0.0), caption="what the model saw", width="stretch")
                explained.image(
                    overlay(face.face, cam, settings["opacity"]),
                    caption=f"{settings['method']} for {CLASSES[target]}",
                    width="stretch",
                )
                st.plotly_chart(
                    probability_bars(face.probs, height=170),
                    key=f"probs-{key}-{face.index}",
                    config={"displayModeBar": False},
                )


def photo_view(key: str, result, settings, single: bool = True) -> None:
    """One photo in full: the annotated image, notes, downloads, then a card per face."""
    name = escape_markdown(result.file)
    if result.error:
        st.error(escape_markdown(result.error), icon=":material/broken_image:")
        return
    annotated = annotate(result)
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.image(annotated, caption=name, width="stretch")
    with right:
        found = len(result.faces)
        if found:
            whole = key in st.session_state.get("whole_image", set())
            st.subheader("Whole image classified as one face" if whole else f"{found} face{'s' * (found != 1)} found")
            for face in result.faces[:MAX_FACE_CARDS]:
                badge = f" · {UNCERTAIN_TEXT}" if is_uncertain(face) else ""
                st.markdown(f"**{face.index + 1}.** {face.label} ({face.confidence:.0%}){badge}")
        else:
            st.subheader("No face found")
            st.warning(
                "The face detector found no face in this photo (it looks for frontal faces that are not too small). "
                "You can still classify the whole image as if it were one face.",
                icon=":material/search_off:",
            )
            whole_image_button(key)
        for note in result.notes:
            if note != "no face found":
                st.caption(escape_markdown(note))
        stem = result.file.rsplit(".", 1)[0] or "photo"
        st.download_button(
            "Download annotated image (PNG)",
            png_bytes(annotated),
            file_name=f"{stem}-annotated.png",
            mime="image/png",
            key=f"png-{key}",
            on_click="ignore",
            icon=":material/download:",
        )
        if result.faces and single:
            downloads([result], key)
    if result.faces:
        face_cards(key, result, settings)


def downloads(results, key: str) -> None:
    with st.container(horizontal=True):
        st.download_button(
            "Download results (CSV)",
            results_csv(results),
            file_name="fer-results.csv",
            mime="text/csv",
            key=f"csv-{key}",
            on_click="ignore",
            icon=":material/table:",
        )
        st.download_button(
            "Download results (JSON)",
            results_json(results),
            file_name="fer-results.json",
            mime="application/json",
            key=f"json-{key}",
            on_click="ignore",
            icon=":material/data_object:",
        )


def gallery(keyed) -> None:
    """Several photos: a compact gallery and one table of every face."""
    st.subheader(f"{len(keyed)} photos")
    per_row = 4
    for start in range(0, len(keyed), per_row):
        for column, (_, result) in zip(st.columns(per_row), keyed[start : start + per_row], strict=False):
            with column:
                if result.error:
                    st.error(f"{escape_markdown(result.file)}: cannot be read", icon=":material/broken_image:")
                    continue
                found = len(result.faces)
                st.image(
                    annotate(result, max_side=480),
                    caption=f"{escape_markdown(result.file)}: {found} face{'s' * (found != 1)}",
                    width="stretch",
                )
    results = [result for _, result in keyed]
    st.subheader("All faces")
    table = faces_table(results)
    if table.empty:
        st.info("No face was found in these photos. Open a photo below to classify it as a whole.")
    else:
        st.dataframe(
            table,
            hide_index=True,
            column_config={
                "confidence": st.column_config.ProgressColumn("confidence", format="percent", min_value=0, max_value=1),
                **{c: st.column_config.NumberColumn(c, format="percent") for c in CLASSES},
            },
        )
    downloads(results, "all")


def render() -> None:
    st.title("Predict emotions in a photo")
    st.markdown(
        "Drop in photos or take one: every face is boxed and numbered, with its expression, the four probabilities and where the model looked."
    )
    settings = common.cam_settings()
    photos = photo_inputs()
    if not photos:
        st.info(
            "Upload one or more photos, take one with your camera, or pick the sample photo above to see the app at work.",
            icon=":material/add_photo_alternate:",
        )
        return
    with st.spinner("Finding and classifying faces..."):
        keyed = predict_all(photos)
    st.session_state["predict_faces"] = [
        {"title": f"{result.file}, face {face.index + 1}", "face": face.face, "probs": face.probs}
        for _, result in keyed
        for face in result.faces
    ][:50]
    if len(keyed) == 1:
        key, result = keyed[0]
        photo_view(key, result, settings)
        return
    gallery(keyed)
    names = [f"{i + 1}. {result.file}" for i, (_, result) in enumerate(keyed)]
    chosen = st.selectbox("Photo to inspect", range(len(keyed)), format_func=lambda i: names[i], key="inspect_photo")
    key, result = keyed[chosen if chosen is not None and chosen < len(keyed) else 0]
    st.divider()
    photo_view(key, result, settings, single=False)


common.run(render)
