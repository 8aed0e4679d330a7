"""An int8 copy of the model for fast CPU inference (post-training static quantization, PyTorch FX).

Convolutions and the linear head run in int8 with the x86 (fbgemm/oneDNN) kernels, faster than fp32
for whole photos and dataset splits (benchmarks/bench.py; docs/reliability.md). Activation ranges are
measured once on training faces by `fer card` and the int8 state dict ships inside the checkpoint, so
loading needs no data. Only the activations' scales and zero points ship (`activation_ranges`): the int8
weights follow from the float ones, which ship anyway, and converting them again at load gives the same
codes. Grad-CAM keeps using the fp32 model (it needs gradients).

The input gets exact quantization parameters instead of observed ones: a face has 256 gray levels and
each gets its own int8 code (see `_quantize_input_exactly`).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import torch

from fer.model import FerNet, LogitsAndEmbedding, to_tensor

ENGINE = "x86"
# FX quantization is deprecated (kept for its measured speed, docs/reliability.md); rebuilding the int8
# network from its state dict converts a network whose observers never ran (the ranges come with the
# state dict), and x86's default mapping uses reduce_range: torch warns about all three, for nothing here.
# Filtered once at import: warnings.catch_warnings() is not thread-safe.
warnings.filterwarnings("ignore", message="must run observer before calling calculate_qparams", category=UserWarning)
warnings.filterwarnings("ignore", message="Please use quant_min and quant_max", category=UserWarning)
warnings.filterwarnings("ignore", message="torch.ao.quantization is deprecated", category=DeprecationWarning)


def available() -> bool:
    return ENGINE in torch.backends.quantized.supported_engines


def _prepared(model: FerNet) -> torch.nn.Module:
    from torch.ao.quantization import QConfig, get_default_qconfig_mapping
    from torch.ao.quantization.observer import PerChannelMinMaxObserver
    from torch.ao.quantization.quantize_fx import prepare_fx

    torch.backends.quantized.engine = ENGINE
    mapping = get_default_qconfig_mapping(ENGINE)
    # The stem convolution reads the input on all 8 bits (see _quantize_input_exactly), where the default
    # activations use 7 (reduce_range). Without VNNI, x86 kernels add pairs of uint8 x int8 products in
    # int16; 7-bit weights (codes within +-64 after rounding) keep such a pair in range: 2 * 255 * 64 < 32768.
    # 9 weights per channel lose nothing measurable at 7 bits.
    weight_7bit = PerChannelMinMaxObserver.with_args(
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-64, quant_max=63
    )
    mapping.set_module_name("stem.0", QConfig(activation=mapping.global_qconfig.activation, weight=weight_7bit))
    size = model.config.input_size
    return prepare_fx(LogitsAndEmbedding.of(model), mapping, example_inputs=(torch.rand(1, 1, size, size),))


def _converted(prepared: torch.nn.Module) -> torch.nn.Module:
    from torch.ao.quantization.quantize_fx import convert_fx

    return convert_fx(prepared).eval()


def input_quantization(quantized: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The (scale, zero point) buffers the int8 model quantizes its normalised input with."""
    for node in quantized.graph.nodes:
        if node.op == "call_function" and node.target is torch.quantize_per_tensor:
            scale, zero_point = node.args[1:3]  # the first quantize in the graph: the input's
            return getattr(quantized, scale.target), getattr(quantized, zero_point.target)
    raise ValueError("no input quantization in this model")


def _quantize_input_exactly(quantized: torch.nn.Module) -> None:
    """Give each of the input's 256 gray levels its own uint8 code.

    The model quantizes (pixel / 255 - MEAN) / STD. The observed range got 7 bits (128 codes), so
    neighbouring gray levels merged and validation accuracy dropped (docs/reliability.md). Scale
    1 / (255 STD) with zero point 255 MEAN maps gray level g exactly to code g.
    """
    scale, zero_point = input_quantization(quantized)
    scale.fill_(1 / (255 * FerNet.STD))
    zero_point.fill_(round(255 * FerNet.MEAN))


@torch.no_grad()
def quantize(model: FerNet, calibration_faces: np.ndarray, batch_size: int = 256) -> torch.nn.Module:
    """The int8 model (x -> (logits, pooled features)), its activation ranges observed on
    `calibration_faces` ((N, 48, 48) uint8)."""
    prepared = _prepared(model)
    x = to_tensor(calibration_faces)
    for start in range(0, len(x), batch_size):
        prepared(x[start : start + batch_size])
    quantized = _converted(prepared)
    _quantize_input_exactly(quantized)
    return quantized


# An activation's quantization parameters in a converted model's state dict: a module's output
# ("head.scale", "stem.0.zero_point") or a quantize step in the graph ("_scale_0", "stages_1_0_se_zero_point_3").
_ACTIVATION_QPARAM = re.compile(r"(^|[._])(scale|zero_point)(_\d+)?$")


def activation_ranges(quantized: torch.nn.Module) -> dict:
    """What calibration decided, the part of the int8 model's state that a checkpoint needs: every
    activation's scale and zero point (one number each; the int8 weights follow from the float ones)."""
    return {k: v for k, v in quantized.state_dict().items() if _ACTIVATION_QPARAM.search(k)}


def from_state_dict(model: FerNet, state_dict: dict) -> torch.nn.Module:
    """Rebuild the int8 model from `activation_ranges(...)` or a whole `quantize(...).state_dict()` (no
    calibration data needed): the weights are quantized from `model`'s, as `quantize` did."""
    quantized = _converted(_prepared(model))
    state = quantized.state_dict()
    unexpected = sorted(set(state_dict) - set(state))
    lacking = sorted(k for k in state if _ACTIVATION_QPARAM.search(k) and k not in state_dict)
    if unexpected or lacking:
        raise KeyError(f"int8 state does not match the model: unexpected {unexpected[:3]}, missing {lacking[:3]}")
    state.update(state_dict)  # in place: quantized layers load only whole, and read the state's version metadata
    quantized.load_state_dict(state)
    return quantized
