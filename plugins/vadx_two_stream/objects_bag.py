"""The bag-of-objects: per-frame object counts by class, from an object detector's detections."""

from __future__ import annotations

import torch
from torch import Tensor

from vadx.objects import Detections


def bag_of_objects(detections: list[Detections], n_classes: int, min_confidence: float = 0.5) -> Tensor:
    """Per-frame object counts by class: float32 ``[T, n_classes]``, objects with score >= min_confidence."""
    if not isinstance(n_classes, int) or n_classes < 1:
        raise ValueError(f"n_classes must be an int >= 1, got {n_classes!r}")
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence!r}")
    bag = torch.zeros(len(detections), n_classes)
    for t, d in enumerate(detections):
        keep = d.scores >= min_confidence
        ids = d.class_ids[keep].long().cpu()
        if ids.numel() and (ids.min() < 0 or ids.max() >= n_classes):
            raise ValueError(f"detections[{t}] has class ids outside [0, {n_classes}): "
                             f"{sorted(set(ids.tolist()))}")
        bag[t] = torch.bincount(ids, minlength=n_classes).float()
    return bag
