import numpy as np
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
    faces, targets = real_batch(validation)
    torch.manual_seed(3)
    mixed, mixed_targets = mixup(faces, targets, 0.2, torch.Generator().manual_seed(3))
    assert torch.allclose(mixed_targets.sum(dim=1), torch.ones(len(faces)))
    assert not torch.equal(mixed, faces)


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


def test_degrade_off_changes_nothing_and_draws_nothing(validation):
    faces, _ = real_batch(validation)
    off, plain = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    # degrade=0 (the default) must not draw random numbers: a recipe without it reproduces bit for bit.
    assert torch.equal(augment(faces, AugmentConfig(degrade=0.0), off), augment(faces, AugmentConfig(), plain))
    assert torch.equal(off.get_state(), plain.get_state())


def test_degrade_faces_is_fixed_by_its_seed(validation):
    faces = validation.images[:40]
    first, again = degrade_faces(faces, seed=3), degrade_faces(faces, seed=3)
    assert first.dtype == np.uint8 and first.shape == faces.shape
    assert np.array_equal(first, again) and not np.array_equal(first, faces)
    assert not np.array_equal(first, degrade_faces(faces, seed=4))
