"""The attributes of one frame's objects: velocity histograms, appearance features, and the
scene-level background motion that stands in for objects the object detector misses.

Every function works on one frame at a time, so an object's attributes never depend on which
other frames shared its chunk (streaming scores equal offline ones bit for bit).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vadx.features import folded, imagenet_normalize
from vadx.flow import farneback


def flow_at_scale(frames: Tensor, previous: Tensor | None, scale: float) -> Tensor:
    """Farneback flow ``[t, 2, h, w]`` computed on frames resized by ``scale`` (area), in input
    pixels per frame (so thresholds and histograms do not depend on ``scale``)."""
    if scale != 1.0:
        both = frames if previous is None else torch.cat([previous, frames])
        small = F.interpolate(both.float(), scale_factor=scale, mode="area", recompute_scale_factor=False)
        small = small.round().clamp(0, 255).to(torch.uint8)
        previous, frames = (None, small) if previous is None else (small[:1], small[1:])
    return farneback(frames, previous) / scale


def _box_sums(integral: Tensor, boxes: Tensor, sy: float, sx: float) -> tuple[Tensor, Tensor]:
    """Sums of ``integral``'s maps ``[c, h + 1, w + 1]`` over input-pixel ``boxes`` ``[n, 4]``
    mapped to the flow grid (at least one cell each), and each box's cell count."""
    h, w = integral.shape[1] - 1, integral.shape[2] - 1
    x1 = (boxes[:, 0] * sx).floor().long().clamp(0, w - 1)
    y1 = (boxes[:, 1] * sy).floor().long().clamp(0, h - 1)
    x2 = torch.maximum((boxes[:, 2] * sx).ceil().long().clamp(0, w), x1 + 1)
    y2 = torch.maximum((boxes[:, 3] * sy).ceil().long().clamp(0, h), y1 + 1)
    s = integral[:, y2, x2] - integral[:, y1, x2] - integral[:, y2, x1] + integral[:, y1, x1]
    return s.T, ((x2 - x1) * (y2 - y1)).float()


def velocity(flow: Tensor, boxes: Tensor, hw: tuple[int, int], bins: int,
             perspective: bool = True) -> Tensor:
    """Per object, float32 ``[n, bins]``: the flow inside its box as a histogram of directions
    weighted by magnitude, averaged over the box's pixels (input pixels per frame; one bin: the
    mean speed), and with ``perspective`` divided by the box height (an object twice as far away
    looks half as tall and half as fast).

    Args:
        flow: ``[2, h, w]`` one frame's flow in input pixels per frame (any grid size).
        boxes: ``[n, 4]`` in input pixels; hw: the input frame's (H, W).
    """
    if boxes.shape[0] == 0:
        return torch.zeros(0, bins)
    dx, dy = flow[0].double(), flow[1].double()
    mag = torch.sqrt(dx * dx + dy * dy)
    b = ((torch.atan2(dy, dx) % (2 * math.pi)) / (2 * math.pi) * bins).long().clamp(0, bins - 1)
    maps = torch.zeros(bins, *mag.shape, dtype=torch.float64).scatter_(0, b.unsqueeze(0), mag.unsqueeze(0))
    # summed-area tables in float64: box sums exact enough that the order of summation is moot
    integral = F.pad(maps.cumsum(1).cumsum(2), (1, 0, 1, 0))
    sums, cells = _box_sums(integral, boxes, mag.shape[0] / hw[0], mag.shape[1] / hw[1])
    hist = sums / cells.double().unsqueeze(1)
    if perspective:
        hist = hist / (boxes[:, 3] - boxes[:, 1]).double().clamp_min(1.0).unsqueeze(1)
    return hist.float()


def background_motion(flow: Tensor, boxes: Tensor, hw: tuple[int, int], cell: int) -> tuple[Tensor, Tensor]:
    """The scene-level term: mean flow magnitude (input pixels per frame) of the most moving
    ``cell`` x ``cell`` block (on the flow grid) once the objects' boxes are blanked, and that
    block as ``(x1, y1, x2, y2)`` in input pixels. A vehicle the object detector misses moves
    faster than the walkers it misses."""
    dx, dy = flow[0], flow[1]
    mag = torch.sqrt(dx * dx + dy * dy)
    h, w = mag.shape
    sy, sx = h / hw[0], w / hw[1]
    for x1, y1, x2, y2 in boxes.tolist():
        mag[int(y1 * sy):math.ceil(y2 * sy), int(x1 * sx):math.ceil(x2 * sx)] = 0
    c = min(cell, h, w)
    pooled = F.avg_pool2d(mag[None, None], c, stride=max(1, c // 2), ceil_mode=False)[0, 0]
    i = int(pooled.flatten().argmax())
    gy, gx = divmod(i, pooled.shape[1])
    step = max(1, c // 2)
    block = torch.tensor([gx * step / sx, gy * step / sy, (gx * step + c) / sx, (gy * step + c) / sy])
    return pooled.flatten()[i].float(), block


def crops(frame: Tensor, boxes: Tensor, size: int) -> Tensor:
    """The boxes of one uint8 frame ``[C, H, W]`` resampled (bilinear) to ``size`` x ``size``:
    float ``[n, C, size, size]`` in 0..255."""
    n = boxes.shape[0]
    c, H, W = frame.shape
    x = frame.float().unsqueeze(0)
    cx = (boxes[:, 0] + boxes[:, 2]) / W - 1  # box centre in [-1, 1] (align_corners=False)
    cy = (boxes[:, 1] + boxes[:, 3]) / H - 1
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = (boxes[:, 2] - boxes[:, 0]) / W
    theta[:, 1, 1] = (boxes[:, 3] - boxes[:, 1]) / H
    theta[:, 0, 2], theta[:, 1, 2] = cx, cy
    grid = F.affine_grid(theta.to(x.device), [n, c, size, size], align_corners=False)
    return F.grid_sample(x.expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


def appearance(backbone: nn.Module, frame: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Per object, float32 ``[n, channels]``: the backbone's last feature map of the object's
    crop, average-pooled and L2-normalised (distances then compare what the features say, not
    how strongly: contrast and size change the norm)."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, backbone.out_channels)
    x = imagenet_normalize(crops(frame, boxes, size) / 255.0)
    x = x.contiguous(memory_format=torch.channels_last)
    net = folded(backbone, channels_last=True)  # batch norm folded in, cached (vadx.features)
    return F.normalize(net.forward_features(x).mean(dim=(2, 3)).float(), dim=1).cpu()
