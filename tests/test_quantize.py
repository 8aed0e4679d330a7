import numpy as np
import torch

from fer import quantize
from fer.predict import Classifier


def test_shipped_classifier_serves_the_int8_model(classifier):
    assert classifier.precision == "int8"


def test_int8_agrees_with_fp32_on_real_faces(classifier, val_subset):
    fp32 = Classifier(classifier.model, {k: v for k, v in classifier.meta.items() if k != "int8_state_dict"})
    assert fp32.precision == "fp32"
    int8_probs = classifier.predict_proba(val_subset.images)
    fp32_probs = fp32.predict_proba(val_subset.images)
    agreement = (int8_probs.argmax(1) == fp32_probs.argmax(1)).mean()
    assert agreement > 0.97
    assert np.abs(int8_probs - fp32_probs).mean() < 0.02


def test_quantized_state_dict_round_trip_is_exact(classifier, val_subset):
    quantized = quantize.quantize(classifier.model, val_subset.images[:64])
    rebuilt = quantize.from_state_dict(classifier.model, quantized.state_dict())
    x = torch.from_numpy(val_subset.images[64:96]).unsqueeze(1).float() / 255
    with torch.no_grad():
        assert torch.equal(quantized(x), rebuilt(x))
