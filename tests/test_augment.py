import numpy as np
import pytest
import torch

from fer.augment import AugmentConfig, augment, degrade, degrade_faces, mixup
from fer.model import to_tensor


def real_batch(validation, n=16):
    faces = to_tensor(validation.images[:n])
    targets = torch.nn.functional.one_hot(torch.from_numpy(validation.labels[:n]), 4).float()
    return faces, targets


def test_mixup_with_alpha_zero_leaves_the_batch_alone(validation):
    faces, targets = real_batch(validation)
    out, out_targets = mixup(faces, targets, 0.0, torch.Generator().manual_seed(0))
    assert out is faces and out_targets is targets


def test_mixup_blends_images_and_targets_with_the_same_weight(validation):
    """Two faces of different classes: each mixed image is a * face0 + b * face1, and its target must be
    a * target0 + b * target1 with the same a and b, read back from the pixels."""
    first = int(np.flatnonzero(validation.labels == 0)[0])
    second = int(np.flatnonzero(validation.labels == 1)[0])
    faces = to_tensor(validation.images[[first, second]]).double()
    targets = torch.nn.functional.one_hot(torch.tensor([0, 1]), 4).double()
    torch.manual_seed(1)  # the Beta draw uses torch's global generator
    mixed, mixed_targets = mixup(faces, targets, 1.0, torch.Generator().manual_seed(1))
    basis = faces.flatten(1).T  # (pixels, 2)
    weights = torch.linalg.lstsq(basis, mixed.flatten(1).T).solution.T  # per mixed image: (a, b)
    assert torch.allclose(basis @ weights.T, mixed.flatten(1).T, atol=1e-9)  # it really is such a blend
    # The seed gives a real, lopsided blend: swapped target weights would not match by chance.
    assert 0.1 < weights[0, 0] < 0.9 and abs(weights[0, 0] - 0.5) > 0.05, weights
    assert torch.allclose(mixed_targets[:, :2], weights, atol=1e-6)
    assert torch.allclose(mixed_targets.sum(dim=1), torch.ones(2, dtype=torch.float64))


def test_augment_keeps_shape_and_range_and_is_reproducible_with_a_seed(validation):
    faces, _ = real_batch(validation)
    first = augment(faces, AugmentConfig(), torch.Generator().manual_seed(5))
    again = augment(faces, AugmentConfig(), torch.Generator().manual_seed(5))
    assert first.shape == faces.shape and torch.equal(first, again)
    assert first.min() >= 0 and first.max() <= 1 and not torch.equal(first, faces)


def test_degrade_changes_every_face_when_always_on_and_is_fixed_by_the_seed(validation):
    faces, _ = real_batch(validation)
    degraded = degrade(faces, 1.0, torch.Generator().manual_seed(0))
    assert degraded.shape == faces.shape and degraded.min() >= 0 and degraded.max() <= 1
    assert ((degraded - faces).abs().mean(dim=(1, 2, 3)) > 0.01).all()
    assert torch.equal(degraded, degrade(faces, 1.0, torch.Generator().manual_seed(0)))


def test_degrade_off_never_calls_degrade(validation, monkeypatch):
    faces, _ = real_batch(validation)

    def degrade_called(*args):
        raise AssertionError("degrade was called")

    # degrade=0 (the default) must not run degrade, which draws random numbers: a recipe without it
    # reproduces bit for bit.
    monkeypatch.setattr("fer.augment.degrade", degrade_called)
    augment(faces, AugmentConfig(degrade=0.0), torch.Generator().manual_seed(1))
    with pytest.raises(AssertionError, match="degrade was called"):  # the spy is the function augment calls
        augment(faces, AugmentConfig(degrade=0.5), torch.Generator().manual_seed(1))


def test_degrade_faces_is_fixed_by_its_seed(validation):
    faces = validation.images[:40]
    first, again = degrade_faces(faces, seed=3), degrade_faces(faces, seed=3)
    assert first.dtype == np.uint8 and first.shape == faces.shape
    assert np.array_equal(first, again) and not np.array_equal(first, faces)
    assert not np.array_equal(first, degrade_faces(faces, seed=4))
