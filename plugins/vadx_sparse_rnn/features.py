"""Luo et al. §3.6 features: a frozen CNN's last feature map, spatial pyramid max pooling over
1x1, 2x2 and 4x4 regions (21 vectors per frame), and temporal features = the element-wise max of
4 consecutive frames' feature maps, pooled the same way."""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vadx.features import folded, imagenet_normalize, load_backbone

PYRAMID = (1, 2, 4)  # regions per side at each scale: 1 + 4 + 16 = 21 vectors per frame
N_PATCHES = sum(s * s for s in PYRAMID)
TEMPORAL_WINDOW = 4  # frames max-pooled into one temporal feature map (§3.6)
BACKBONES = ("resnet18", "resnet50", "mobilenet_v2")
LAYERS = ("last", "stride16")


def build_backbone(name: str, weights: str | os.PathLike | None) -> tuple[nn.Module, dict, dict]:
    """The frozen backbone, the constructor kwargs needed to rebuild it empty (so a model file can
    carry its weights) and its :class:`vadx.features.WeightsInfo` as JSON."""
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")
    model = load_backbone(name, weights)
    kwargs = {}
    if name == "mobilenet_v2":  # the shipped int8-derived file is built with ReLU, not ReLU6
        kwargs["relu6"] = any(isinstance(m, nn.ReLU6) for m in model.modules())
    model.requires_grad_(False)
    return model.eval(), kwargs, model.weights_info.to_json()


def empty_backbone(name: str, kwargs: dict) -> nn.Module:
    """An untrained backbone of the given architecture, to be filled from a model file."""
    return load_backbone(name, "random", **kwargs).requires_grad_(False).eval()


def pyramid_pool(maps: Tensor) -> Tensor:
    """``[N, c, h, w]`` feature maps -> ``[N, 21, c]``: max over the 1x1, 2x2 and 4x4 regions
    (row-major within a scale). Maps smaller than 4x4 repeat cells (adaptive pooling), so tiny
    inputs still give 21 vectors."""
    parts = [F.adaptive_max_pool2d(maps, s).flatten(2) for s in PYRAMID]  # [N, c, s*s]
    return torch.cat(parts, dim=2).transpose(1, 2)


def feature_map(backbone: nn.Module, x: Tensor, layer: str = "last") -> Tensor:
    """The backbone's last feature map (stride 32), or with ``layer="stride16"`` the output of its
    last stride-16 stage (ResNet ``layer3``: 256 / 1024 channels; MobileNetV2 ``features.13``: 96
    channels), twice as fine a grid of less ImageNet-specific features."""
    if layer == "last":
        return backbone.forward_features(x)
    if layer != "stride16":
        raise ValueError(f"layer must be one of {LAYERS}, got {layer!r}")
    if hasattr(backbone, "layer3"):  # ResNet
        x = backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(x))))
        return backbone.layer3(backbone.layer2(backbone.layer1(x)))
    return backbone.features[:14](x)  # MobileNetV2: blocks 0..13 (the 96-channel stage ends at 13)


# pixels per forward pass: 16 frames of 120x180 (4 of 240x360). Bigger batches spill the early
# maps out of cache: on 2 threads, MobileNetV2 at 240x360 ran 5x faster in batches of 4 than 16
PASS_PIXELS = 16 * 120 * 180


@torch.no_grad()
def backbone_maps(backbone: nn.Module, frames: Tensor, size: tuple[int, int] | None = None,
                  batch: int | None = None, layer: str = "last") -> Tensor:
    """uint8 frames ``[t, C, H, W]`` -> the backbone's feature map ``[t, c, h, w]`` (float32;
    ``layer``: see :func:`feature_map`), at the frames' own size, or resized to ``size`` = (h, w)
    first (bilinear, antialiased). Runs the backbone with batch norm folded into its convolutions
    and channels-last (:func:`vadx.features.folded`; 2-5x faster on a CPU), ``batch`` frames per
    pass (None: :data:`PASS_PIXELS` worth)."""
    h, w = size if size is not None else frames.shape[-2:]
    if batch is None:
        batch = max(1, min(16, PASS_PIXELS // (int(h) * int(w))))
    net = folded(backbone, channels_last=True)
    out = []
    for i in range(0, frames.shape[0], batch):
        x = imagenet_normalize(frames[i:i + batch])
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
        out.append(feature_map(net, x.contiguous(memory_format=torch.channels_last), layer))
    return torch.cat(out).contiguous()


def frame_features(backbone: nn.Module, state: dict, frames: Tensor,
                   size: tuple[int, int] | None = None, layer: str = "last") -> tuple[Tensor, Tensor]:
    """Spatial and temporal pyramid features ``[t, 21, c]`` of one chunk of a video.

    ``state["maps"]`` keeps the last ``TEMPORAL_WINDOW - 1`` feature maps, so that chunk-by-chunk
    extraction equals whole-video extraction. The first 3 frames of a video have fewer than 4
    frames of history: their temporal map is the max over the frames there are (the same as
    padding the video with copies of its first frame).
    """
    maps = backbone_maps(backbone, frames, size, layer=layer)
    hist = state.get("maps")
    full = maps if hist is None else torch.cat([hist, maps])
    k = full.shape[0] - maps.shape[0]  # frames of history before this chunk
    # running max over windows of up to 4 frames ending at each new frame
    temporal = maps.clone()
    for lag in range(1, TEMPORAL_WINDOW):
        idx = torch.arange(maps.shape[0], device=maps.device) + k - lag
        ok = idx >= 0
        if ok.any():
            temporal[ok] = torch.maximum(temporal[ok], full[idx[ok]])
    state["maps"] = full[-(TEMPORAL_WINDOW - 1):].clone()
    return pyramid_pool(maps), pyramid_pool(temporal)
