"""``DarknetDetector``: the object detector ``darknet`` (frames in, per-frame detections out)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor
from torch.nn import functional as F

from vadx.objects import Detections, ObjectDetector

from .cfg import parse_cfg
from .network import DarknetNet
from .nms import nms

class DarknetDetector(ObjectDetector):
    """A Darknet YOLO detector from its .cfg, .weights and class-names files (by path).

    Args:
        cfg: the network's Darknet .cfg file.
        weights: its Darknet .weights file.
        names: the class names, one per line (``coco.names``), as many as the cfg's classes.
        conf_threshold: objects below this confidence (objectness x class probability) are
            dropped before NMS; 0.25 is Darknet's ``detector test`` default. Consumers filter
            further (the bag-of-objects counts objects >= 0.5).
        nms_threshold: IoU above which a lower-scored box of the same class is suppressed
            (0.45, Darknet's default).
        batch_size: frames per network call.
    """

    name = "darknet"

    def __init__(self, *, cfg: str | os.PathLike, weights: str | os.PathLike, names: str | os.PathLike,
                 conf_threshold: float = 0.25, nms_threshold: float = 0.45, batch_size: int = 16):
        for what, p in (("cfg", cfg), ("weights", weights), ("names", names)):
            if not isinstance(p, (str, os.PathLike)) or not Path(p).is_file():
                raise FileNotFoundError(f"DarknetDetector: {what} must be an existing file, got {p!r}")
        if not 0.0 <= conf_threshold <= 1.0:
            raise ValueError(f"conf_threshold must be in [0, 1], got {conf_threshold!r}")
        if not 0.0 < nms_threshold <= 1.0:
            raise ValueError(f"nms_threshold must be in (0, 1], got {nms_threshold!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.cfg, self.weights, self.names = os.fspath(cfg), os.fspath(weights), os.fspath(names)
        self.conf_threshold, self.nms_threshold, self.batch_size = conf_threshold, nms_threshold, batch_size
        self.classes = [c.strip() for c in Path(names).read_text().splitlines() if c.strip()]
        self.net = DarknetNet(parse_cfg(cfg))
        if len(self.classes) != self.net.n_classes:
            raise ValueError(f"names file {self.names!r} lists {len(self.classes)} classes; the cfg's "
                             f"[yolo] layers have classes={self.net.n_classes}")
        self.net.load_darknet_weights(weights)
        self.net.fold_batch_norm()  # inference only: BN folded into the convolutions (~15 % faster)
        # channels-last: oneDNN's fast layout for these depthwise/pointwise convolutions (2.2x
        # per frame on a 2-core AVX-512 CPU, bench/test_two_stream.py)
        self.net.to(memory_format=torch.channels_last)
        self.net.eval()

    def to(self, device: str | torch.device) -> DarknetDetector:
        self.net.to(device)
        return self

    @torch.no_grad()
    def detect(self, frames: Tensor) -> list[Detections]:
        if not isinstance(frames, Tensor) or frames.dtype != torch.uint8 or frames.dim() != 4 \
                or frames.shape[1] not in (1, 3):
            got = (f"{frames.dtype} tensor of shape {tuple(frames.shape)}" if isinstance(frames, Tensor)
                   else type(frames).__name__)
            raise ValueError(f"frames must be a uint8 tensor [T, C, H, W] with C in (1, 3), got {got}")
        H, W = frames.shape[2:]
        device = next(self.net.parameters()).device
        out: list[Detections] = []
        for start in range(0, frames.shape[0], self.batch_size):
            x = frames[start:start + self.batch_size].to(device).float() / 255.0
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            x = F.interpolate(x, size=self.net.net_hw, mode="bilinear", align_corners=False)
            x = x.contiguous(memory_format=torch.channels_last)
            pred = self.net(x).float().cpu()
            for p in pred:
                scores, ids = p[:, 4:].max(1)  # one class per box, its best (as OpenCV/Darknet do)
                keep = scores >= self.conf_threshold
                p, scores, ids = p[keep], scores[keep], ids[keep]
                cx, cy, bw, bh = p[:, 0] * W, p[:, 1] * H, p[:, 2] * W, p[:, 3] * H
                boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
                kept = [idx[nms(boxes[idx], scores[idx], self.nms_threshold)]
                        for c in ids.unique() for idx in [torch.nonzero(ids == c).flatten()]]
                k = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.long)
                k = k[scores[k].argsort(descending=True)]
                out.append(Detections(ids[k].long(), scores[k].float(), boxes[k].float()))
        return out

