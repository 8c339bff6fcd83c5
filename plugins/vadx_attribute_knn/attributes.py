"""The attributes of one frame's objects: velocity histograms, appearance features, and the
scene-level background motion that stands in for objects the object detector misses.

Every function but :func:`appearance` works on one frame at a time; :func:`appearance` takes a
whole chunk's crops in batches padded so that an object's features never depend on which other
crops shared them. So streaming scores equal offline ones bit for bit.
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


def _frame_index(boxes: list[Tensor]) -> tuple[Tensor, Tensor]:
    """All frames' boxes ``[N, 4]`` and the frame each one is in ``[N]``."""
    counts = torch.tensor([b.shape[0] for b in boxes])
    return torch.cat(boxes).reshape(-1, 4), torch.repeat_interleave(torch.arange(len(boxes)), counts)


def velocities(flow: Tensor, boxes: list[Tensor], hw: tuple[int, int], bins: int,
               perspective: bool = True, quantile: float | None = None) -> list[Tensor]:
    """:func:`velocity` of every frame of a chunk at once (flow ``[T, 2, h, w]``, ``boxes`` one
    ``[n_t, 4]`` per frame): elementwise ops and scans along rows and columns (and, with
    ``quantile``, one quantile per box of its own pixels), so each frame gets the same bits as
    alone, with a few large ops instead of many small ones per frame."""
    counts = [int(b.shape[0]) for b in boxes]
    if sum(counts) == 0:
        return [torch.zeros(n, bins) for n in counts]
    dx, dy = flow[:, 0].double(), flow[:, 1].double()
    mag = torch.sqrt(dx * dx + dy * dy)
    if bins == 1:  # every direction falls in the one bin: no atan2
        maps = mag.unsqueeze(1)
    else:
        b = ((torch.atan2(dy, dx) % (2 * math.pi)) / (2 * math.pi) * bins).long().clamp(0, bins - 1)
        maps = torch.zeros(mag.shape[0], bins, *mag.shape[1:], dtype=torch.float64).scatter_(
            1, b.unsqueeze(1), mag.unsqueeze(1))
    # summed-area tables in float64: box sums exact enough that the order of summation is moot
    integral = F.pad(maps.cumsum(2).cumsum(3), (1, 0, 1, 0))
    allb, f = _frame_index(boxes)
    h, w = mag.shape[1], mag.shape[2]
    sy, sx = h / hw[0], w / hw[1]
    x1 = (allb[:, 0] * sx).floor().long().clamp(0, w - 1)
    y1 = (allb[:, 1] * sy).floor().long().clamp(0, h - 1)
    x2 = torch.maximum((allb[:, 2] * sx).ceil().long().clamp(0, w), x1 + 1)
    y2 = torch.maximum((allb[:, 3] * sy).ceil().long().clamp(0, h), y1 + 1)
    sums = integral[f, :, y2, x2] - integral[f, :, y1, x2] - integral[f, :, y2, x1] + integral[f, :, y1, x1]
    hist = sums / ((x2 - x1) * (y2 - y1)).float().double().unsqueeze(1)
    if quantile is not None:
        # the speed: the quantile of the flow magnitude over the box's pixels (a box's own
        # pixels only, so independent of the chunk); the direction histogram keeps its shape
        speed = torch.stack([mag[i, a:b, c:d].flatten().quantile(quantile) for i, a, b, c, d in
                             zip(f.tolist(), y1.tolist(), y2.tolist(), x1.tolist(), x2.tolist())])
        if bins == 1:
            hist = speed.unsqueeze(1)
        else:
            total = hist.sum(1, keepdim=True)
            hist = torch.where(total > 0, hist * (speed.unsqueeze(1) / total.clamp_min(1e-300)),
                               torch.zeros_like(hist))
    if perspective:
        hist = hist / (allb[:, 3] - allb[:, 1]).double().clamp_min(1.0).unsqueeze(1)
    return list(hist.float().split(counts))


def velocity(flow: Tensor, boxes: Tensor, hw: tuple[int, int], bins: int,
             perspective: bool = True, quantile: float | None = None) -> Tensor:
    """Per object, float32 ``[n, bins]``: the flow inside its box as a histogram of directions
    weighted by magnitude, averaged over the box's pixels (input pixels per frame; one bin: the
    mean speed), and with ``perspective`` divided by the box height (an object twice as far away
    looks half as tall and half as fast). With ``quantile`` the speed is instead that quantile
    of the flow magnitude over the box's pixels (linear interpolation; 1.0: the maximum): one
    bin holds it, several share it in the proportions of the histogram.

    Args:
        flow: ``[2, h, w]`` one frame's flow in input pixels per frame (any grid size).
        boxes: ``[n, 4]`` in input pixels; hw: the input frame's (H, W).
    """
    return velocities(flow.unsqueeze(0), [boxes], hw, bins, perspective, quantile)[0]


