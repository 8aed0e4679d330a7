"""Video files and camera frames: each person's expression over time.

    for frame in analyse("clip.mp4", predictor, fps=5):      # streamed: one sampled frame at a time
        print(frame.time, [(f.person, f.label) for f in frame.faces])
    report = process_video("clip.mp4", predictor, annotated="annotated.mp4")  # never raises for a bad file
    write_video_csv([report], "faces.csv"); report.people                    # per-person shares of time

Decoding is PyAV's (FFmpeg): it reads MP4/MOV, WebM/MKV and AVI from a path or from bytes in memory,
one packet at a time, so no upload is written to disk and no more than a frame is held. Sampled
frames (DEFAULT_FPS a second, chosen by their timestamps, so a variable frame rate keeps true times)
are decoded at most DECODE_MAX_SIDE pixels a side, turned upright by their rotation tag, and go
through the photo pipeline (fer.faces detection and alignment, the Classifier). `FaceTracker` keeps
each person's number across frames; `LiveAnalyser` does the same for a camera, with smoothing.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fer.config import CLASS_COLORS, CLASSES
from fer.errors import FerError, VideoError, write_user_file
from fer.faces import MAX_FACES, Box, Face, align_face
from fer.predict import Classified
from fer.record import PROB_COLUMNS

DEFAULT_FPS = 5.0  # sampled frames per second
MIN_FPS, MAX_FPS = 0.1, 30.0
MAX_VIDEO_BYTES = 1024 * 2**20  # 1 GB file (the app's uploads are capped lower, by server.maxUploadSize)
MAX_DURATION_S = 30 * 60  # 30 minutes
MAX_SIDE = 4096  # a larger frame (8K) is refused: decoding it alone takes about 50 MB and much time
MIN_SIDE = 16
# Video frames are searched for faces as photos are (None: fer.faces' own size). Detection is most of a
# frame's time, but a frame shrunk further lost some faces the photo pipeline finds (benchmarks/video.py).
DETECT_SIDE = None
LIVE_DETECT_SIDE = 480  # the camera view trades some of that for a shorter delay per frame
DECODE_MAX_SIDE = 1280  # frames are decoded at most this size: detection runs at 640, alignment gets detail
MAX_DECODE_ERRORS = 50  # damaged packets skipped before a file is called damaged
MAX_GAP_S = 2.0  # a person unseen for longer (and MIN_MISSES processed frames) gets a new number when seen again
MIN_MISSES = 3
TRACK_GATE = 1.0  # largest match cost (centre distance in face sizes + log size ratio) for the same person
BATCH_FRAMES = 4  # sampled frames whose faces are classified in one model call
FORMATS_HINT = "use an MP4 (H.264), WebM, MOV or AVI video"
BOX_COLORS = CLASS_COLORS  # boxes in the annotated video: the app's class colours
VIDEO_CSV_COLUMNS = [
    "file",
    "time_s",
    "person",
    "x",
    "y",
    "w",
    "h",
    "label",
    *PROB_COLUMNS,
    "uncertainty",
    "uncertain",
    "error",
]
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis")
_AUDIO_SIGNATURES = ((b"ID3", "an MP3"), (b"\xff\xfb", "an MP3"), (b"OggS", "an Ogg"), (b"fLaC", "a FLAC"))
_OTHER_SIGNATURES = (
    (b"\x47", 188, "an MPEG transport stream (.ts)"),  # sync byte every 188 bytes, checked below
    (b"FLV", 0, "a Flash video (FLV)"),
    (b"\x00\x00\x01\xba", 0, "an MPEG program stream (.mpg)"),
    (b"\x30\x26\xb2\x75", 0, "a Windows Media (ASF/WMV) file"),
)


@dataclass
class VideoInfo:
    """What a video file is, read from its header (before any frame is decoded)."""

    name: str
    container: str  # "MP4/MOV", "WebM/MKV" or "AVI"
    codec: str
    width: int  # as shown (after the rotation tag)
    height: int
    duration: float | None  # seconds, where the file says
    frame_rate: float | None  # the stream's average, where the file says
    frames: int | None  # where the file says
    rotation: int = 0  # degrees the frames are turned counter-clockwise to show upright
    decoded_size: tuple[int, int] = (0, 0)  # (width, height) frames are analysed at

    def describe(self) -> str:
        length = f"{self.duration:.1f} s" if self.duration else "unknown length"
        rate = f", {self.frame_rate:.3g} frames/s" if self.frame_rate else ""
        return f"{self.container} {self.codec}, {self.width}x{self.height}, {length}{rate}"


@dataclass
class PersonFace(Classified):
    """One face in one sampled frame: the person's number (kept across frames) and the classification."""

    person: int
    box: Box
    probs: np.ndarray  # (4,) in CLASSES order (smoothed in the live view)
    uncertainty: float
    uncertain: bool
    score: float  # the detector's
    landmarks: tuple[tuple[float, float], ...]
    face: np.ndarray | None = None  # the 48x48 crop the model saw; dropped from stored results


