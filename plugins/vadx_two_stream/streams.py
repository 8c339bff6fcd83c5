"""The two input streams: the frame and its optical flow as an image, each through a CNN backbone."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

import vadx.precision
from vadx.features import folded, imagenet_normalize
from vadx.flow import farneback, flow_to_rgb


#: Global pooling of each stream's last feature map: "avg" (the paper's) or "max".
POOLS = ("avg", "max")


def resize_frames(frames: Tensor, size: int) -> Tensor:
    """uint8 ``[T, C, H, W]`` -> uint8 ``[T, C, size, size]`` (bilinear, antialiased)."""
    if frames.shape[-2:] == (size, size):
        return frames
    x = F.interpolate(frames.float(), size=(size, size), mode="bilinear", align_corners=False,
                      antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8)


def flow_images(small: Tensor, previous: Tensor | None, max_magnitude: float) -> Tensor:
    """Farneback flow from each (resized) frame's predecessor, as uint8 RGB ``[T, 3, s, s]``."""
    return flow_to_rgb(farneback(small, previous), max_magnitude=max_magnitude)


class TwoStreamNet(nn.Module):
    """Two backbones (RGB frame, flow image) -> globally pooled features, and the classifier.

    ``forward`` returns the classifier's logit; ``feature_maps`` the last conv maps of each
    stream (what Grad-CAM differentiates against). Both run under ``precision`` (``"bf16"``:
    autocast; set by the detector from its fitted ``precision_``) and return float32. The
    backbones run channels-last (:meth:`channels_last`): oneDNN's fast layout for MobileNetV2's
    depthwise convolutions, 1.3x in float32 and 3x with bf16 per frame here. Scores do not
    depend on the layout a model was saved in: loading copies weights into the channels-last
    parameters ``_build_modules`` made, so the same kernels run before and after.
    """

    def __init__(self, rgb: nn.Module, flow: nn.Module, head: nn.Module, precision: str = "fp32",
                 pool: str = "avg"):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        self.rgb, self.flow, self.head = rgb, flow, head
        self.precision, self.pool_mode = precision, pool

    def channels_last(self) -> TwoStreamNet:
        self.rgb.to(memory_format=torch.channels_last)
        self.flow.to(memory_format=torch.channels_last)
        return self

    def feature_maps(self, rgb_img: Tensor, flow_img: Tensor) -> tuple[Tensor, Tensor]:
        rgb = imagenet_normalize(rgb_img).contiguous(memory_format=torch.channels_last)
        flow = imagenet_normalize(flow_img).contiguous(memory_format=torch.channels_last)
        rgb_net, flow_net = self._backbones()
        with vadx.precision.autocast(self.precision, rgb.device):
            a, b = rgb_net.forward_features(rgb), flow_net.forward_features(flow)
        return a.float(), b.float()

    def _backbones(self) -> tuple[nn.Module, nn.Module]:
        """The backbones to run: while they are being trained (phase 2: grad enabled and their
        weights require it) the modules themselves, otherwise copies with batch norm folded into
        the convolutions (:func:`vadx.features.folded`, cached), one pass less per layer."""
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.rgb.parameters()):
            return self.rgb, self.flow
        return folded(self.rgb, channels_last=True), folded(self.flow, channels_last=True)

    def pool(self, fmap: Tensor) -> Tensor:
        """``[N, C, h, w]`` -> ``[N, C]``: global average (the paper's) or global max."""
        return fmap.mean(dim=(2, 3)) if self.pool_mode == "avg" else fmap.amax(dim=(2, 3))

    def features(self, rgb_img: Tensor, flow_img: Tensor) -> tuple[Tensor, Tensor]:
        a, b = self.feature_maps(rgb_img, flow_img)
        return self.pool(a), self.pool(b)

    def logit(self, rgb_feat: Tensor, flow_feat: Tensor, bag: Tensor | None) -> Tensor:
        parts = [rgb_feat, flow_feat] + ([bag] if bag is not None else [])
        with vadx.precision.autocast(self.precision, rgb_feat.device):
            return self.head(torch.cat(parts, 1)).float().squeeze(1)

    def forward(self, rgb_img: Tensor, flow_img: Tensor, bag: Tensor | None) -> Tensor:
        return self.logit(*self.features(rgb_img, flow_img), bag)
