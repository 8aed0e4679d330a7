"""Predict (home): photos in, every face boxed with its emotion, probabilities and saliency map.

Every upload, one photo or many or .zip archives of photos, goes through fer.batch with a progress
bar (app.state.classify); several photos give a gallery, one table of every face and one CSV. All of
it stays in memory.
"""

from functools import partial

import streamlit as st

from app import session, state, widgets
from app.plots import probability_bars
from app.report import PERCENT_FORMAT
from app.results import (
    PEOPLE_HELP,
    SAMPLE_CREDIT,
    SAMPLE_NAME,
    UNCERTAIN_TEXT,
    Photo,
    escape_markdown,
    face_title,
    faces_table,
    is_uncertain,
    jpeg_to_png,
    people_would_say,
)
from app.session import FaceToExplain, Key, Source
from fer.batch import MAX_ZIP_MEMBERS
from fer.config import CLASSES
from fer.explain import overlay
from fer.images import MAX_FILE_BYTES
from fer.record import PROB_COLUMNS, csv_bytes, results_json

widgets.keep(Key.PREDICT_SOURCE)  # this page's settings survive a visit to another page

MAX_FACE_CARDS = 12  # more faces are still in the table and the downloads
GALLERY_SIZE = 48  # photos shown in the gallery; every photo is in the table, the downloads and the list
MAX_WARNINGS = 20  # files that could not be read, listed one by one; all are in the CSV's error column
UPLOAD_HELP = (
    f"JPEG, PNG, WebP, BMP or GIF photos up to {MAX_FILE_BYTES // 2**20} MB each, or .zip archives of "
    f"photos (up to {MAX_ZIP_MEMBERS:,} files each). Several at once are fine; any other file gets a message "
    "saying why it cannot be read."
)


def photo_inputs() -> list[tuple[str, bytes]]:
    """(name, bytes) of every file the user gave, kept in memory only."""
    source = st.radio("Photo source", Source.ALL, horizontal=True, key=Key.PREDICT_SOURCE)
    if source == Source.UPLOAD:
        # No `type=` list: a file of another type reaches fer, which says what is wrong with it,
        # instead of being refused by the widget without a word about why.
        files = st.file_uploader(
            "Upload photos of faces, or .zip archives of photos",
            accept_multiple_files=True,
            key=Key.UPLOADS,
            help=UPLOAD_HELP,
            on_change=partial(session.forget_inputs, source),
        )
        return kept_across_pages(source, [(file.name, file.getvalue()) for file in files or []])
    if source == Source.CAMERA:
        shot = st.camera_input(
            "Camera",
            key=Key.CAMERA,
            help="Allow the browser to use your camera, then press the button to take the photo.",
            on_change=partial(session.forget_inputs, source),
        )
        return kept_across_pages(source, [("camera.jpg", shot.getvalue())] if shot else [])
    st.caption(SAMPLE_CREDIT)
    return [(SAMPLE_NAME, state.sample_photo())]


