"""Dense optical flow for detectors that use motion (OpenCV Farneback) and its RGB image encoding.

Frames come in vadx's layout, uint8 ``[T, C, H, W]`` tensors (C = 1 or 3; colour is converted to
grey, as Farneback works on intensity). Flow comes out as float32 ``[T, 2, H, W]`` (dx, dy in
pixels, from the previous frame to the current one), on the frames' device.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch import Tensor

# OpenCV's documented example values (samples/python/opt_flow.py): a 3-level pyramid, 15 px window.
FARNEBACK_DEFAULTS = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2)


def _grey(frames: Tensor, what: str) -> np.ndarray:
    if not isinstance(frames, Tensor) or frames.dtype != torch.uint8 or frames.dim() != 4 \
            or frames.shape[1] not in (1, 3):
        got = (f"{frames.dtype} tensor of shape {tuple(frames.shape)}" if isinstance(frames, Tensor)
               else type(frames).__name__)
        raise ValueError(f"{what} must be a uint8 tensor [T, C, H, W] with C in (1, 3), got {got}")
    x = frames.detach().cpu()
    if x.shape[1] == 3:  # ITU-R BT.601 luma, as cv2.cvtColor(RGB2GRAY)
        x = (x[:, 0].float() * 0.299 + x[:, 1].float() * 0.587 + x[:, 2].float() * 0.114).round()
        return x.clamp(0, 255).to(torch.uint8).numpy()
    return x[:, 0].numpy()


def farneback(frames: Tensor, previous: Tensor | None = None, **params) -> Tensor:
    """Flow from each frame's predecessor to it: ``[T, 2, H, W]`` float32.

    Args:
        frames: uint8 ``[T, C, H, W]``.
        previous: uint8 ``[1, C, H, W]``, the frame before ``frames[0]`` (the last frame of the
            previous chunk of a stream). Without it the first frame is its own predecessor (zero
            flow), so a video's first frame is scored as motionless.
        **params: overrides of :data:`FARNEBACK_DEFAULTS` (cv2.calcOpticalFlowFarneback arguments).
    """
    unknown = set(params) - set(FARNEBACK_DEFAULTS)
    if unknown:
        raise TypeError(f"farneback() got unknown parameters {sorted(unknown)}; "
                        f"expected some of {sorted(FARNEBACK_DEFAULTS)}")
    grey = _grey(frames, "frames")
    if previous is not None:
        prev = _grey(previous, "previous")
        if prev.shape[0] != 1 or prev.shape[1:] != grey.shape[1:]:
            raise ValueError(f"previous must be one frame [1, C, {grey.shape[1]}, {grey.shape[2]}], "
                             f"got shape {tuple(previous.shape)}")
    p = {**FARNEBACK_DEFAULTS, **params}
    out = np.zeros((grey.shape[0], 2, *grey.shape[1:]), np.float32)
    for t in range(grey.shape[0]):
        if t == 0 and previous is None:
            continue  # exactly zero (Farneback on two equal frames leaves ~1e-2 px of noise)
        before = prev[0] if t == 0 else grey[t - 1]
        f = cv2.calcOpticalFlowFarneback(before, grey[t], None, p["pyr_scale"], p["levels"],
                                         p["winsize"], p["iterations"], p["poly_n"],
                                         p["poly_sigma"], 0)
        out[t] = f.transpose(2, 0, 1)
    return torch.from_numpy(out).to(frames.device)


def flow_to_rgb(flow: Tensor, max_magnitude: float | None = None) -> Tensor:
    """The usual HSV encoding of flow as an image: hue = direction, value = magnitude.

    Args:
        flow: ``[T, 2, H, W]`` float.
        max_magnitude: the magnitude (pixels) shown at full brightness. None scales each frame by
            its own maximum (OpenCV's sample); a fixed value keeps frames comparable, which a
            detector needs (a slow frame must not look as bright as a fast one).
    Returns:
        uint8 ``[T, 3, H, W]`` RGB.
    """
    if not isinstance(flow, Tensor) or flow.dim() != 4 or flow.shape[1] != 2:
        got = tuple(flow.shape) if isinstance(flow, Tensor) else type(flow).__name__
        raise ValueError(f"flow must be a tensor [T, 2, H, W], got {got}")
    if max_magnitude is not None and not (max_magnitude > 0 and math.isfinite(max_magnitude)):
        raise ValueError(f"max_magnitude must be a positive finite number or None, got {max_magnitude!r}")
    f = flow.detach().float()
    dx, dy = f[:, 0], f[:, 1]
    mag = torch.sqrt(dx * dx + dy * dy)
    ang = torch.atan2(dy, dx) % (2 * math.pi)  # [0, 2pi)
    if max_magnitude is None:
        scale = mag.amax(dim=(1, 2), keepdim=True).clamp_min(1e-6)
    else:
        scale = torch.tensor(float(max_magnitude), device=f.device)
    h = ang / (2 * math.pi) * 6.0  # hue sector in [0, 6)
    v = (mag / scale).clamp(0, 1)
    # HSV -> RGB with saturation 1 (cv2's formula), done in torch to stay on the flow's device.
    k = lambda n: (n + h) % 6  # noqa: E731
    chan = lambda n: v * (1 - (torch.minimum(k(n), 4 - k(n))).clamp(0, 1))  # noqa: E731
    rgb = torch.stack([chan(5.0), chan(3.0), chan(1.0)], dim=1)
    return (rgb * 255).round().to(torch.uint8)
