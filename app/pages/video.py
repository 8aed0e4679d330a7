"""Video: each person's expression over time in an uploaded video, with a timeline, a summary and downloads.

The upload stays in memory; analysis, results and charts come from app/video.py.
"""

import streamlit as st

from app import session, video, widgets
from app.report import PERCENT_FORMAT
from app.results import escape_markdown
from app.session import Key
from fer.config import CLASSES
from fer.video import DEFAULT_FPS, MAX_DURATION_S, MAX_SIDE

widgets.keep(Key.VIDEO_FPS)


def upload():
    help_text = (
        f"MP4, WebM, MOV or AVI, up to {video.upload_limit_mb()} MB and {MAX_DURATION_S // 60} minutes; frames "
        f"larger than {MAX_SIDE} pixels are refused, large ones analysed at 1280. Kept in this session's memory only."
    )
    # No `type=` list: another file reaches fer, which says what is wrong with it.
    return st.file_uploader("Upload a video", key=Key.VIDEO_UPLOAD, help=help_text, on_change=video.forget)


def run_analysis(data: bytes, name: str, fps: float, tta: bool, key: tuple):
    area = st.empty()  # the progress bar and Cancel, gone once the analysis is done
    with area.container():
        bar = st.progress(0.0, text="Starting...")
        # A click reruns the page, which stops the analysis at its next progress update.
        st.button(
            "Cancel",
            key=Key.VIDEO_CANCEL,
            icon=":material/stop:",
            help="Stop the analysis (its results are dropped).",
            on_click=video.cancel,
            args=(key,),
        )

    def show(fraction, text):
        bar.progress(fraction if fraction is not None else 0.0, text=text)

    done = video.analyse(data, name, fps, tta, show)
    area.empty()
    return done


def results(data: bytes, name: str, report, movie: bytes) -> None:
    if report.error:
        st.error(escape_markdown(report.error), icon=":material/error:")
    for note in report.notes:
        st.caption(escape_markdown(note))
    if not report.frames:
        return
    if not report.people:
        st.info(f"No face was found in the {len(report.frames)} frames analysed.", icon=":material/search_off:")
    else:
        st.subheader("Summary: share of each person's frames with each expression")
        st.dataframe(
            video.summary_table(report),
            hide_index=True,
            column_config={
                c: st.column_config.ProgressColumn(c, format=PERCENT_FORMAT, min_value=0, max_value=100)
                for c in CLASSES
            },
        )
        st.subheader("Timeline")
        st.caption("Click a point to see that moment below.")
        for person in video.timeline_people(report):
            times, probs = video.person_series(report, person)
            event = st.plotly_chart(
                video.timeline_figure(times, probs, f"Person {person}"),
                key=f"timeline-{person}",
                on_select="rerun",
                selection_mode="points",
                config={"displayModeBar": False},
            )
            video.follow_click(report, person, event)  # a new click moves the slider below
        if len(report.people) > video.MAX_TIMELINES:
            st.caption(f"Timelines of the {video.MAX_TIMELINES} people seen longest; all are in the table and the CSV.")
    st.subheader("A moment")
    times = [f.time for f in report.frames]
    session.keep_within(Key.VIDEO_MOMENT, times, times[0])
    moment = st.select_slider("Moment (seconds)", times, key=Key.VIDEO_MOMENT, format_func=lambda t: f"{t:.1f} s")
    frame = video.nearest_frame(report, moment)
    left, right = st.columns([3, 2])
    left.image(video.annotated_frame(data, name, frame), caption=f"{escape_markdown(name)} at {frame.time:.1f} s")
    with right:
        for face in frame.faces:
            st.markdown(f"**Person {face.person}**: {face.label} ({face.confidence:.0%})")
        if not frame.faces:
            st.caption("No face in this frame.")
    stem = name.rsplit(".", 1)[0] or "video"
    with st.container(horizontal=True):
        st.download_button(
            "Download faces over time (CSV)",
            video.csv_bytes(report),
            file_name=f"{stem}-faces.csv",
            mime="text/csv",
            key=Key.VIDEO_CSV,
            on_click="ignore",
            icon=":material/table:",
        )
        if movie:
            st.download_button(
                "Download annotated video (MP4)",
                movie,
                file_name=f"{stem}-annotated.mp4",
                mime="video/mp4",
                key=Key.VIDEO_MP4,
                on_click="ignore",
                icon=":material/movie:",
            )
    if movie:
        with st.expander("Play the annotated video"):
            st.video(movie, format="video/mp4")


def render() -> None:
    st.title("Expressions over time in a video")
    st.markdown(
        "Upload a video: faces are found in a few frames a second, each person keeps a number, and you get "
        "each person's expressions over time, a summary, the annotated video and a CSV."
    )
    tta = widgets.tta_setting()
    file = upload()
    if file is None:
        video.forget()
        st.info("Upload an MP4, WebM, MOV or AVI video to start.", icon=":material/movie:")
        return
    data, name = file.getvalue(), file.name
    details = video.info(data, name)  # a file that is not a usable video stops here with its message
    st.caption(escape_markdown(f"{name}: {details.describe()}"))
    session.default(Key.VIDEO_FPS, DEFAULT_FPS)
    fps = st.number_input(
        "Frames analysed per second",
        min_value=0.5,
        max_value=15.0,
        step=0.5,
        key=Key.VIDEO_FPS,
        help="More frames: a finer timeline, and a proportionally longer analysis.",
    )
    key = video.analysis_key(data, fps, tta)
    done = video.stored(key)
    if done is None:
        controls = st.empty()  # the button goes once the analysis starts
        with controls.container():
            if video.cancelled(key):
                st.warning("Analysis cancelled: nothing was kept.", icon=":material/stop:")
            st.button(
                "Analyse the video",
                type="primary",
                icon=":material/play_arrow:",
                key=Key.VIDEO_START,
                on_click=video.start,
                args=(key,),
            )
        if not video.started(key):
            return
        controls.empty()
        done = run_analysis(data, name, fps, tta, key)
    results(data, name, *done)


widgets.run(render)
