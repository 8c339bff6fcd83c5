"""The frozen FCN prefix (paper §3.4): the first layers of a pretrained CNN, and the input D_t.

Two backbones, both in torchvision's key layout (``vadx.features``):

- ``"alexnet"`` (the paper's): C1 -> ReLU -> S1 -> C2 -> ReLU for layer ``"C2"``; ``"C1"`` stops
  after C1 -> ReLU, ``"C3"`` continues S2 -> C3 -> ReLU. The paper's Caffe reference model uses
  *mean* pooling for S1 (§3.3: "convolution and mean pooling operator"); ``pooling="mean"`` swaps
  torchvision's 3x3/2 max pools for 3x3/2 average pools of the same geometry, ``"max"`` keeps
  them as torchvision (and the original AlexNet) has them.
- ``"mobilenet_v2"``: a prefix of ``features`` (its blocks have no pooling, so ``pooling`` does
  not apply). For each AlexNet layer the cut is the block prefix whose receptive field is
  closest to that layer's (ties to the shallower cut: better localization, less compute), see
  :data:`MOBILENET_CUTS`; for C2 (51 px) that is ``features[:6]`` (43 px, stride 8, 32 channels;
  ``features[:7]`` is 59 px, equally far, and deeper).

The roll-back geometry is always computed from the modules actually used
(:func:`vadx.features.conv_geometry` -> :func:`vadx.ops.receptive_field`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vadx.features import IMAGENET_MEAN, IMAGENET_STD, conv_geometry, load_backbone
from vadx.ops import receptive_field

BACKBONES = ("alexnet", "mobilenet_v2")
LAYERS = ("C1", "C2", "C3")
POOLINGS = ("mean", "max")
# AlexNet: number of torchvision ``features`` modules up to and including layer k's ReLU.
ALEXNET_CUTS = {"C1": 2, "C2": 5, "C3": 8}
# MobileNetV2: number of ``features`` blocks whose receptive field is closest to AlexNet's C1
# (11 px -> features[:3], 11 px), C2 (51 -> features[:6], 43) and C3 (99 -> features[:9], 107);
# tests/test_fcn_cascade.py recomputes this rule.
MOBILENET_CUTS = {"C1": 3, "C2": 6, "C3": 9}
# Where MobileNetV2's features are taken relative to that cut: "block" the output of
# features[:k] (its narrow linear bottleneck: 24/32/64 channels), "expand" after the next block's
# 1x1 expansion conv+BN+ReLU (6x wider: 144/192/384 channels, same receptive field), "depthwise"
# after that block's 3x3 depthwise conv+BN+ReLU as well (receptive field one 3x3 step larger).
TAPS = ("block", "expand", "depthwise")
# MobileNetV2's (cut, tap) for a layer when neither is given; layers not listed use the
# receptive-field rule's block output. C2: chosen by bench/test_fcn_cascade.py::test_ped2_ablation
# (bench/results/fcn_cascade_ped2_ablation.json): see FCNCascade's docstring.
MOBILENET_DEFAULT = {"C2": (4, "depthwise")}


def mobilenet_tap(layer: str, cut: int | None, tap: str | None) -> tuple[int, str]:
    """The (cut, tap) MobileNetV2 features are taken at (None: the defaults above)."""
    if cut is None and tap is None and layer in MOBILENET_DEFAULT:
        return MOBILENET_DEFAULT[layer]
    return (MOBILENET_CUTS[layer] if cut is None else cut), (tap or "block")


def geometry(body: nn.Module) -> dict[str, list[int]]:
    """Receptive field ``size``, ``jump`` and ``offset`` (each ``[h, w]``) of a prefix."""
    size, jump, offset = receptive_field(conv_geometry(body))
    return {"size": list(size), "jump": list(jump), "offset": list(offset)}


def build_prefix(backbone: str, layer: str, pooling: str, weights, relu6: bool | None = None,
                 tap: str | None = None, cut: int | None = None) -> tuple[nn.Sequential, dict]:
    """The frozen prefix (eval mode, no gradients) and a JSON record of what it carries.

    ``weights``: a path, None (``$VADX_WEIGHTS_DIR``) or ``"random"`` (see
    :func:`vadx.features.load_backbone`, which checks the file's SHA-256). ``relu6`` only for
    MobileNetV2: None lets load_backbone decide (ReLU for the known int8-derived file). ``tap``
    (MobileNetV2 only, :data:`TAPS`): where inside the block after the cut the features are taken;
    ``cut`` (MobileNetV2 only): the number of ``features`` blocks before the tap, instead of
    ``layer``'s :data:`MOBILENET_CUTS`; both None: :func:`mobilenet_tap`'s default.
    """
    kwargs = {} if relu6 is None or backbone != "mobilenet_v2" else {"relu6": relu6}
    net = load_backbone(backbone, weights, **kwargs)
    if backbone == "alexnet":
        mods = list(net.features[:ALEXNET_CUTS[layer]])
        if pooling == "mean":
            mods = [nn.AvgPool2d(m.kernel_size, m.stride, m.padding) if isinstance(m, nn.MaxPool2d)
                    else m for m in mods]
        body = nn.Sequential(*mods)
        used_relu6 = None
    else:
        k, tap = mobilenet_tap(layer, cut, tap)
        mods = list(net.features[:k])
        if tap != "block":  # the next block's expansion (and depthwise) ConvBNAct modules
            mods += list(net.features[k].conv[:1 if tap == "expand" else 2])
        body = nn.Sequential(*mods)
        used_relu6 = any(isinstance(m, nn.ReLU6) for m in body.modules())
    for m in body.modules():
        if isinstance(m, (nn.ReLU, nn.ReLU6)):
            m.inplace = False  # harmless, and keeps inference-mode tensors untouched
    body.eval().requires_grad_(False)
    if backbone == "mobilenet_v2":
        # channels_last: its depthwise/1x1 convolutions run ~1.5-1.8x faster on CPU. Done here,
        # where both fit and load (_build_modules) build the prefix: load_state_dict copies into
        # the existing parameters and keeps their layout, so a loaded detector runs the same
        # kernels as the fitted one (converting only in fit made save/load not bit-identical).
        body.to(memory_format=torch.channels_last)
    info = {**net.weights_info.to_json(), "relu6": used_relu6}
    return body, info


def out_channels(body: nn.Module) -> int:
    """Channels m_k of the prefix's output (from its last convolution or batch norm)."""
    last = [m for m in body.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))][-1]
    return int(last.num_features if isinstance(last, nn.BatchNorm2d) else last.out_channels)


