import pytest
import torch
from torch import nn

from fer.model import FerNet, ModelConfig, count_macs, count_params, describe, stage_sizes


def test_forward_shapes_and_feature_map():
    model = FerNet(ModelConfig(widths=(8, 16, 24, 32), depths=(1, 1, 1, 1))).eval()
    x = torch.rand(5, 1, 48, 48)
    assert model(x).shape == (5, 4)
    assert model.features(x).shape == (5, 32, 6, 6)


def test_config_round_trip_and_costs():
    config = ModelConfig(widths=(16, 32, 64, 128), depths=(1, 2, 2, 1), dropout=0.1)
    again = ModelConfig.from_dict(config.to_dict())
    assert again == config
    model = FerNet(config)
    assert count_params(model) == sum(p.numel() for p in model.parameters())
    assert 10e6 < count_macs(model) < 100e6


def test_blocks_start_as_identity_so_training_starts_stable():
    model = FerNet(ModelConfig(widths=(8, 16, 24, 32), depths=(2, 2, 2, 2))).eval()
    block = model.stages[0][1]
    x = torch.rand(2, 8, 48, 48)
    assert torch.allclose(block(x), torch.relu(x))


def test_an_empty_first_stage_goes_from_the_stem_straight_to_24_pixels():
    # depths (0, ...): no residual block at full resolution; the stem feeds the stride-2 second stage.
    config = ModelConfig(widths=(8, 16, 24, 32), depths=(0, 1, 1, 1))
    model = FerNet(config).eval()
    x = torch.rand(3, 1, 48, 48)
    assert model(x).shape == (3, 4)
    assert model.features(x).shape == (3, 32, 6, 6)
    assert len(model.stages[0]) == 0
    assert stage_sizes(config) == {1: 24, 2: 12, 3: 6}
    assert stage_sizes(ModelConfig()) == {0: 48, 1: 24, 2: 12, 3: 6}
    assert count_macs(model) < count_macs(FerNet(ModelConfig(widths=(8, 16, 24, 32), depths=(1, 1, 1, 1))))


@pytest.mark.parametrize("depths", [(1, 0, 1, 1), (1, 1, 1, 0)])
def test_only_the_first_stage_may_be_empty(depths):
    with pytest.raises(ValueError, match="depth 0"):
        FerNet(ModelConfig(widths=(8, 16, 24, 32), depths=depths))


def test_squeeze_excitation_scales_whole_channels_after_the_full_resolution_stage():
    config = ModelConfig(widths=(8, 16, 24, 32), depths=(1, 1, 1, 1), se_reduction=4)
    assert ModelConfig.from_dict(config.to_dict()) == config
    model = FerNet(config).eval()
    assert isinstance(model.stages[0][0].se, nn.Identity)  # none at 48 px, where it costs the most time
    gate = model.stages[1][0].se
    x = torch.rand(2, 16, 24, 24) + 0.1
    with torch.no_grad():
        ratio = gate(x) / x
    # One factor in (0, 1) per face and channel, the same at every pixel.
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio), atol=1e-6)
    assert ((ratio > 0) & (ratio < 1)).all()
    assert model(torch.rand(3, 1, 48, 48)).shape == (3, 4)
    plain = ModelConfig(widths=(8, 16, 24, 32), depths=(1, 1, 1, 1), se_reduction=0)
    assert count_params(model) > count_params(FerNet(plain))


def test_the_description_names_the_stages_that_exist_and_the_gates():
    plain = describe(ModelConfig(se_reduction=0))
    assert "stages at 48/24/12/6 px" in plain and "squeeze" not in plain
    assert "squeeze-and-excitation gates, reduction 8" in describe(ModelConfig())  # the shipped network
    gated = describe(ModelConfig(depths=(0, 2, 2, 2), se_reduction=8))
    assert "stages at 24/12/6 px" in gated and "squeeze-and-excitation gates, reduction 8" in gated