@dataclass
class FrameResult:
    index: int  # sampled frame number, from 0
    time: float  # seconds from the start of the video
    faces: list[PersonFace] = field(default_factory=list)
    image: np.ndarray | None = None  # the upright RGB frame analysed (callers drop it once drawn)

    def stripped(self) -> FrameResult:
        """This result without pixels (the frame and the face crops): what a timeline keeps."""
        return FrameResult(self.index, self.time, [replace(f, face=None) for f in self.faces])


@dataclass
class PersonSummary:
    person: int
    first: float  # seconds
    last: float
    frames: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(len(CLASSES), np.int64))  # frames per label
    prob_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(CLASSES)))

    @property
    def shares(self) -> np.ndarray:
        """Share of this person's sampled frames with each label (CLASSES order)."""
        return self.counts / max(self.frames, 1)

    @property
    def mean_probs(self) -> np.ndarray:
        return self.prob_sum / max(self.frames, 1)

    @property
    def main_label(self) -> str:
        return CLASSES[int(np.argmax(self.counts))]


@dataclass
class VideoReport:
    """A whole video's analysis: the timeline without pixels, each person's summary, and what went wrong."""

    file: str
    info: VideoInfo | None = None
    frames: list[FrameResult] = field(default_factory=list)
    people: list[PersonSummary] = field(default_factory=list)
    error: str | None = None  # with frames analysed before it, they are kept (a truncated file)
    notes: list[str] = field(default_factory=list)
    cancelled: bool = False
    fps: float = DEFAULT_FPS


# -- reading ------------------------------------------------------------------------------------------


def sniff_container(head: bytes, name: str) -> str:
    """PyAV's demuxer for the file's first bytes ('mov', 'matroska' or 'avi'), or VideoError saying what it is.

    The demuxer is named, never guessed by FFmpeg: its probing would also open playlists and image
    sequences, which may refer to other files."""
    if len(head) >= 12 and head[4:8] in _MP4_BOXES:
        if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
            raise VideoError(f"{name} is a HEIC/HEIF or AVIF photo, not a video; use the photo pages or `fer predict`.")
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if not head:
        raise VideoError(f"{name} is empty (0 bytes); {FORMATS_HINT}.")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        raise VideoError(f"{name} is a WAV sound file: it holds only audio, no picture; {FORMATS_HINT}.")
    for signature, what in _AUDIO_SIGNATURES:
        if head.startswith(signature):
            raise VideoError(f"{name} is {what} sound file: it holds only audio, no picture; {FORMATS_HINT}.")
    for signature, step, what in _OTHER_SIGNATURES:
        if head.startswith(signature) and (step == 0 or head[step : step + 1] == signature):
            raise VideoError(f"{name} is {what}, which is not supported; convert it to MP4 (H.264).")
    from fer.images import describe_non_image

    what, _ = describe_non_image(head)
    if "whose header is damaged" in what:  # the signature of a photo format
        raise VideoError(f"{name} is a photo ({what.split()[1]}), not a video; use the photo pages or `fer predict`.")
    if "not an image" in what or "text file" in what:
        what = what.replace(", not an image", "")
        raise VideoError(f"{name} is {what}, not a video; {FORMATS_HINT}.")
    with contextlib.suppress(Exception):
        kind = Image.open(io.BytesIO(head + b"\x00" * 64)).format
        raise VideoError(f"{name} is a photo ({kind}), not a video; use the photo pages or `fer predict`.")
    raise VideoError(f"{name} is not an MP4, WebM, MOV or AVI video (or its start is damaged); {FORMATS_HINT}.")