def to_grey(frames: Tensor) -> Tensor:
    """uint8 ``[t, C, H, W]`` -> float32 grey ``[t, H, W]`` in 0..255 (BT.601 luma for RGB)."""
    x = frames.float()
    if x.shape[1] == 1:
        return x[:, 0]
    return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]


HISTORY = 5  # grey frames before I_t that D_t needs: I_{t-1} .. I_{t-5}


def cube(history: Tensor, grey: Tensor) -> Tensor:
    """D_t for each new frame: ``[t, 3, H, W]`` = (I'_t, I'_{t-2}, I'_{t-4}), I'_t = (I_t + I_{t-1})/2.

    ``history``: the previous :data:`HISTORY` grey frames ``[5, H, W]``; ``grey``: ``[t, H, W]``.
    """
    g = torch.cat([history, grey])  # times t0-5 .. t0+t-1
    avg = (g[1:] + g[:-1]) * 0.5  # I' at times t0-4 .. t0+t-1
    t = grey.shape[0]
    return torch.stack([avg[4:4 + t], avg[2:2 + t], avg[0:t]], dim=1)


def normalise(d: Tensor) -> Tensor:
    """D_t (0..255) as the torchvision networks expect their input: /255, then ImageNet mean/std
    per channel, channel c of D_t taking RGB channel c's statistics (the temporal channels go
    where the colour channels went, as the paper feeds D_t to AlexNet)."""
    mean = torch.tensor(IMAGENET_MEAN, device=d.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=d.device).view(1, 3, 1, 1) * 255.0
    return (d - mean) / std
