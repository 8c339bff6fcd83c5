"""Which detected objects the attributes describe: class, confidence and size filters."""

from __future__ import annotations

import torch
from torch import Tensor

from vadx.objects import Detections

# COCO classes that move through surveillance scenes (people and what they ride or drive).
MOVING_CLASSES = ("person", "bicycle", "car", "motorcycle", "bus", "truck", "skateboard", "train")


def class_ids(classes: list[str], wanted: tuple[str, ...] | list[str]) -> list[int]:
    """Indices in an object detector's ``classes`` of the ``wanted`` names it knows."""
    return [i for i, c in enumerate(classes) if c in set(wanted)]


def select(det: Detections, ids: Tensor, min_confidence: float, min_size: float,
           height: int, width: int) -> Tensor:
    """float32 ``[n, 4]`` boxes (x1, y1, x2, y2), clipped to the frame, of the objects whose class
    is in ``ids``, confidence >= ``min_confidence`` and both sides >= ``min_size`` pixels, most
    confident first (the detector's order)."""
    boxes = det.boxes.float().cpu().reshape(-1, 4).clone()
    if boxes.shape[0] == 0:
        return boxes
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    keep = torch.isin(det.class_ids.cpu().long(), ids) & (det.scores.cpu() >= min_confidence)
    keep &= (boxes[:, 2] - boxes[:, 0] >= min_size) & (boxes[:, 3] - boxes[:, 1] >= min_size)
    return boxes[keep]
