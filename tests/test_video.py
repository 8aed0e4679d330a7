"""fer.video: streamed decoding, sampling, tracking, limits and bad files, outputs, the `fer video` CLI.

Clips are made in the tests (PyAV, in memory) from dataset faces pasted on a background, or from plain
drawn frames where no face is needed; none is stored.
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import pytest
from conftest import make_clip, pasted, segments_clip

from fer import video
from fer.cli import main
from fer.config import CLASSES
from fer.errors import FerError, VideoError
from fer.faces import Box, Face


def plain_frames(count: int, size=(160, 120)):
    """Frames whose brightness encodes their number (10 levels apart), with a white block top left."""
    width, height = size
    for i in range(count):
        frame = np.full((height, width, 3), (i * 10) % 250, np.uint8)
        frame[4:24, 4:44] = 255
        yield frame


def read_all(data, name="clip.mp4", fps=5.0):
    with video.Video(data, name) as clip:
        return list(clip.frames(fps)), clip


def error_of(data, name="clip.mp4") -> str:
    with pytest.raises(VideoError) as caught:
        read_all(data, name)
    return str(caught.value)


# -- reading ------------------------------------------------------------------------------------------


def test_a_clip_is_sampled_by_time_from_memory_and_from_a_path(tmp_path):
    data = make_clip(plain_frames(30), fps=10)  # 3 s at 10 frames/s
    frames, clip = read_all(data, fps=5)
    times = [t for t, _ in frames]
    assert times == pytest.approx([i * 0.2 for i in range(15)], abs=1e-6)
    assert clip.info.width == 160 and clip.info.height == 120 and clip.info.duration == pytest.approx(3.0)
    assert clip.info.codec == "h264" and clip.info.container == "MP4/MOV"
    # The frame at 0.2 s is the source's third (brightness 20): sampled frames are the right ones.
    assert abs(float(frames[1][1][60:, :, 0].mean()) - 20) < 3
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    assert [t for t, _ in read_all(str(path))[0]] == times
    assert [t for t, _ in read_all(data, fps=2)[0]] == pytest.approx([0, 0.5, 1.0, 1.5, 2.0, 2.5], abs=1e-6)


@pytest.mark.parametrize(
    ("fmt", "codec", "container"),
    [("webm", "libvpx-vp9", "WebM/MKV"), ("avi", "mpeg4", "AVI"), ("mov", "libx264", "MP4/MOV")],
)
def test_webm_avi_and_mov_are_read(fmt, codec, container):
    frames, clip = read_all(make_clip(plain_frames(20), fps=10, fmt=fmt, codec=codec), name=f"clip.{fmt}")
    assert clip.info.container == container
    assert len(frames) == 10


def test_a_variable_frame_rate_keeps_true_times_with_a_note():
    times = [0.0, 0.03, 0.1, 0.2, 0.22, 0.5, 0.6, 0.61, 0.9, 1.0, 1.1, 1.5, 1.6, 1.61, 1.7, 2.0]
    frames, clip = read_all(make_clip(plain_frames(len(times)), times=times), fps=5)
    sampled = [t for t, _ in frames]
    # Each sample is the first frame at or after its 0.2 s mark (within half a frame), at its own time.
    assert all(t in times for t in sampled) and sampled[:4] == pytest.approx([0.0, 0.2, 0.5, 0.6])
    assert any("variable frame rate" in note for note in clip.notes)


def test_a_rotation_tag_turns_the_frames_upright():
    upright = np.zeros((120, 160, 3), np.uint8)
    upright[:30, :50] = 255  # a white block at the top left, as the viewer should see it
    stored = np.ascontiguousarray(np.rot90(upright, k=-1))  # a phone stores the picture turned
    frames, clip = read_all(make_clip([stored] * 5, rotation=90))
    image = frames[0][1]
    assert image.shape == upright.shape
    assert image[:30, :50].mean() > 200 and image[60:, 80:].mean() < 30
    assert (clip.info.width, clip.info.height, clip.info.rotation) == (160, 120, 90)
    assert any("rotation tag" in note for note in clip.notes)


def test_a_large_frame_is_decoded_at_a_bounded_size():
    frames, clip = read_all(make_clip(plain_frames(2, size=(1920, 1080))))
    assert frames[0][1].shape == (720, 1280, 3) and clip.info.decoded_size == (1280, 720)
    assert any("analysed at 1280x720" in note for note in clip.notes)


def test_frame_at_finds_the_moment():
    data = make_clip(plain_frames(30), fps=10)
    image = video.frame_at(data, 1.3)
    assert abs(float(image[60:, :, 0].mean()) - 130) < 3


# -- limits and bad files -----------------------------------------------------------------------------


def test_a_renamed_text_file_says_so():
    assert "is a text file, not a video" in error_of(b"These are my notes about the meeting.\n" * 20)


def test_a_renamed_photo_says_so():
    from conftest import encode
    from PIL import Image

    assert "is a photo (JPEG), not a video" in error_of(encode(Image.new("RGB", (64, 48), "gray")))


def test_audio_only_says_so():
    assert "holds only sound" in error_of(make_clip([], audio=True, fmt="mp4"))
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40)
    assert "holds only audio" in error_of(wav, "talk.mp4")


def test_zero_frames_says_so():
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:  # a header and a video track, no frame
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height = 160, 120
        container.start_encoding()
    assert "holds no video frames" in error_of(buffer.getvalue())
    assert "is empty (0 bytes)" in error_of(b"")


def test_a_truncated_mp4_says_so():
    data = make_clip(plain_frames(30))  # its index (moov) is at the end: cut off, nothing can be read
    assert "damaged or incomplete" in error_of(data[: len(data) // 2])


def test_a_truncated_webm_keeps_the_frames_before_the_cut():
    data = make_clip(plain_frames(100), fps=10, fmt="webm", codec="libvpx-vp9")  # 10 s; its header says so
    with video.Video(data[: len(data) // 2], "cut.webm") as clip:
        frames = clip.frames(5)
        kept = []
        with pytest.raises(VideoError, match=r"ends at .* although its header says 10.0 s: the file is truncated"):
            for t, _ in frames:
                kept.append(t)
    assert 1.0 < len(kept) / 5 < 9.5  # seconds read before the cut


def test_a_corrupt_file_says_so():
    data = bytearray(make_clip(plain_frames(30)))
    rng = np.random.default_rng(0)
    data[-600:] = rng.integers(0, 256, 600, dtype=np.uint8).tobytes()  # the index at the end
    assert "is damaged" in error_of(bytes(data))
    garbage = bytes(data[:32]) + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    assert "damaged or incomplete" in error_of(garbage)


def test_mostly_undecodable_frames_say_the_file_is_damaged():
    data = bytearray(make_clip(plain_frames(60, size=(320, 240)), fps=10))
    rng = np.random.default_rng(1)
    start = data.find(b"mdat") + 8
    index = data.find(b"moov")
    data[start + 50 : index - 8] = rng.integers(0, 256, index - 8 - start - 50, dtype=np.uint8).tobytes()
    assert "is damaged" in error_of(bytes(data))


def test_too_long_too_wide_and_too_large_are_refused(monkeypatch, tmp_path):
    long_clip = make_clip(plain_frames(2), times=[0, 31 * 60])  # two frames 31 minutes apart
    assert "lasts 31.0 minutes: videos up to 30 minutes" in error_of(long_clip)
    wide = make_clip(plain_frames(1, size=(4112, 64)))
    assert "is 4112x64: videos up to 4096 pixels" in error_of(wide)
    small = make_clip(plain_frames(5))
    monkeypatch.setattr(video, "MAX_VIDEO_BYTES", len(small) - 1)
    assert "is larger than" in error_of(small)
    path = tmp_path / "big.mp4"
    path.write_bytes(small)
    assert "is larger than" in error_of(str(path))
    assert "File not found" in error_of(str(tmp_path / "missing.mp4"))
    assert "is a folder" in error_of(str(tmp_path))


def test_the_sampling_rate_is_checked():
    with pytest.raises(FerError, match="between 0.1 and 30"):
        video.check_fps(0)
    with pytest.raises(FerError, match="must be a number"):
        video.check_fps("fast")


# -- tracking -----------------------------------------------------------------------------------------


def face_at(x: float, y: float, side: float = 100) -> Face:
    cx, cy = x + side / 2, y + side / 2
    points = ((cx - 20, cy - 15), (cx + 20, cy - 15), (cx, cy), (cx - 15, cy + 20), (cx + 15, cy + 20))
    return Face(Box(round(x), round(y), round(side), round(side)), 0.9, points)


def test_two_faces_crossing_on_one_line_keep_their_numbers():
    tracker = video.FaceTracker()
    for step in range(40):
        t = step * 0.2
        a, b = face_at(100 + 60 * t, 200), face_at(500 - 60 * t, 210)  # they pass each other at about 3.3 s
        faces = [b, a] if step % 2 else [a, b]  # the detector's order means nothing
        people = tracker.update(t, faces)
        by_face = dict(zip([id(f) for f in faces], people))
        assert (by_face[id(a)], by_face[id(b)]) == (1, 2), t
    assert tracker.next_person == 3


def test_a_face_gone_too_long_gets_a_new_number_and_a_new_face_numbers_left_to_right():
    tracker = video.FaceTracker(max_gap=1.0)
    assert tracker.update(0.0, [face_at(300, 100), face_at(50, 100)]) == [2, 1]
    for t in (0.3, 0.6, 0.9):
        assert tracker.update(t, [face_at(300 + 10 * t, 100)]) == [2]
    # At 1.4 s person 1 has been gone 1.4 s and 3 frames (a new number), person 2 only 0.5 s (the same number).
    assert tracker.update(1.4, [face_at(55, 100), face_at(314, 100)]) == [3, 2]


def test_a_slow_stream_keeps_the_number_of_a_person_who_stayed():
    tracker = video.FaceTracker(max_gap=1.0)
    assert tracker.update(0.0, [face_at(100, 100)]) == [1]
    assert tracker.update(5.0, [face_at(104, 100)]) == [1]  # the next processed frame came 5 s later


# -- the whole pipeline on dataset faces --------------------------------------------------------------


@pytest.mark.slow
def test_the_timeline_changes_at_the_right_seconds_and_the_person_keeps_one_number(segment_faces, predictor):
    data = segments_clip(segment_faces)  # happy 0-4 s, surprise 4-8 s, neutral 8-12 s
    report = video.process_video(data, predictor, fps=5, name="segments.mp4")
    assert report.error is None, report.error
    assert len(report.frames) == 60
    for k, name in enumerate(("happy", "surprise", "neutral")):
        frames = [f for f in report.frames if 4 * k <= f.time < 4 * (k + 1)]
        labels = [face.label for f in frames for face in f.faces]
        assert sum(label == name for label in labels) >= 0.9 * len(frames), (name, labels)
    assert {face.person for f in report.frames for face in f.faces} == {1}
    (person,) = report.people
    assert person.shares.sum() == pytest.approx(1.0)
    for name in ("happy", "surprise", "neutral"):
        assert 0.25 < person.shares[CLASSES.index(name)] < 0.42
    # The change is at the right moment: the first surprise label is at 4 s, the first neutral at 8 s.
    first = {}
    for f in report.frames:
        for face in f.faces:
            first.setdefault(face.label, f.time)
    assert first["surprise"] == pytest.approx(4.0, abs=0.21) and first["neutral"] == pytest.approx(8.0, abs=0.21)


@pytest.mark.slow
def test_two_faces_that_swap_sides_keep_their_numbers(segment_faces, predictor):
    happy, surprise = segment_faces["happy"], segment_faces["surprise"]
    frames = []
    for i in range(60):  # 6 s at 10 frames/s: the happy face goes right, the surprised one left
        x_happy, x_surprise = 20 + 7 * i, 460 - 7 * i
        frames.append(pasted([(surprise, x_surprise, 250), (happy, x_happy, 60)], side=140))
    report = video.process_video(make_clip(frames, fps=10), predictor, fps=5, name="swap.mp4")
    assert report.error is None
    people = {face.person for f in report.frames for face in f.faces}
    assert people == {1, 2}, people
    # Person 1 was the left face at the start (happy); it must still be the happy face at the end, on the right.
    for f in report.frames:
        for face in f.faces:
            assert face.label == ("happy" if face.person == 1 else "surprise"), (f.time, face.person, face.label)
    start, end = report.frames[0], report.frames[-1]
    x = {(f.time, face.person): face.box.x for f in (start, end) for face in f.faces}
    assert x[(start.time, 1)] < x[(start.time, 2)] and x[(end.time, 1)] > x[(end.time, 2)]


@pytest.mark.slow
def test_the_annotated_video_and_csv(segment_faces, predictor, tmp_path):
    data = segments_clip(segment_faces, seconds=1)
    out = tmp_path / "annotated.mp4"
    report = video.process_video(data, predictor, fps=5, name="=clip.mp4", annotated=str(out))
    assert out.is_file() and [p.name for p in tmp_path.iterdir()] == ["annotated.mp4"]  # no temporary left
    frames, clip = read_all(str(out), fps=30)
    assert [t for t, _ in frames] == pytest.approx([f.time for f in report.frames], abs=0.002)
    # Each face is boxed in its class colour: the box's left edge, in the frame written at that time.
    # H.264 keeps colour at half resolution, so a 2-pixel line is blended with what lies beside it: the
    # line's pixels must be nearer its class's colour than any other class's.
    face = report.frames[0].faces[0]
    middle = slice(face.box.y + face.box.h // 4, face.box.y + 3 * face.box.h // 4)
    edge = frames[0][1][middle, face.box.x : face.box.x + 2].reshape(-1, 3).astype(int).mean(axis=0)
    colours = {name: np.array([int(c[i : i + 2], 16) for i in (1, 3, 5)]) for name, c in video.BOX_COLORS.items()}
    nearest = min(colours, key=lambda name: np.abs(edge - colours[name]).sum())
    assert nearest == face.label, (edge, face.label)
    rows = list(csv.DictReader(io.StringIO(video.video_csv([report]))))
    assert len(rows) == sum(len(f.faces) for f in report.frames)
    assert rows[0]["file"] == "'=clip.mp4"  # formula-safe
    assert rows[0]["person"] == "1" and rows[0]["label"] == "happy" and float(rows[0]["time_s"]) == 0.0
    assert sum(float(rows[0][f"p_{name}"]) for name in CLASSES) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.slow
def test_a_failed_run_leaves_no_temporary_file(segment_faces, predictor, tmp_path, monkeypatch):
    data = segments_clip(segment_faces, seconds=1)
    out = tmp_path / "annotated.mp4"

    def broken(*args, **kwargs):
        yield from ()
        raise KeyboardInterrupt  # the user stops the CLI half-way

    seen = []
    real = video.AnnotatedWriter.write

    def write_then_break(self, frame, image=None):
        seen.append(list(tmp_path.iterdir()))  # the temporary file exists while writing
        real(self, frame, image)
        raise KeyboardInterrupt

    monkeypatch.setattr(video.AnnotatedWriter, "write", write_then_break)
    with pytest.raises(KeyboardInterrupt):
        video.process_video(data, predictor, fps=5, annotated=str(out))
    assert seen and seen[0][0].name.endswith(".part")
    assert list(tmp_path.iterdir()) == []
    # A video with no frame to analyse: no output, and no temporary file either.
    monkeypatch.setattr(video.Video, "frames", lambda self, fps: iter(()))
    report = video.process_video(data, predictor, fps=5, annotated=str(out))
    assert list(tmp_path.iterdir()) == [] and any("no annotated video" in n for n in report.notes)


@pytest.mark.slow
def test_live_smoothing_holds_the_past(segment_faces, predictor):
    happy = pasted([(segment_faces["happy"], 240, 150)])
    surprise = pasted([(segment_faces["surprise"], 240, 150)])
    raw = video.LiveAnalyser(predictor, smoothing=0.0)
    smooth = video.LiveAnalyser(predictor, smoothing=0.8)
    for t in range(3):
        raw.process(happy, t * 0.1)
        smooth.process(happy, t * 0.1)
    now_raw, now_smooth = raw.process(surprise, 0.3), smooth.process(surprise, 0.3)
    assert now_raw.faces[0].label == "surprise" and now_smooth.faces[0].label == "happy"
    assert now_smooth.faces[0].person == 1 and now_smooth.faces[0].face.shape == (48, 48)
    for t in range(4, 20):
        later = smooth.process(surprise, t * 0.1)
    assert later.faces[0].label == "surprise"


# -- CLI ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_writes_the_csv_and_annotated_video_and_exits_1_for_a_bad_file(segment_faces, tmp_path, capsys):
    clip, bad = tmp_path / "clip.mp4", tmp_path / "notes.mp4"
    clip.write_bytes(segments_clip(segment_faces, seconds=1))
    bad.write_text("not a video\n")
    out, faces = tmp_path / "out", tmp_path / "faces.csv"
    out.mkdir()
    assert main(["video", str(clip), "--fps", "5", "--csv", str(faces), "--out", str(out / "a.mp4")]) == 0
    assert (out / "a.mp4").is_file()
    rows = list(csv.DictReader(io.StringIO(faces.read_text(encoding="utf-8-sig"))))
    assert len(rows) >= 13 and {r["person"] for r in rows} == {"1"} and rows[0]["label"] == "happy"
    printed = capsys.readouterr().out
    assert "person 1" in printed and "15 frames analysed at 5/s" in printed
    # A batch with a bad file: the good one is still analysed, the bad one has its message; exit 1.
    assert main(["video", str(bad), str(clip), "--csv", str(faces), "--out", str(out)]) == 1
    rows = list(csv.DictReader(io.StringIO(faces.read_text(encoding="utf-8-sig"))))
    assert rows[0]["error"].endswith("is a text file, not a video; use an MP4 (H.264), WebM, MOV or AVI video.")
    assert any(r["file"].endswith("clip.mp4") and r["label"] for r in rows)
    assert (out / "clip-annotated.mp4").is_file()


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(make_clip(plain_frames(5)))
    assert main(["video", str(clip), "--fps", "0"]) == 2
    assert "between 0.1 and 30" in capsys.readouterr().err
    assert main(["video", str(clip), "--csv", str(tmp_path / "no" / "faces.csv")]) == 2
    assert main(["video", str(clip), str(clip), "--out", str(tmp_path / "x.mp4")]) == 2
    assert "must be an existing folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["video"])
    assert usage.value.code == 2
    assert not os.path.exists(tmp_path / "x.mp4")


def test_box_colours_are_the_apps():
    from app.plots import CLASS_COLORS

    assert video.BOX_COLORS == CLASS_COLORS
