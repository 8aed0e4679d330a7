"""Broken weights: the CLI refuses them with a clear message and the app shows a friendly page, never a traceback."""

import shutil

import pytest
from streamlit.testing.v1 import AppTest

from app.session import Key
from fer.checkpoint import CARD_NAME
from fer.cli import main as cli
from fer.config import DEFAULT_WEIGHTS


@pytest.fixture()
def tampered(tmp_path):
    """A copy of the shipped weights and card with one byte of the weights flipped."""
    shutil.copy(DEFAULT_WEIGHTS.parent / CARD_NAME, tmp_path / CARD_NAME)
    weights = bytearray(DEFAULT_WEIGHTS.read_bytes())
    weights[len(weights) // 3] ^= 0x01
    (tmp_path / DEFAULT_WEIGHTS.name).write_bytes(bytes(weights))
    return tmp_path / DEFAULT_WEIGHTS.name


@pytest.mark.parametrize(
    "kind,message",
    [
        ("tampered", "corrupt or was modified"),
        ("missing", "Weights file not found"),
        ("text", "not a readable fer checkpoint"),
    ],
)
def test_app_shows_a_clear_message_for_broken_weights(kind, message, tampered, tmp_path, monkeypatch):
    path = {"tampered": tampered, "missing": tmp_path / "gone.pt", "text": tmp_path / "notes.pt"}[kind]
    if kind == "text":
        path.write_text("not weights")
    monkeypatch.setenv("FER_WEIGHTS", str(path))
    monkeypatch.setenv("FER_NO_WARMUP", "1")
    at = AppTest.from_file("../streamlit_app.py", default_timeout=180)
    at.run()
    at.radio(key=Key.PREDICT_SOURCE).set_value("Try a sample photo")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert any(message in e.value for e in at.error), [e.value for e in at.error]


def test_cli_refuses_broken_weights(tampered, tmp_path, capsys, detectable_faces):
    from conftest import encode, make_photo

    photo = tmp_path / "face.jpg"
    photo.write_bytes(encode(make_photo(detectable_faces[:1], size=(400, 400))[0]))
    assert cli(["predict", str(photo), "--weights", str(tampered)]) == 2
    assert "corrupt or was modified" in capsys.readouterr().err
    notes = tmp_path / "notes.pt"
    notes.write_text("hello")
    assert cli(["predict", str(photo), "--weights", str(notes)]) == 2
    assert "not a readable fer checkpoint" in capsys.readouterr().err
    assert cli(["evaluate", "--data", str(tmp_path), "--weights", str(tampered)]) == 2