def _open_source(source, name: str | None) -> tuple[io.IOBase, str]:
    """A binary file object for a path, bytes or file object, size-checked; the caller closes it."""
    too_big = f"is larger than {MAX_VIDEO_BYTES // 2**20} MB; cut it or export it at a lower bitrate."
    if isinstance(source, bytes | bytearray | memoryview):
        label = name or "upload"
        if len(source) > MAX_VIDEO_BYTES:
            raise VideoError(f"{label} {too_big}")
        return io.BytesIO(bytes(source)), label
    if hasattr(source, "read"):
        label = str(name or getattr(source, "name", None) or "upload")
        with contextlib.suppress(OSError, AttributeError, ValueError):  # a stream that cannot seek is read as it comes
            start = source.tell()
            size = source.seek(0, io.SEEK_END) - start
            source.seek(start)
            if size > MAX_VIDEO_BYTES:
                raise VideoError(f"{label} {too_big}")
        return source, label
    path = Path(source)
    label = name or str(path)
    try:
        if path.is_dir():
            raise VideoError(f"{label} is a folder, not a video file.")
        if not path.is_file():
            raise VideoError(f"File not found: {label}; check the path.")
        if path.stat().st_size > MAX_VIDEO_BYTES:
            raise VideoError(f"{label} {too_big}")
        return open(path, "rb"), label  # noqa: SIM115 (closed by Video.close)
    except OSError as error:
        raise VideoError(
            f"{label} could not be read ({error.strerror or error}); check that it is readable."
        ) from error


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


