import numpy as np
import pytest
import torch

from fer import quantize
from fer.model import FerNet, ModelConfig, to_tensor
from fer.predict import Classifier


def test_shipped_classifier_serves_the_int8_model(classifier, val_subset):
    """Predictions run on the int8 network rebuilt from the weights' int8 state, not on the fp32 network."""
    assert classifier.precision == "int8"
    int8 = quantize.from_state_dict(classifier.model, classifier.meta["int8_state_dict"])
    faces = val_subset.images[:32]
    served_logits, served_embeddings = classifier.with_tta(False).outputs(faces)
    with torch.no_grad():
        int8_logits, int8_embeddings = int8(to_tensor(faces))
        fp32_logits = classifier.model(to_tensor(faces))
    assert torch.equal(served_logits, int8_logits) and torch.equal(served_embeddings, int8_embeddings)
    assert not torch.allclose(served_logits, fp32_logits, atol=1e-3)  # int8's rounding shows


@pytest.mark.slow
def test_int8_agrees_with_fp32_on_real_faces(classifier, val_subset):
    fp32 = Classifier(classifier.model, {k: v for k, v in classifier.meta.items() if k != "int8_state_dict"})
    assert fp32.precision == "fp32"
    int8_probs = classifier.predict_proba(val_subset.images)
    fp32_probs = fp32.predict_proba(val_subset.images)
    agreement = (int8_probs.argmax(1) == fp32_probs.argmax(1)).mean()
    assert agreement > 0.97
    assert np.abs(int8_probs - fp32_probs).mean() < 0.02


@pytest.mark.slow
def test_quantized_state_dict_round_trip_is_exact(classifier, val_subset):
    quantized = quantize.quantize(classifier.model, val_subset.images[:64])
    rebuilt = quantize.from_state_dict(classifier.model, quantized.state_dict())
    x = torch.from_numpy(val_subset.images[64:96]).unsqueeze(1).float() / 255
    with torch.no_grad():
        (logits, embedding), (rebuilt_logits, rebuilt_embedding) = quantized(x), rebuilt(x)
    assert logits.shape == (32, 4) and embedding.shape == (32, classifier.model.config.widths[-1])
    assert torch.equal(logits, rebuilt_logits) and torch.equal(embedding, rebuilt_embedding)


def test_served_outputs_match_the_plain_network(classifier, val_subset):
    """The int8 (logits, features) pair tracks the fp32 network's own head and pooled features (one view
    each: the weights may be served with the mirror averaged in)."""
    x = torch.from_numpy(val_subset.images[:64]).unsqueeze(1).float() / 255
    logits, embeddings = classifier.with_tta(False).outputs(val_subset.images[:64])
    with torch.no_grad():
        fp32_embeddings = classifier.model.embed(x)
        fp32_logits = classifier.model(x)
    assert torch.corrcoef(torch.stack([embeddings.flatten(), fp32_embeddings.flatten()]))[0, 1] > 0.98
    assert (logits.argmax(1) == fp32_logits.argmax(1)).float().mean() > 0.95


def test_a_network_with_squeeze_excitation_gates_quantizes(val_subset):
    """The gates (pooling, two linear layers, sigmoid, product) go through FX quantization too."""
    torch.manual_seed(0)
    model = FerNet(ModelConfig(widths=(8, 16, 24, 32), depths=(1, 1, 1, 1), se_reduction=4)).eval()
    for module in model.modules():  # non-trivial residual branches, not the identity they start as
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
    quantized = quantize.quantize(model, val_subset.images[:64])
    x = torch.from_numpy(val_subset.images[64:128]).unsqueeze(1).float() / 255
    with torch.no_grad():
        logits, embedding = quantized(x)
        fp32_embedding = model.embed(x)
    assert logits.shape == (64, 4)
    assert torch.corrcoef(torch.stack([embedding.flatten(), fp32_embedding.flatten()]))[0, 1] > 0.98


def _input_codes(quantized: torch.nn.Module) -> torch.Tensor:
    """The uint8 codes the int8 model gives the 256 gray levels (its first step: normalise, quantize)."""
    scale, zero_point = quantize.input_quantization(quantized)
    gray = torch.arange(256, dtype=torch.float32) / 255
    normalised = (gray - FerNet.MEAN) / FerNet.STD
    return torch.quantize_per_tensor(normalised, float(scale), int(zero_point), torch.quint8).int_repr()


def test_each_gray_level_gets_its_own_input_code(classifier, val_subset):
    """Observed ranges gave the input 128 codes, merging neighbouring gray levels (cost 0.2 points)."""
    quantized = quantize.quantize(classifier.model, val_subset.images[:64])
    assert torch.equal(_input_codes(quantized), torch.arange(256, dtype=torch.uint8))
    shipped = classifier.inference_network
    assert torch.equal(_input_codes(shipped), torch.arange(256, dtype=torch.uint8))


def test_stem_weights_use_7_bits(classifier):
    """Full-range uint8 input x 7-bit weights cannot overflow int16 pair sums on CPUs without VNNI."""
    codes = classifier.inference_network.stem.get_submodule("0").weight().int_repr()
    assert codes.abs().max() <= 64 and codes.abs().max() >= 60  # 7 bits, and actually used


def test_the_activation_ranges_alone_rebuild_the_same_int8_network(classifier, val_subset):
    """A checkpoint keeps only the activations' scales and zero points; the int8 weights come again from
    the float weights, code for code."""
    quantized = quantize.quantize(classifier.model, val_subset.images[:64])
    ranges = quantize.activation_ranges(quantized)
    whole = quantized.state_dict()
    assert 0 < len(ranges) < len(whole) and all(not v.is_quantized for v in ranges.values())
    rebuilt = quantize.from_state_dict(classifier.model, ranges)
    x = to_tensor(val_subset.images[64:96])
    with torch.no_grad():
        (logits, embedding), (rebuilt_logits, rebuilt_embedding) = quantized(x), rebuilt(x)
    assert torch.equal(logits, rebuilt_logits) and torch.equal(embedding, rebuilt_embedding)
    # Without one activation's range the int8 network would be wrong, so it is refused.
    incomplete = dict(ranges)
    del incomplete["head.scale"]
    with pytest.raises(KeyError, match="head.scale"):
        quantize.from_state_dict(classifier.model, incomplete)
