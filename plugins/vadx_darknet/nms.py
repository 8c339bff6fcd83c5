"""Greedy non-maximum suppression (Darknet's per-class box suppression)."""

from __future__ import annotations

import torch
from torch import Tensor


def nms(boxes: Tensor, scores: Tensor, iou: float) -> Tensor:
    """Greedy non-maximum suppression: indices kept, by decreasing score."""
    order = scores.argsort(descending=True)
    boxes = boxes[order]
    area = (boxes[:, 2] - boxes[:, 0]).clamp_min(0) * (boxes[:, 3] - boxes[:, 1]).clamp_min(0)
    keep: list[int] = []
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        lt = torch.maximum(boxes[i, :2], boxes[i + 1:, :2])
        rb = torch.minimum(boxes[i, 2:], boxes[i + 1:, 2:])
        inter = (rb - lt).clamp_min(0).prod(1)
        overlap = inter / (area[i] + area[i + 1:] - inter).clamp_min(1e-9)
        suppressed[i + 1:] |= overlap > iou
    return order[torch.tensor(keep, dtype=torch.long)]