class Video:
    """An opened video: `info` from the header; `frames(fps)` decodes as a stream. Use as a context manager.

    Every problem is a VideoError with a message for the user; frames already yielded stay valid."""

    def __init__(self, source, name: str | None = None, max_side: int = DECODE_MAX_SIDE):
        import av

        self._av = av
        self._file, self.name = _open_source(source, name)
        self._owns_file = self._file is not source  # a file object the caller gave stays open
        self._container = None
        self.notes: list[str] = []
        try:
            start = self._file.tell()
            head = self._file.read(64)
            self._file.seek(start)
            fmt = sniff_container(head, self.name)
            container_name = {"mov": "MP4/MOV", "matroska": "WebM/MKV", "avi": "AVI"}[fmt]
            article = "a" if fmt == "matroska" else "an"
            try:
                self._container = av.open(self._file, mode="r", format=fmt, metadata_errors="ignore")
            except (av.FFmpegError, ValueError, EOFError) as error:
                raise VideoError(
                    f"{self.name} could not be opened as {article} {container_name} video: it is damaged or incomplete "
                    f"(a download or copy that stopped early?) ({_reason(error)}); copy or export it again."
                ) from error
            self.info = self._check_streams(container_name, max_side)
        except BaseException:
            self.close()
            raise

    def _check_streams(self, container_name: str, max_side: int) -> VideoInfo:
        av = self._av
        container = self._container
        pictures = [
            s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)
        ]  # a cover picture in a sound file is a "video" stream of one image
        if not pictures:
            if container.streams.audio:
                raise VideoError(f"{self.name} holds only sound (an audio track), no video picture; {FORMATS_HINT}.")
            raise VideoError(f"{self.name} holds no video frames (no picture track); {FORMATS_HINT}.")
        stream = self._stream = pictures[0]
        context = stream.codec_context
        if context is None:  # FFmpeg has no decoder for it
            raise VideoError(f"{self.name} uses a video codec that cannot be decoded here; {FORMATS_HINT}.")
        codec = context.name
        width, height = context.width, context.height
        if not width or not height:
            raise VideoError(f"{self.name}'s video track has no picture size (damaged header); {FORMATS_HINT}.")
        if max(width, height) > MAX_SIDE:
            raise VideoError(
                f"{self.name} is {width}x{height}: videos up to {MAX_SIDE} pixels on the longer side (4K) are read; "
                "export it at 1080p or 4K."
            )
        if min(width, height) < MIN_SIDE:
            raise VideoError(f"{self.name} is {width}x{height}: too small to hold a face (at least {MIN_SIDE} pixels).")
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000  # FFmpeg's AV_TIME_BASE
        if duration is not None and duration > MAX_DURATION_S:
            raise VideoError(
                f"{self.name} lasts {duration / 60:.1f} minutes: videos up to {MAX_DURATION_S // 60} minutes are "
                "analysed; cut it into parts."
            )
        rate = stream.average_rate or stream.guessed_rate
        self._start = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
        scale = min(1.0, max_side / max(width, height))
        self._decoded = (_even(width * scale), _even(height * scale))
        info = VideoInfo(
            name=self.name,
            container=container_name,
            codec=codec,
            width=width,
            height=height,
            duration=duration,
            frame_rate=float(rate) if rate else None,
            frames=stream.frames or None,
            decoded_size=self._decoded,
        )
        if scale < 1:
            self.notes.append(f"frames of {width}x{height} are analysed at {self._decoded[0]}x{self._decoded[1]}")
        return info

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        if self._file is not None:
            if self._owns_file:
                self._file.close()
            self._file = None

    def __enter__(self) -> Video:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _decoded_frames(self) -> Iterator[tuple[float, object]]:
        """(seconds from the start, av.VideoFrame) for every frame, skipping damaged packets."""
        av = self._av
        stream = self._stream
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = 1  # the model uses the cores; decoding is a few percent of the time
        packets = self._container.demux(stream)
        errors, count, reason, total = 0, 0, None, 0
        rate = self.info.frame_rate or 25.0
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except (av.FFmpegError, ValueError, EOFError) as error:  # the container itself breaks off
                reason = _reason(error)
                break
            total += packet.size > 0
            try:
                frames = packet.decode()
            except (av.FFmpegError, ValueError) as error:
                errors += 1
                reason = _reason(error)
                if errors > MAX_DECODE_ERRORS and 2 * errors > total:
                    raise VideoError(
                        f"{self.name} is damaged: {errors} of its first {total} frames could not be decoded "
                        f"({reason}); export or copy it again."
                    ) from error
                continue
            for frame in frames:
                time = float(frame.time) - self._start if frame.time is not None else count / rate
                count += 1
                yield time, frame
        self._decode_errors, self._end_reason, self._count, self._packets = errors, reason, count, total

    def frames(self, fps: float = DEFAULT_FPS) -> Iterator[tuple[float, np.ndarray]]:
        """(time in seconds, upright RGB uint8 frame at `info.decoded_size`) for frames `1/fps` seconds apart.

        Frames are picked by timestamp, so times stay true at a variable frame rate. Raises VideoError at
        the end for a file that is truncated, damaged or has no frames, after yielding what could be read."""
        fps = check_fps(fps)
        interval = 1.0 / fps
        tolerance = 0.5 / (self.info.frame_rate or 30.0)  # half a source frame
        next_time, last, gaps, rotation = 0.0, None, [], None
        self._count = 0
        width, height = self._decoded
        for time, frame in self._decoded_frames():
            if last is not None:
                gaps.append(time - last)
            last = time
            if time > MAX_DURATION_S + 1:
                raise VideoError(
                    f"{self.name} lasts more than {MAX_DURATION_S // 60} minutes (its header did not say so); "
                    f"the first {MAX_DURATION_S // 60} minutes were analysed. Cut it into parts."
                )
            if time + tolerance < next_time:
                continue
            while next_time <= time + tolerance:
                next_time += interval
            if rotation is None:
                rotation = int(round((frame.rotation or 0) / 90)) % 4
                if rotation:
                    self.info.rotation = rotation * 90
                    self.info.width, self.info.height = (
                        (self.info.height, self.info.width) if rotation % 2 else (self.info.width, self.info.height)
                    )
                    self.notes.append(f"turned by {rotation * 90} degrees, as the file's rotation tag says")
            image = frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")
            if rotation:
                image = np.ascontiguousarray(np.rot90(image, k=rotation))
            yield time, image
        if self._count == 0 and self._packets:
            raise VideoError(
                f"{self.name} is damaged: none of its {max(self._packets, self.info.frames or 0)} frames could be "
                "decoded; export or copy it again."
            )
        if self._count == 0 and self.info.duration:
            raise VideoError(
                f"{self.name} is damaged: its header says {self.info.duration:.1f} s of video, but no frame could be "
                "read; export or copy it again."
            )
        if self._count == 0:
            raise VideoError(f"{self.name} holds no video frames (an empty video track); {FORMATS_HINT}.")
        if _variable_rate(gaps):
            self.notes.append(
                f"variable frame rate (frames {min(gaps) * 1000:.0f} to {max(gaps) * 1000:.0f} ms apart): "
                "frames were sampled by their timestamps"
            )
        expected = max(self._packets, self.info.frames or 0)
        lost = max(self._decode_errors, expected - self._count)
        if 2 * lost > expected:
            raise VideoError(
                f"{self.name} is damaged: {lost} of its {expected} frames could not be decoded; the rest was "
                "analysed. Export or copy it again."
            )
        if self._decode_errors:
            self.notes.append(f"{self._decode_errors} damaged frame(s) of the video were skipped")
        stated = self.info.duration
        frame_time = 1.0 / (self.info.frame_rate or 30.0)
        if stated and last is not None and last + frame_time < stated - max(1.0, 3 * frame_time):
            raise VideoError(
                f"{self.name} ends at {last:.1f} s although its header says {stated:.1f} s: the file is truncated "
                "or damaged (a download or copy that stopped early?); the part before was analysed."
            )

    def frame_at(self, time: float) -> np.ndarray:
        """The upright RGB frame shown at `time` seconds (decoded at `info.decoded_size`), found by seeking."""
        av = self._av
        stream = self._stream
        target = max(0.0, time) + self._start
        with contextlib.suppress(av.FFmpegError):
            self._container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
        best = None
        for t, frame in self._decoded_frames():
            if best is not None and t > time + 1e-3:
                break
            best = frame
            if abs(t - time) < 1e-3:
                break
        if best is None:
            raise VideoError(f"No frame of {self.name} at {time:.2f} s.")
        width, height = self._decoded
        image = best.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")
        rotation = int(round((best.rotation or 0) / 90)) % 4
        return np.ascontiguousarray(np.rot90(image, k=rotation)) if rotation else image


