"""Roll-back localization (paper §3.3) in input-frame pixels.

The paper marks a pixel anomalous when more than ``zeta`` anomalous receptive fields cover it.
Two maps, with the same geometry (size R, jump J, offset P of the prefix actually used):

- :func:`coverage_map`: ``vadx.ops.rollback_coverage`` of the 0/1 anomalous-region flags, i.e. the
  number of anomalous fields covering each pixel (the paper's map; ``> zeta`` is its decision).
- :func:`order_map`: a continuous map for threshold sweeps (ROC/EER need one): per pixel, the
  ``(zeta + 1)``-th largest region score among the fields covering it (0 where fewer cover it).
  For every threshold ``theta > 0``, ``order_map >= theta`` exactly where more than ``zeta``
  fields with score ``>= theta`` cover the pixel, so at the region threshold 1 it reproduces the
  paper's ``coverage > zeta`` of the cascade's decisions (tested against rollback_coverage).

order_map uses that the fields covering pixel row y are the grid rows
``i0(y) .. i1(y)`` with ``i0 = ceil((y + P - R + 1) / J)``, ``i1 = floor((y + P) / J)``, a window
whose length takes one or two values (cells past the grid's edge are zero padding, which never
counts); so the k-th largest over each window shape is computed once on the padded grid (windows
as views + topk) and gathered per pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vadx.ops import rollback_coverage


def coverage_map(flags: Tensor, geometry: dict, out_size: tuple[int, int]) -> Tensor:
    """Number of flagged fields covering each pixel, ``[B, H, W]`` float32."""
    return rollback_coverage(flags.float(), geometry["size"], geometry["jump"], geometry["offset"],
                             out_size)


def _ranges(n_pixels: int, size: int, jump: int, offset: int) -> tuple[Tensor, Tensor]:
    """Per pixel: first covering cell (may be < 0 or past the grid) and number of covering cells,
    not clipped to the grid: cells outside it are zero padding, which never counts."""
    y = torch.arange(n_pixels)
    i0 = torch.div(y + offset - size + 1 + jump - 1, jump, rounding_mode="floor")
    i1 = torch.div(y + offset, jump, rounding_mode="floor")
    return i0, i1 - i0 + 1


def order_map(scores: Tensor, geometry: dict, out_size: tuple[int, int], zeta: int) -> Tensor:
    """Per pixel, the ``(zeta + 1)``-th largest of the non-negative region ``scores``
    ``[B, Hk, Wk]`` over the fields covering it; ``[B, H, W]`` float32."""
    k = int(zeta) + 1
    B, hk, wk = scores.shape
    (rh, rw), (jh, jw), (ph, pw) = geometry["size"], geometry["jump"], geometry["offset"]
    H, W = out_size
    r0, rn = _ranges(H, rh, jh, ph)
    c0, cn = _ranges(W, rw, jw, pw)
    # zero cells around the grid so that every pixel's window lies inside the padded grid; as
    # scores are >= 0, padding only matters for thresholds <= 0
    top, left = max(-int(r0.min()), 0), max(-int(c0.min()), 0)
    bottom = max(int((r0 + rn).max()) - hk, 0)
    right = max(int((c0 + cn).max()) - wk, 0)
    grid = F.pad(scores.float().clamp_min(0), (left, right, top, bottom))
    r0, c0 = (r0 + top).to(scores.device), (c0 + left).to(scores.device)
    rn, cn = rn.to(scores.device), cn.to(scores.device)
    out = torch.zeros(B, H, W, dtype=torch.float32, device=scores.device)
    # windows have one or two lengths per axis (R / J rounded down or up): one table per shape
    for nh in torch.unique(rn).tolist():
        for nw in torch.unique(cn).tolist():
            if nh * nw < k:
                continue  # fewer than k fields cover these pixels: they stay 0
            # every nh x nw window as a view (F.unfold is far slower on CPU), then its k-th largest
            hh, ww = grid.shape[1] - nh + 1, grid.shape[2] - nw + 1
            patches = grid.unfold(1, nh, 1).unfold(2, nw, 1).reshape(B, hh, ww, nh * nw)
            table = patches.topk(k, dim=-1).values[..., -1]
            # (pixels with the other window length may index past this table: masked out below)
            full = table.index_select(1, r0.clamp_max(hh - 1)).index_select(2, c0.clamp_max(ww - 1))
            mask = (rn == nh)[:, None] & (cn == nw)[None, :]
            out = torch.where(mask, full, out)
    return out