def background_motions(flow: Tensor, boxes: list[Tensor], hw: tuple[int, int],
                       cell: int) -> tuple[Tensor, Tensor]:
    """:func:`background_motion` of every frame of a chunk at once (flow ``[T, 2, h, w]``,
    ``boxes`` one ``[n_t, 4]`` per frame): energies ``[T]`` and blocks ``[T, 4]``, each frame's
    bits as alone (elementwise ops, integer box coverage, per-window pooling)."""
    dx, dy = flow[:, 0], flow[:, 1]
    mag = torch.sqrt(dx * dx + dy * dy)
    t, h, w = mag.shape
    sy, sx = h / hw[0], w / hw[1]
    allb, f = _frame_index(boxes)
    if allb.shape[0]:
        # boxes blanked: +-1 at their corners, integrated into per-cell coverage counts (exact)
        b = allb.double()
        y1, x1 = (b[:, 1] * sy).floor().long().clamp(0, h), (b[:, 0] * sx).floor().long().clamp(0, w)
        y2, x2 = (b[:, 3] * sy).ceil().long().clamp(0, h), (b[:, 2] * sx).ceil().long().clamp(0, w)
        ok = (y2 > y1) & (x2 > x1)
        f, y1, x1, y2, x2 = f[ok], y1[ok], x1[ok], y2[ok], x2[ok]
        corners = torch.zeros(t, h + 1, w + 1, dtype=torch.int32)
        one = torch.ones_like(f, dtype=torch.int32)
        for yy, xx, sign in ((y1, x1, 1), (y1, x2, -1), (y2, x1, -1), (y2, x2, 1)):
            corners.index_put_((f, yy, xx), sign * one, accumulate=True)
        covered = corners.cumsum(1).cumsum(2)[:, :h, :w] > 0
        mag = mag.masked_fill(covered, 0)
    c = min(cell, h, w)
    step = max(1, c // 2)
    pooled = F.avg_pool2d(mag.unsqueeze(1), c, stride=step, ceil_mode=False)
    pw = pooled.shape[3]
    pooled = pooled.flatten(1)
    i = pooled.argmax(1)  # the first maximum, as per frame
    gy, gx = (i // pw).double(), (i % pw).double()
    block = torch.stack([gx * step / sx, gy * step / sy, (gx * step + c) / sx, (gy * step + c) / sy], 1)
    return pooled.gather(1, i.unsqueeze(1))[:, 0].float(), block.float()


def background_motion(flow: Tensor, boxes: Tensor, hw: tuple[int, int], cell: int) -> tuple[Tensor, Tensor]:
    """The scene-level term: mean flow magnitude (input pixels per frame) of the most moving
    ``cell`` x ``cell`` block (on the flow grid) once the objects' boxes are blanked, and that
    block as ``(x1, y1, x2, y2)`` in input pixels. A vehicle the object detector misses moves
    faster than the walkers it misses."""
    energy, block = background_motions(flow.unsqueeze(0), [boxes], hw, cell)
    return energy[0], block[0]


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


# oneDNN gives a sample the same bits in any batch whose size is a multiple of this (not in
# others: 1 and 2 threads, MobileNetV2 at 32 and 64 px), so crops are padded to it
CROP_BATCH = 16


def appearance(backbone: nn.Module, patches: Tensor, block: int = 8 * CROP_BATCH) -> Tensor:
    """Per object crop (``patches``: float ``[n, C, s, s]`` in 0..255, a chunk's :func:`crops`), float32
    ``[n, channels]``: the backbone's last feature map, average-pooled and L2-normalised
    (distances then compare what the features say, not how strongly: contrast and size change
    the norm). Run in batches of ``block`` (a multiple of :data:`CROP_BATCH`), the last one padded
    with zero crops to a multiple of :data:`CROP_BATCH`, so an object's features do not depend on
    which other crops share the call."""
    n = patches.shape[0]
    if n == 0:
        return torch.zeros(0, backbone.out_channels)
    net = folded(backbone, channels_last=True)  # batch norm folded in, cached (vadx.features)
    out = []
    for a in range(0, n, block):
        x = patches[a:a + block]
        pad = -x.shape[0] % CROP_BATCH
        x = imagenet_normalize(x / 255.0)
        if pad:
            x = torch.cat([x, x.new_zeros(pad, *x.shape[1:])])
        x = x.contiguous(memory_format=torch.channels_last)
        out.append(F.normalize(net.forward_features(x).mean(dim=(2, 3)).float(), dim=1)[:x.shape[0] - pad])
    return torch.cat(out).cpu()