def _reason(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return str(text).split(":")[0].strip() or type(error).__name__


def _variable_rate(gaps: list[float]) -> bool:
    """Frame gaps that differ by more than a quarter (phones and screen recorders; not timestamp jitter)."""
    if len(gaps) < 3:
        return False
    low, high = np.percentile(gaps, [2, 98])
    return bool(low > 0 and high / low > 1.25 and high - low > 0.004)


def check_fps(fps: float) -> float:
    try:
        fps = float(fps)
    except (TypeError, ValueError) as error:
        raise FerError(f"The sampling rate must be a number of frames per second, got {fps!r}.") from error
    if not (MIN_FPS <= fps <= MAX_FPS):
        raise FerError(f"The sampling rate must be between {MIN_FPS} and {MAX_FPS:g} frames per second, got {fps:g}.")
    return fps


def video_info(source, name: str | None = None) -> VideoInfo:
    """The header's facts (size, length, frame rate, codec), or VideoError saying why it is no usable video."""
    with Video(source, name) as video:
        return video.info


def frame_at(source, time: float, name: str | None = None) -> np.ndarray:
    """One upright RGB frame at `time` seconds (for showing a moment of the timeline)."""
    with Video(source, name) as video:
        return video.frame_at(time)


# -- tracking -----------------------------------------------------------------------------------------


@dataclass
class _Track:
    person: int
    centre: np.ndarray  # the five landmarks' mean (steadier than the box's centre)
    size: float  # sqrt(box area)
    time: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    seen: int = 1
    missed: int = 0  # frames since last seen


class FaceTracker:
    """Keeps each person's number across frames.

    Each known face's position is predicted from its last position and speed; faces are matched to
    predictions by the Hungarian algorithm on a cost of centre distance (in face sizes) plus size change,
    so two people who cross keep their numbers while their faces stay apart enough to be told apart
    by where they were heading. A face unmatched within TRACK_GATE is a new person; a person unseen for
    `max_gap` seconds is forgotten (numbers are never reused)."""

    def __init__(self, max_gap: float = MAX_GAP_S, gate: float = TRACK_GATE):
        self.max_gap, self.gate = max_gap, gate
        self.tracks: list[_Track] = []
        self.next_person = 1

    def update(self, time: float, faces: list[Face]) -> list[int]:
        """The person number of each face (in the order given) seen at `time` seconds."""
        from scipy.optimize import linear_sum_assignment

        # Forgotten only when gone for max_gap seconds and several frames: a slow camera stream (a busy
        # server) can leave seconds between two processed frames of a person who never left.
        self.tracks = [t for t in self.tracks if time - t.time <= self.max_gap or t.missed < MIN_MISSES]
        centres = [np.mean(np.asarray(f.landmarks, dtype=np.float64), axis=0) for f in faces]
        sizes = [max(1.0, float(np.sqrt(f.box.w * f.box.h))) for f in faces]
        people = [0] * len(faces)
        matched_faces: set[int] = set()
        if self.tracks and faces:
            cost = np.empty((len(self.tracks), len(faces)))
            for i, track in enumerate(self.tracks):
                predicted = track.centre + track.velocity * (time - track.time)
                for j, (centre, size) in enumerate(zip(centres, sizes)):
                    cost[i, j] = np.linalg.norm(centre - predicted) / track.size + abs(np.log(size / track.size))
            rows, cols = linear_sum_assignment(np.where(cost <= self.gate, cost, 1e6))
            for i, j in zip(rows, cols):
                if cost[i, j] > self.gate:
                    continue
                track = self.tracks[i]
                dt = time - track.time
                if dt > 0:
                    measured = (centres[j] - track.centre) / dt
                    track.velocity = measured if track.seen == 1 else 0.5 * track.velocity + 0.5 * measured
                track.centre, track.size, track.time, track.seen = centres[j], sizes[j], time, track.seen + 1
                track.missed = -1  # counted up to 0 below
                people[j] = track.person
                matched_faces.add(j)
        for track in self.tracks:
            track.missed += 1
        # New people are numbered as a reader meets them: left to right, then top to bottom.
        new = sorted(
            (j for j in range(len(faces)) if j not in matched_faces), key=lambda j: (faces[j].box.x, faces[j].box.y)
        )
        for j in new:
            self.tracks.append(_Track(self.next_person, centres[j], sizes[j], time))
            people[j] = self.next_person
            self.next_person += 1
        return people


# -- analysis -----------------------------------------------------------------------------------------


def find_faces(predictor, image: np.ndarray, detect_side: int | None = None) -> tuple[list[Face], list[np.ndarray]]:
    """The photo pipeline's detection and alignment on one RGB frame: faces (largest first, at most
    MAX_FACES, tilted ones refined) and their 48x48 crops. `detect_side`: faces are searched for on the
    frame shrunk to this longer side (detection's cost grows with the pixels), then aligned on the frame."""
    height, width = image.shape[:2]
    scale = min(1.0, detect_side / max(height, width)) if detect_side else 1.0
    if scale < 1:
        import cv2

        interpolation = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR  # as fer.faces shrinks photos
        small = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=interpolation)
        found = [_scaled(face, 1 / scale, width, height) for face in predictor.detector.detect(small)[:MAX_FACES]]
    else:
        found = predictor.detector.detect(image)[:MAX_FACES]
    if not found:
        return [], []
    faces = [predictor.detector.refine(image, face) for face in found]
    gray = np.asarray(Image.fromarray(image).convert("L"))  # the same grey as photos (Pillow's)
    return faces, [align_face(gray, face.landmarks) for face in faces]


