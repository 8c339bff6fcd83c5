"""The two input streams: the frame and its optical flow as an image, each through a CNN backbone."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vadx.features import imagenet_normalize
from vadx.flow import farneback, flow_to_rgb


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
    """Two backbones (RGB frame, flow image) -> global-average-pooled features, and the classifier.

    ``forward`` returns the classifier's logit; ``feature_maps`` the last conv maps of each
    stream (what Grad-CAM differentiates against).
    """

    def __init__(self, rgb: nn.Module, flow: nn.Module, head: nn.Module):
        super().__init__()
        self.rgb, self.flow, self.head = rgb, flow, head

    def feature_maps(self, rgb_img: Tensor, flow_img: Tensor) -> tuple[Tensor, Tensor]:
        return (self.rgb.forward_features(imagenet_normalize(rgb_img)),
                self.flow.forward_features(imagenet_normalize(flow_img)))

    @staticmethod
    def pool(fmap: Tensor) -> Tensor:
        return fmap.mean(dim=(2, 3))

    def features(self, rgb_img: Tensor, flow_img: Tensor) -> tuple[Tensor, Tensor]:
        a, b = self.feature_maps(rgb_img, flow_img)
        return self.pool(a), self.pool(b)

    def logit(self, rgb_feat: Tensor, flow_feat: Tensor, bag: Tensor | None) -> Tensor:
        parts = [rgb_feat, flow_feat] + ([bag] if bag is not None else [])
        return self.head(torch.cat(parts, 1)).squeeze(1)

    def forward(self, rgb_img: Tensor, flow_img: Tensor, bag: Tensor | None) -> Tensor:
        return self.logit(*self.features(rgb_img, flow_img), bag)
