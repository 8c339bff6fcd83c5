"""The bag-of-objects: per-frame object counts by class, from an object detector's detections."""

from __future__ import annotations

from collections.abc import Callable

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


def detection_slots(start: int, n: int, fps: float, object_fps: float | None) -> Tensor:
    """The detection slot of frames ``start .. start + n - 1`` of a video at ``fps`` frames/s when
    objects are detected ``object_fps`` times per second (None: every frame): frame ``i`` is in
    slot ``floor(i * object_fps / fps)``, and all frames of a slot share the bag of its first."""
    i = torch.arange(start, start + n, dtype=torch.float64)
    if object_fps is None or object_fps >= fps:
        return i.long()
    return torch.floor(i * (object_fps / fps) + 1e-9).long()


class BagClock:
    """Bags of objects at a bounded detection rate, for a video read in chunks.

    Objects rarely appear or vanish within a tenth of a second, and the object detector is the
    costliest stage of scoring; so at most ``object_fps`` frames per second are detected (the
    first frame of each slot, :func:`detection_slots`) and the other frames of the slot reuse
    that bag. The slot's first frame is carried across chunks (detected only if a frame of its
    slot asks), so a stream, a whole video and a training pass over sampled frames give every
    frame the same bag.
    """

    def __init__(self, fps: float, object_fps: float | None):
        self.fps, self.object_fps = fps, object_fps
        self.t = 0  # frames seen
        self.slot: int | None = None  # the last slot seen, its first frame and its bag once known
        self.first: Tensor | None = None
        self.bag: Tensor | None = None

    def bags(self, frames: Tensor, detect: Callable[[Tensor], Tensor],
             selected: Tensor | None = None) -> Tensor:
        """Bags ``[len(selected), K]`` of ``frames[selected]`` (default all) of the next chunk;
        ``detect`` maps frames ``[m, C, H, W]`` to their bags ``[m, K]``."""
        n = frames.shape[0]
        slots = detection_slots(self.t, n, self.fps, self.object_fps)
        self.t += n
        selected = torch.arange(n) if selected is None else selected.long().cpu()
        starts = torch.ones(n, dtype=torch.bool)  # the first frame of each slot in this chunk
        starts[1:] = slots[1:] != slots[:-1]
        if self.slot is not None and n and int(slots[0]) == self.slot:
            starts[0] = False
        wanted = slots[selected].unique()
        known: dict[int, Tensor] = {}
        if self.slot is not None and bool((wanted == self.slot).any()):
            if self.bag is None:  # its first frame came in an earlier chunk, not yet detected
                self.bag = detect(self.first)[0]
            known[self.slot] = self.bag
        todo = [int(s) for s in wanted if int(s) not in known]
        if todo:  # each of these slots starts in this chunk: detect its first frame, all at once
            pos = starts.nonzero().squeeze(1)
            pos = pos[torch.isin(slots[pos], torch.tensor(todo))]
            found = detect(frames[pos.to(frames.device)])
            known.update({int(slots[p]): found[j] for j, p in enumerate(pos.tolist())})
        if n:
            last = int(slots[-1])
            if last != self.slot:
                p = int(starts.nonzero()[-1])
                self.slot, self.first, self.bag = last, frames[p:p + 1].clone(), known.get(last)
            self.first = None if self.bag is not None else self.first
        if selected.numel() == 0:
            return torch.zeros(0, 0)
        return torch.stack([known[int(s)] for s in slots[selected]])