def _scaled(face: Face, factor: float, width: int, height: int) -> Face:
    """`face` found on a shrunk frame, in the frame's own pixels (the box kept on the frame)."""
    x, y = min(width - 2, round(face.box.x * factor)), min(height - 2, round(face.box.y * factor))
    w, h = min(width - x, round(face.box.w * factor)), min(height - y, round(face.box.h * factor))
    points = tuple((px * factor, py * factor) for px, py in face.landmarks)
    return Face(Box(x, y, max(2, w), max(2, h)), face.score, points)


def analyse_frames(
    frames: Iterable[tuple[float, np.ndarray]],
    predictor,
    tracker: FaceTracker | None = None,
    batch_frames: int = BATCH_FRAMES,
    keep_faces: bool = False,
    detect_side: int | None = DETECT_SIDE,
) -> Iterator[FrameResult]:
    """FrameResult for each (time, RGB frame): faces found, aligned and classified, each with its person's
    number. Faces of `batch_frames` frames are classified in one call (fewer, larger model calls)."""
    tracker = tracker or FaceTracker()
    classifier = predictor.classifier
    pending: list[tuple[int, float, np.ndarray, list[Face], list[np.ndarray]]] = []

    def flush() -> Iterator[FrameResult]:
        crops = [crop for *_, frame_crops in pending for crop in frame_crops]
        probs, uncertainty = classifier.predict(np.stack(crops)) if crops else (np.zeros((0, len(CLASSES))), [])
        start = 0
        for number, time, image, faces, frame_crops in pending:
            people = tracker.update(time, faces)
            result = FrameResult(number, time, image=image)
            for k, (face, crop, person) in enumerate(zip(faces, frame_crops, people)):
                u = float(uncertainty[start + k])
                result.faces.append(
                    PersonFace(
                        person,
                        face.box,
                        probs[start + k],
                        u,
                        u >= classifier.uncertainty_threshold,
                        face.score,
                        face.landmarks,
                        crop if keep_faces else None,
                    )
                )
            result.faces.sort(key=lambda f: f.person)
            start += len(frame_crops)
            yield result
        pending.clear()

    for index, (time, image) in enumerate(frames):
        faces, crops = find_faces(predictor, image, detect_side)
        pending.append((index, time, image, faces, crops))
        if len(pending) >= max(1, batch_frames):
            yield from flush()
    yield from flush()


def analyse(
    source,
    predictor,
    fps: float = DEFAULT_FPS,
    name: str | None = None,
    batch_frames: int = BATCH_FRAMES,
    detect_side: int | None = DETECT_SIDE,
) -> Iterator[FrameResult]:
    """Per sampled frame, as the video is decoded: its time, and each face with its person's number,
    box and probabilities (`image` holds the frame). Raises VideoError for a file that cannot be read;
    for one that breaks off, after the frames before the break."""
    with Video(source, name) as video:
        yield from analyse_frames(video.frames(fps), predictor, batch_frames=batch_frames, detect_side=detect_side)


