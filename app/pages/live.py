"""Live: the webcam in the browser, each face boxed and labelled as it is processed (streamlit-webrtc).

Frames go from the browser to this server over WebRTC and back with labels; they stay in memory. The
stream's state, smoothing and Freeze live in app/video.py.
"""

import streamlit as st

from app import navigation, session, video, widgets
from app.session import Key

widgets.keep(Key.LIVE_SMOOTHING)

NO_CAMERA = (
    "No camera, or the browser was not allowed to use it? Allow the camera for this site in the browser's "
    "address bar and press Start again, or take a single photo instead: Predict page, *Take a photo*."
)


def camera(live) -> object:
    from streamlit_webrtc import WebRtcMode, webrtc_streamer

    servers = video.ice_servers()
    return webrtc_streamer(
        key=Key.LIVE_STREAM,
        mode=WebRtcMode.SENDRECV,
        # No outside STUN/TURN server unless FER_ICE_SERVERS names one: on one machine (localhost) and a
        # local network the browser and the server connect directly.
        frontend_rtc_configuration={"iceServers": servers},
        server_rtc_configuration={"iceServers": servers},
        media_stream_constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False},
        video_frame_callback=video.frame_callback(live),
        async_processing=True,  # frames that arrive while one is processed are dropped, not queued
        translations={
            "media_api_not_available": "This browser gives no camera access here. " + NO_CAMERA,
            "device_not_available": "No camera found. " + NO_CAMERA,
            "device_access_denied": "The camera was refused. " + NO_CAMERA,
        },
    )


def live_panel(live, playing: bool) -> None:
    """Frame rate, delay and the largest face's timeline (refreshed every second while the camera plays)."""
    fps, delay = live.rates()
    if live.error:
        st.error(live.error, icon=":material/error:")
    left, middle = st.columns(2)
    left.metric("Processed frames per second", f"{fps:.1f}" if fps else "–")
    middle.metric("Delay per processed frame", f"{delay:.0f} ms" if delay else "–")
    times, probs, window = live.recent()
    if len(times):
        st.plotly_chart(
            video.timeline_figure(times, probs, "Largest face, last 30 s", height=240, window=window),
            key="live_timeline",
            config={"displayModeBar": False},
        )
    elif playing:
        st.caption("No face yet: look at the camera.")


def frozen() -> None:
    kept = session.frozen()
    if not kept:
        return
    picture, result = kept
    st.subheader("Frozen frame")
    st.image(picture, caption="The frame as it was when frozen (kept in this session's memory only).", width=480)
    for face in result.faces:
        st.markdown(f"**Person {face.person}**: {face.label} ({face.confidence:.0%})")
    with st.container(horizontal=True):
        st.page_link(navigation.PREDICT, label="Open it on the Predict page", icon=":material/photo_camera:")
        if result.faces:
            st.page_link(navigation.EXPLAIN, label="Explain its faces", icon=":material/visibility:")


def render() -> None:
    st.title("Live camera")
    st.markdown(
        "Press **Start** and allow the camera: every face is boxed and labelled as frames are processed. "
        "Frames are analysed in this server's memory and never stored."
    )
    live = video.live_session()
    session.default(Key.LIVE_SMOOTHING, live.smoothing)
    live.smoothing = st.slider(
        "Smoothing",
        0.0,
        0.95,
        step=0.05,
        key=Key.LIVE_SMOOTHING,
        help="How much each face's probabilities keep of the previous frames (an exponential moving average): "
        "0 shows each frame on its own (jumpy), 0.9 changes slowly (steady, but late).",
    )
    st.caption(
        f"Smoothing {live.smoothing:.2f}: each shown probability is {1 - live.smoothing:.0%} this frame "
        f"and {live.smoothing:.0%} the previous shown value."
    )
    live.prepare()
    playing = False
    if video.stream_served():
        playing = bool(camera(live).state.playing)
    else:
        st.info(
            "The camera stream needs the served app (`streamlit run streamlit_app.py`).", icon=":material/videocam_off:"
        )
    st.caption(NO_CAMERA)
    st.button(
        "Freeze",
        icon=":material/pause:",
        help="Send the current frame to the Predict and Explain pages.",
        on_click=video.freeze,
        args=(live,),
    )
    if session.take_freeze_failed():
        st.warning("No frame has been processed yet: start the camera first.", icon=":material/videocam_off:")
    st.fragment(live_panel, run_every=1.0 if playing else None)(live, playing)
    frozen()


widgets.run(render)