def kept_across_pages(source: str, given: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The files given, or those given before a visit to another page.

    Streamlit empties upload and camera widgets when the user opens another page, and they cannot be
    refilled; the files are kept in this session's memory (never on disk) until the user changes them
    (the widgets' on_change forgets them).
    """
    if given:
        session.keep_inputs(source, given)
        return given
    kept = session.kept_inputs(source)
    if not kept:
        return []
    count = len(kept)
    with st.container(horizontal=True, vertical_alignment="center"):
        st.caption(
            f"Showing the {'photo' if count == 1 else f'{count} files'} you gave earlier, kept in this session's "
            "memory (the upload box empties when you leave it). Upload or take new ones to replace them."
        )
        st.button(
            "Clear", key=f"clear-{source}", on_click=partial(session.forget_inputs, source), icon=":material/close:"
        )
    return kept


def whole_image_button(key: str) -> None:
    st.button(
        "Classify the whole image as one face",
        key=f"whole-{key}",
        on_click=partial(session.classify_whole, key),
        icon=":material/crop_free:",
    )


def face_cards(key: str, result, settings) -> None:
    faces = result.faces[:MAX_FACE_CARDS]
    if len(result.faces) > MAX_FACE_CARDS:
        st.caption(
            f"Showing the first {MAX_FACE_CARDS} of {len(result.faces)} faces; all are in the table and the downloads."
        )
    targets = widgets.targets_for([f.probs for f in faces], settings["target"])
    maps = state.cams([f.face for f in faces], settings["method"], targets, settings["layer"])
    per_row = min(3, max(2, len(faces)))
    for start in range(0, len(faces), per_row):
        columns = st.columns(per_row, gap="medium")
        row = zip(columns, faces[start : start + per_row], targets[start:], maps[start:], strict=False)
        for column, face, target, cam in row:
            with column, st.container(border=True):
                st.subheader(face_title(face))
                if is_uncertain(face):
                    st.badge(UNCERTAIN_TEXT, icon=":material/help:", color="orange")
                people = people_would_say(face, state.people_reading())
                if people:
                    st.caption(people, help=PEOPLE_HELP)
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


def photo_view(photo: Photo, settings, single: bool = True) -> None:
    """One photo in full: the annotated image, notes, downloads, then a card per face."""
    result = photo.shown.result
    if result.error:
        st.error(escape_markdown(result.error), icon=":material/broken_image:")
        return
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.image(photo.shown.picture, caption=escape_markdown(result.file), width="stretch")
    with right:
        found = len(result.faces)
        if found:
            whole = photo.key in session.whole_images()
            st.subheader("Whole image classified as one face" if whole else f"{found} face{'s' * (found != 1)} found")
            for face in result.faces[:MAX_FACE_CARDS]:
                badge = f" · {UNCERTAIN_TEXT}" if is_uncertain(face) else ""
                st.markdown(f"**{face.index + 1}.** {face.label} ({face.confidence:.0%}){badge}")
            if found > MAX_FACE_CARDS:
                st.caption(f"and {found - MAX_FACE_CARDS} more: every face is in the table below and in the downloads.")
        else:
            st.subheader("No face found")
            st.warning(
                "The face detector found no face in this photo (it needs both eyes in view and a face that is not too small). "
                "You can still classify the whole image as if it were one face.",
                icon=":material/search_off:",
            )
            if photo.data is not None:
                whole_image_button(photo.key)
            else:
                st.caption("This photo came inside a zip: upload it on its own to classify the whole image.")
        for note in result.notes:
            if note != "no face found":
                st.caption(escape_markdown(note))
        stem = result.file.rsplit("/", 1)[-1].rsplit(".", 1)[0] or "photo"
        st.download_button(
            "Download annotated image (PNG)",
            partial(jpeg_to_png, photo.shown.picture),  # made only when asked for
            file_name=f"{stem}-annotated.png",
            mime="image/png",
            key=f"png-{photo.key}",
            on_click="ignore",
            icon=":material/download:",
        )
        if single:  # a photo without a face too: its row says so, as in the downloads of several photos
            downloads([result], photo.key)
    if result.faces:
        face_cards(photo.key, result, settings)
    if single and len(result.faces) > MAX_FACE_CARDS:
        st.subheader("All faces")
        faces_dataframe([result])


def downloads(results, key: str) -> None:
    with st.container(horizontal=True):
        st.download_button(
            "Download results (CSV)",
            csv_bytes(results),
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


def problems(photos: list[Photo]) -> None:
    """One warning per file that could not be read (not an image, a nested archive, too large...)."""
    failed = [photo.shown.result for photo in photos if photo.shown.result.error]
    for result in failed[:MAX_WARNINGS]:
        st.warning(escape_markdown(result.error), icon=":material/broken_image:")
    if len(failed) > MAX_WARNINGS:
        st.caption(f"{len(failed) - MAX_WARNINGS:,} more files could not be read: see the error column of the CSV.")


def gallery(photos: list[Photo]) -> None:
    """Several photos: the files that could not be read, a compact gallery and one table of every face."""
    st.subheader(f"{len(photos)} photos")
    problems(photos)
    readable = [photo for photo in photos if not photo.shown.result.error]
    per_row = 4
    for start in range(0, min(len(readable), GALLERY_SIZE), per_row):
        for column, photo in zip(st.columns(per_row), readable[start : start + per_row], strict=False):
            found = len(photo.shown.result.faces)
            column.image(
                photo.shown.thumbnail,
                caption=f"{escape_markdown(photo.shown.result.file)}: {found} face{'s' * (found != 1)}",
                width="stretch",
            )
    if len(readable) > GALLERY_SIZE:
        st.caption(
            f"Showing the first {GALLERY_SIZE} of {len(readable):,} photos; every photo is in the table, "
            "the downloads and the list below."
        )
    results = [photo.shown.result for photo in photos]
    st.subheader("All faces")
    if not faces_dataframe(results):
        st.info("No face was found in these photos. Open a photo below to classify it as a whole.")
    downloads(results, "all")


def faces_dataframe(results) -> bool:
    """One row per face of these photos, probabilities in percent; False when there is no face to list."""
    table = faces_table(results, in_percent=True)
    if table.empty:
        return False
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "confidence": st.column_config.ProgressColumn(
                "confidence", format=PERCENT_FORMAT, min_value=0, max_value=100
            ),
            **{p: st.column_config.NumberColumn(c, format=PERCENT_FORMAT) for c, p in zip(CLASSES, PROB_COLUMNS)},
            "uncertainty": st.column_config.NumberColumn("uncertainty", format="%.2f"),
        },
    )
    return True


def render() -> None:
    st.title("Predict emotions in a photo")
    st.markdown(
        "Drop in photos (or a .zip of them) or take one: every face is boxed and numbered, with its expression, "
        "the four probabilities and where the model looked."
    )
    tta = widgets.tta_setting()
    settings = widgets.cam_settings()
    files = photo_inputs()
    if not files:
        session.forget_photos()  # the files are gone: so are their results, and the faces offered to Explain
        st.info(
            "Upload one or more photos, take one with your camera, or pick the sample photo above to see the app at work.",
            icon=":material/add_photo_alternate:",
        )
        return
    photos = state.with_whole_images(state.classify(files, tta), tta)
    session.hand_faces_to_explain(  # the Explain page reads the probabilities itself, with its own mirror setting
        FaceToExplain(f"{photo.shown.result.file}, face {face.index + 1}", face.face)
        for photo in photos
        for face in photo.shown.result.faces
    )
    if len(photos) == 1:
        photo_view(photos[0], settings)
        return
    gallery(photos)
    names = [f"{i + 1}. {photo.shown.result.file}" for i, photo in enumerate(photos)]
    first_read = next((i for i, photo in enumerate(photos) if not photo.shown.result.error), 0)
    chosen = st.selectbox(
        "Photo to inspect", range(len(photos)), index=first_read, format_func=lambda i: names[i], key=Key.INSPECT_PHOTO
    )
    photo = photos[chosen if chosen is not None and chosen < len(photos) else 0]
    st.divider()
    photo_view(photo, settings, single=False)


widgets.run(render)