class Summary:
    """Per person: first and last time seen, sampled frames, and the share of them with each label."""

    def __init__(self):
        self._people: dict[int, PersonSummary] = {}

    def add(self, frame: FrameResult) -> None:
        for face in frame.faces:
            person = self._people.get(face.person)
            if person is None:
                person = self._people[face.person] = PersonSummary(face.person, frame.time, frame.time)
            person.last = frame.time
            person.frames += 1
            person.counts[int(np.argmax(face.probs))] += 1
            person.prob_sum += face.probs

    def people(self) -> list[PersonSummary]:
        return [self._people[k] for k in sorted(self._people)]


def summarise(frames: Iterable[FrameResult]) -> list[PersonSummary]:
    summary = Summary()
    for frame in frames:
        summary.add(frame)
    return summary.people()


# -- outputs ------------------------------------------------------------------------------------------


def draw_faces(image: np.ndarray, faces: list[PersonFace]) -> np.ndarray:
    """A copy of the RGB frame with each face boxed in its class colour and tagged 'P<n> label nn%'."""
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    line = max(2, round(min(picture.size) / 200))
    font = ImageFont.load_default(size=max(12, round(min(picture.size) / 30)))
    for face in faces:
        x, y, w, h = face.box.as_list()
        color = BOX_COLORS[face.label]
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=color, width=line)
        draw.rectangle([x - 1, y - 1, x + w, y + h], outline="#1B1F24", width=1)
        tag = f"P{face.person} {face.label} {face.confidence:.0%}" + (" ?" if face.uncertain else "")
        left, top, right, bottom = draw.textbbox((0, 0), tag, font=font)
        pad = line + 1
        tag_w, tag_h = right - left + 2 * pad, bottom - top + 2 * pad
        tag_y = y - tag_h if y - tag_h >= 0 else y
        draw.rectangle([x, tag_y, x + tag_w, tag_y + tag_h], fill=color)
        draw.text((x + pad - left, tag_y + pad - top), tag, fill="white", font=font)
    return np.asarray(picture)


class AnnotatedWriter:
    """An H.264 MP4 (plays in browsers) of the analysed frames with their faces drawn, at the frames' own
    times, written as they come: to a binary file object (bytes in memory) or a path."""

    def __init__(self, target, width: int, height: int, fps: float = DEFAULT_FPS):
        import av

        self._av = av
        self._container = av.open(target, mode="w", format="mp4")
        self._stream = self._container.add_stream(
            "libx264", rate=Fraction(fps).limit_denominator(1000), options={"preset": "veryfast", "crf": "26"}
        )
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        # Milliseconds: each frame keeps its sampled time (a variable frame rate stays true).
        self._stream.time_base = self._stream.codec_context.time_base = Fraction(1, 1000)
        self._last_pts = -1
        self.frames = 0

    def write(self, frame: FrameResult, image: np.ndarray | None = None) -> None:
        image = frame.image if image is None else image
        picture = self._av.VideoFrame.from_ndarray(draw_faces(image, frame.faces), format="rgb24")
        picture.pts = max(self._last_pts + 1, round(frame.time * 1000))
        picture.time_base = Fraction(1, 1000)
        self._last_pts = picture.pts
        for packet in self._stream.encode(picture):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None


@contextlib.contextmanager
def _file_when_done(path: str | os.PathLike):
    """A temporary file beside `path`, renamed to `path` when the block succeeds and deleted in any case,
    so a failed or cancelled run never leaves a half-written video under the user's name."""
    target = Path(path)
    if not target.absolute().parent.is_dir():
        raise FerError(f"Cannot write {path}: the folder {target.absolute().parent} does not exist.")
    temporary = target.absolute().parent / f".{target.name}.{uuid.uuid4().hex[:12]}.part"
    try:  # created as a plain open would (mkstemp's would be private to the owner)
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise FerError(f"Cannot write {path} ({error.strerror or error}); choose a folder you can write to.") from error
    os.close(handle)
    try:
        yield str(temporary)
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


Progress = Callable[[float, float | None], None]  # (seconds analysed, the video's length or None)


