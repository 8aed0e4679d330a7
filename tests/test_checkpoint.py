import shutil

import pytest
import torch

from fer.checkpoint import DEFAULT_WEIGHTS, load_model, read_card, save_weights, sha256_of
from fer.errors import WeightsError
from fer.model import FerNet, ModelConfig


def test_shipped_weights_match_their_model_card():
    card = read_card()
    assert card["weights_file"] == DEFAULT_WEIGHTS.name
    assert sha256_of(DEFAULT_WEIGHTS) == card["weights_sha256"]
    model, meta = load_model()
    assert not model.training and meta["classes"] == card["classes"]


def test_round_trip_keeps_weights_and_temperature(tmp_path):
    model = FerNet(ModelConfig(widths=(8, 16, 24, 32), depths=(1, 1, 1, 1))).eval()
    sha = save_weights(tmp_path / "m.pt", model, temperature=1.7)
    assert sha == sha256_of(tmp_path / "m.pt")
    loaded, meta = load_model(tmp_path / "m.pt")
    assert meta["temperature"] == 1.7
    x = torch.rand(3, 1, 48, 48)
    assert torch.equal(loaded(x), model(x))


def test_float16_storage_halves_the_file_and_loads_as_float32(tmp_path):
    model = FerNet(ModelConfig(widths=(16, 32, 64, 128), depths=(1, 1, 1, 1))).eval()
    save_weights(tmp_path / "fp32.pt", model)
    save_weights(tmp_path / "fp16.pt", model, dtype=torch.float16)
    assert (tmp_path / "fp16.pt").stat().st_size < 0.6 * (tmp_path / "fp32.pt").stat().st_size
    loaded, _ = load_model(tmp_path / "fp16.pt")
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.rand(4, 1, 48, 48)
    assert torch.equal(loaded(x), model.half().float()(x))  # exactly the rounded model, nothing lost beyond


def shipped_copy(tmp_path):
    shutil.copy(DEFAULT_WEIGHTS, tmp_path / DEFAULT_WEIGHTS.name)
    shutil.copy(DEFAULT_WEIGHTS.parent / "model_card.json", tmp_path / "model_card.json")
    return tmp_path / DEFAULT_WEIGHTS.name


def test_corrupted_copy_is_refused_by_its_sha256(tmp_path):
    weights = shipped_copy(tmp_path)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupt or was modified"):
        load_model(weights)


def test_truncated_missing_and_foreign_files_are_refused(tmp_path):
    weights = shipped_copy(tmp_path)
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="corrupt"):
        load_model(weights)
    with pytest.raises(WeightsError, match="not a readable fer checkpoint"):
        load_model(weights, verify=False)
    with pytest.raises(WeightsError, match="not found"):
        load_model(tmp_path / "missing.pt")
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(WeightsError, match="not a readable fer checkpoint"):
        load_model(text)
    other = tmp_path / "other.pt"
    torch.save({"some": torch.zeros(2)}, other)
    with pytest.raises(WeightsError, match="not a fer checkpoint"):
        load_model(other)


class Payload:
    """Stands for any Python object a malicious checkpoint could smuggle in (unpickling runs code)."""


def test_pickled_objects_are_never_unpickled(tmp_path):
    # A checkpoint carrying an arbitrary Python object is refused by torch.load(weights_only=True).
    evil = tmp_path / "evil.pt"
    torch.save({"format": "fer-checkpoint-v1", "payload": Payload()}, evil)
    with pytest.raises(WeightsError, match="not a readable fer checkpoint"):
        load_model(evil)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"temperature": 0.0}, "unusable temperature"),
        ({"temperature": float("nan")}, "unusable temperature"),
        ({"temperature": "hot"}, "unusable temperature"),
        ({"people_temperature": -1.0}, "unusable people temperature"),
        ({"config": "abc"}, "does not match the model architecture"),
        ({"config": {"widths": [8, 16, 24, 32], "depths": [1, 0, 1, 1]}}, "does not match the model architecture"),
    ],
)
def test_checkpoints_with_a_bad_temperature_or_config_are_refused(tmp_path, change, message):
    save_weights(tmp_path / "m.pt", FerNet(ModelConfig(widths=(8, 16, 24, 32), depths=(1, 1, 1, 1))))
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    torch.save({**payload, **change}, tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match=message):
        load_model(tmp_path / "bad.pt")


def test_the_shipped_file_is_never_loaded_unchecked(tmp_path, monkeypatch):
    import fer.checkpoint

    weights = shipped_copy(tmp_path)
    monkeypatch.setattr(fer.checkpoint, "DEFAULT_WEIGHTS", weights)  # this copy plays the shipped file
    load_model(weights)  # its card beside it: checked and loaded
    (tmp_path / "model_card.json").unlink()
    with pytest.raises(WeightsError, match="No sha256"):
        load_model(weights)
    (tmp_path / "model_card.json").write_text("{not json")
    with pytest.raises(WeightsError, match="not valid JSON"):
        load_model(weights)
    load_model(weights, verify=False)  # asked for explicitly: no check