def process_video(
    source,
    predictor,
    fps: float = DEFAULT_FPS,
    name: str | None = None,
    annotated=None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    batch_frames: int = BATCH_FRAMES,
    detect_side: int | None = DETECT_SIDE,
) -> VideoReport:
    """The whole video: timeline (without pixels), each person's summary and, where `annotated` is a path
    or a binary file object, the annotated MP4. Never raises for a bad video: `report.error` says what
    went wrong (frames analysed before a break are kept). `cancel()` returning True stops early."""
    fps = check_fps(fps)
    label = name or (Path(source).name if isinstance(source, str | os.PathLike) else "upload")
    report = VideoReport(file=label, fps=fps)
    summary = Summary()
    writer = None
    try:
        with contextlib.ExitStack() as stack:
            video = stack.enter_context(Video(source, label))
            report.info = video.info
            output = annotated
            if isinstance(annotated, str | os.PathLike):
                output = stack.enter_context(_file_when_done(annotated))
            try:
                frames = analyse_frames(
                    video.frames(fps), predictor, batch_frames=batch_frames, detect_side=detect_side
                )
                for frame in frames:
                    if output is not None:
                        if writer is None:
                            height, width = frame.image.shape[:2]
                            writer = AnnotatedWriter(output, width, height, fps)
                        writer.write(frame)
                    kept = frame.stripped()
                    report.frames.append(kept)
                    summary.add(kept)
                    if progress is not None:
                        progress(frame.time, video.info.duration)
                    if cancel is not None and cancel():
                        report.cancelled = True
                        report.notes.append(f"cancelled at {frame.time:.1f} s")
                        break
            except VideoError as error:
                report.error = str(error)
            finally:
                report.notes = video.notes + report.notes
                if writer is not None:
                    writer.close()
            if output is not None and writer is None:
                report.notes.append("no frame was analysed, so no annotated video was written")
                if isinstance(annotated, str | os.PathLike):
                    raise _Discard  # the empty temporary file is deleted, nothing is left under the user's name
    except _Discard:
        pass
    except VideoError as error:
        report.error = str(error)
    except MemoryError:
        report.error = f"Not enough memory to analyse {label}; use a shorter or smaller video."
    report.people = summary.people()
    return report


class _Discard(Exception):
    """Leaves process_video's output block without renaming the temporary annotated file."""


def csv_rows(reports: Iterable[VideoReport]) -> Iterator[list[str]]:
    """One row per face per sampled frame; a video with an error gets a row saying so."""
    from fer.record import safe_csv_cell

    for report in reports:
        for frame in report.frames:
            for face in frame.faces:
                row = [
                    report.file,
                    f"{frame.time:.3f}",
                    face.person,
                    *face.box.as_list(),
                    face.label,
                    *(f"{p:.4f}" for p in face.probs),
                    f"{face.uncertainty:.4f}",
                    bool(face.uncertain),
                    "",
                ]
                yield [safe_csv_cell(v) for v in row]
        if report.error:
            yield [safe_csv_cell(v) for v in (report.file, *[""] * (len(VIDEO_CSV_COLUMNS) - 2), report.error)]


def video_csv(reports: Iterable[VideoReport]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(VIDEO_CSV_COLUMNS)
    writer.writerows(csv_rows(reports))
    return buffer.getvalue()


def write_video_csv(reports: Iterable[VideoReport], path: str | os.PathLike) -> None:
    """The CSV (UTF-8 with a byte-order mark, as fer.batch writes it, for spreadsheet apps)."""
    write_user_file(path, video_csv(reports), encoding="utf-8-sig")


# -- live camera --------------------------------------------------------------------------------------


class LiveAnalyser:
    """Camera frames one at a time: faces tracked across frames and each person's probabilities smoothed.

    `smoothing` in [0, 1): the weight of the past in an exponential moving average per person (0: each
    frame on its own). Not thread-safe: one per camera stream."""

    def __init__(self, predictor, smoothing: float = 0.6, detect_side: int | None = LIVE_DETECT_SIDE):
        self.predictor = predictor
        self.smoothing = smoothing
        self.detect_side = detect_side
        self.tracker = FaceTracker()
        self._smoothed: dict[int, np.ndarray] = {}
        self._index = 0

    def process(self, image: np.ndarray, time: float) -> FrameResult:
        (result,) = analyse_frames(
            [(time, image)], self.predictor, self.tracker, batch_frames=1, keep_faces=True, detect_side=self.detect_side
        )
        weight = min(max(float(self.smoothing), 0.0), 0.99)
        for face in result.faces:
            past = self._smoothed.get(face.person)
            if past is not None:
                face.probs = weight * past + (1 - weight) * face.probs
            self._smoothed[face.person] = face.probs
        live = {t.person for t in self.tracker.tracks}
        self._smoothed = {k: v for k, v in self._smoothed.items() if k in live}
        result.index = self._index
        self._index += 1
        return result
