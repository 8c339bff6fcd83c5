"""Object detectors for detectors that use scene context (e.g. two-stream's bag-of-objects).

An object detector is a class with a lower-case ``name``, keyword-only constructor parameters, a
``classes`` list (index -> class name) and ``detect(frames) -> list[Detections]``, one
:class:`Detections` per frame. Plugins register them through the hook
``vadx_register_object_detectors(register)`` (:mod:`vadx.hookspecs`); look them up with
:func:`vadx.plugins.object_detectors` / :func:`create_object_detector`.

vadx ships one, ``"darknet"`` (:class:`DarknetDetector`): a Darknet ``.cfg`` + ``.weights`` pair
and a class-names file, given by path (Yolo-Fastest, YOLOv3/v4-tiny style networks). It registers
through the same hook as any plugin: this module is declared in the "vadx" entry-point group as
``objects`` (distribution ``vadx``), so ``VADX_LOAD_PLUGINS`` / ``VADX_DISABLE_PLUGINS`` treat it
like any plugin.

Why not OpenCV's DNN module: OpenCV 5 (installed here, 5.0.0) removed the Darknet importer
(``readNetFromDarknet`` is gone and ``readNet`` on a .cfg raises "Darknet importer has been
removed"), so the network is interpreted here in PyTorch from the same two files: the layers
YOLO-family cfgs use (convolutional with groups / batch norm / leaky or linear, maxpool,
route, shortcut, upsample, dropout, yolo). Decoding follows Darknet's ``[yolo]`` layer
(``scale_x_y``, anchors by mask), the image is stretched to the network size without letterboxing
(Darknet's and OpenCV's default), and boxes are suppressed per class by IoU (greedy NMS).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vadx.hookspecs import hookimpl


class Detections(NamedTuple):
    """The objects found in one frame.

    Attributes:
        class_ids: int64 ``[n]`` indices into the detector's ``classes``.
        scores: float32 ``[n]`` confidences in [0, 1].
        boxes: float32 ``[n, 4]`` (x1, y1, x2, y2) in input-frame pixels.
    """

    class_ids: Tensor
    scores: Tensor
    boxes: Tensor


class ObjectDetector:
    """Base class of object detectors (see the module docstring)."""

    name: ClassVar[str] = ""
    classes: list[str]

    def detect(self, frames: Tensor) -> list[Detections]:
        """Objects in each frame of uint8 ``[T, C, H, W]`` (C = 1 grey or 3 RGB)."""
        raise NotImplementedError(f"{type(self).__name__} must implement detect(frames)")


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


def create_object_detector(name: str, **params: Any) -> ObjectDetector:
    """A new object detector ``name`` (see :func:`vadx.plugins.object_detectors`)."""
    from vadx import plugins

    return plugins.get_object_detector(name).cls(**params)


# ------------------------------------------------------------------------------ Darknet
def parse_cfg(path: str | os.PathLike) -> list[dict[str, str]]:
    """A Darknet .cfg as a list of sections ``{"type": ..., key: value}`` (values as text)."""
    sections: list[dict[str, str]] = []
    for lineno, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ValueError(f"{os.fspath(path)}:{lineno}: malformed section header {raw!r}")
            sections.append({"type": line[1:-1].strip()})
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1][key.strip()] = value.strip()
        else:
            raise ValueError(f"{os.fspath(path)}:{lineno}: expected '[section]' or 'key=value', got {raw!r}")
    if not sections or sections[0]["type"] not in ("net", "network"):
        raise ValueError(f"{os.fspath(path)}: a Darknet cfg starts with a [net] section")
    return sections


def _ints(text: str) -> list[int]:
    return [int(v) for v in re.split(r"\s*,\s*", text.strip()) if v]


class _YoloHead(nn.Module):
    def __init__(self, anchors: list[tuple[float, float]], n_classes: int, scale_x_y: float):
        super().__init__()
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32), persistent=False)
        self.n_classes, self.scale_x_y = n_classes, scale_x_y

    def decode(self, x: Tensor, net_hw: tuple[int, int]) -> Tensor:
        """``[N, A*(5+C), h, w]`` -> ``[N, A*h*w, 4 + C]``: normalised (cx, cy, w, h), obj*class."""
        n, _, h, w = x.shape
        a = self.anchors.shape[0]
        x = x.view(n, a, 5 + self.n_classes, h, w).permute(0, 1, 3, 4, 2)
        gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device),
                                indexing="ij")
        s = self.scale_x_y
        cx = ((x[..., 0].sigmoid() * s - (s - 1) / 2) + gx) / w
        cy = ((x[..., 1].sigmoid() * s - (s - 1) / 2) + gy) / h
        bw = x[..., 2].exp() * self.anchors[:, 0].view(1, a, 1, 1) / net_hw[1]
        bh = x[..., 3].exp() * self.anchors[:, 1].view(1, a, 1, 1) / net_hw[0]
        conf = x[..., 4:5].sigmoid() * x[..., 5:].sigmoid()
        return torch.cat([torch.stack([cx, cy, bw, bh], -1), conf], -1).reshape(n, -1, 4 + self.n_classes)


class DarknetNet(nn.Module):
    """A Darknet YOLO network built from its cfg sections (inference only)."""

    def __init__(self, sections: list[dict[str, str]]):
        super().__init__()
        net = sections[0]
        self.net_hw = (int(net.get("height", 416)), int(net.get("width", 416)))
        channels = int(net.get("channels", 3))
        self.layers = nn.ModuleList()
        self.kinds: list[tuple[str, dict[str, Any]]] = []
        out_ch: list[int] = []
        for i, sec in enumerate(sections[1:]):
            kind, prev = sec["type"], (out_ch[-1] if out_ch else channels)
            info: dict[str, Any] = {}
            if kind == "convolutional":
                filters, size = int(sec["filters"]), int(sec.get("size", 1))
                stride, groups = int(sec.get("stride", 1)), int(sec.get("groups", 1))
                pad = (size // 2) if int(sec.get("pad", 0)) else int(sec.get("padding", 0))
                bn = int(sec.get("batch_normalize", 0))
                act = sec.get("activation", "logistic")
                if act not in ("leaky", "linear", "relu"):
                    raise ValueError(f"Darknet layer {i}: activation {act!r} is not supported "
                                     f"(leaky, linear, relu)")
                m = nn.Sequential()
                m.add_module("conv", nn.Conv2d(prev, filters, size, stride, pad, groups=groups, bias=not bn))
                if bn:
                    m.add_module("bn", nn.BatchNorm2d(filters, eps=1e-5))
                if act == "leaky":
                    m.add_module("act", nn.LeakyReLU(0.1, inplace=True))
                elif act == "relu":
                    m.add_module("act", nn.ReLU())
                ch = filters
            elif kind == "maxpool":
                size, stride = int(sec.get("size", 2)), int(sec.get("stride", 2))
                padding = int(sec.get("padding", size - 1))
                # Darknet pads padding//2 before and the rest after, with -inf.
                m = nn.Sequential(nn.ConstantPad2d((padding // 2, padding - padding // 2) * 2, float("-inf")),
                                  nn.MaxPool2d(size, stride))
                ch = prev
            elif kind == "route":
                idx = [j if j >= 0 else i + j for j in _ints(sec["layers"])]
                if "groups" in sec and int(sec["groups"]) != 1:
                    raise ValueError(f"Darknet layer {i}: route with groups is not supported")
                info["layers"] = idx
                m, ch = nn.Identity(), sum(out_ch[j] for j in idx)
            elif kind == "shortcut":
                j = int(sec["from"])
                info["from"] = j if j >= 0 else i + j
                if sec.get("activation", "linear") != "linear":
                    raise ValueError(f"Darknet layer {i}: shortcut activation must be linear")
                m, ch = nn.Identity(), prev
            elif kind == "upsample":
                m, ch = nn.Upsample(scale_factor=int(sec.get("stride", 2)), mode="nearest"), prev
            elif kind == "dropout":
                m, ch = nn.Identity(), prev
            elif kind == "yolo":
                mask = _ints(sec["mask"])
                all_anchors = _ints(sec["anchors"])
                pairs = [(float(all_anchors[2 * k]), float(all_anchors[2 * k + 1])) for k in mask]
                m = _YoloHead(pairs, int(sec["classes"]), float(sec.get("scale_x_y", 1.0)))
                ch = prev
            else:
                raise ValueError(f"Darknet layer {i}: layer type [{kind}] is not supported")
            self.layers.append(m)
            self.kinds.append((kind, info))
            out_ch.append(ch)
        heads = [m for m in self.layers if isinstance(m, _YoloHead)]
        if not heads:
            raise ValueError("the Darknet cfg has no [yolo] layer")
        self.n_classes = heads[0].n_classes

    def load_darknet_weights(self, path: str | os.PathLike) -> None:
        """Read a Darknet .weights file (header, then per conv: BN or bias, then kernels)."""
        data = Path(path).read_bytes()
        major, minor, _ = np.frombuffer(data[:12], np.int32)
        offset = 12 + (8 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 4)
        values = np.frombuffer(data[offset:], np.float32)
        pos = 0

        def take(t: Tensor) -> None:
            nonlocal pos
            n = t.numel()
            if pos + n > values.size:
                raise ValueError(f"Darknet weights {os.fspath(path)!r} end early: the cfg needs more "
                                 f"than its {values.size} values")
            t.data.copy_(torch.from_numpy(values[pos:pos + n].copy()).view_as(t))
            pos += n

        for m, (kind, _) in zip(self.layers, self.kinds):
            if kind != "convolutional":
                continue
            conv = m.conv
            if hasattr(m, "bn"):
                for t in (m.bn.bias, m.bn.weight, m.bn.running_mean, m.bn.running_var):
                    take(t)
            else:
                take(conv.bias)
            take(conv.weight)
        if pos != values.size:
            raise ValueError(f"Darknet weights {os.fspath(path)!r} hold {values.size} values; the cfg "
                             f"uses {pos}: cfg and weights do not match")

    @torch.no_grad()
    def fold_batch_norm(self) -> None:
        """Fold each eval-mode BatchNorm into its convolution (same outputs, fewer passes)."""
        for m in self.layers:
            if isinstance(m, nn.Sequential) and hasattr(m, "bn"):
                conv, bn = m.conv, m.bn
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                   conv.padding, groups=conv.groups, bias=True)
                folded.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
                folded.bias.copy_(bn.bias - bn.running_mean * scale)
                m.conv, m.bn = folded, nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """RGB in [0, 1] ``[N, 3, h, w]`` at the network size -> ``[N, boxes, 4 + C]``."""
        outs: list[Tensor] = []
        decoded: list[Tensor] = []
        for m, (kind, info) in zip(self.layers, self.kinds):
            if kind == "route":
                x = torch.cat([outs[j] for j in info["layers"]], 1)
            elif kind == "shortcut":
                x = outs[-1] + outs[info["from"]]
            elif kind == "yolo":
                decoded.append(m.decode(x, self.net_hw))
            else:
                x = m(x)
            outs.append(x)
        return torch.cat(decoded, 1)


def _nms(boxes: Tensor, scores: Tensor, iou: float) -> Tensor:
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
            pred = self.net(x).float().cpu()
            for p in pred:
                scores, ids = p[:, 4:].max(1)  # one class per box, its best (as OpenCV/Darknet do)
                keep = scores >= self.conf_threshold
                p, scores, ids = p[keep], scores[keep], ids[keep]
                cx, cy, bw, bh = p[:, 0] * W, p[:, 1] * H, p[:, 2] * W, p[:, 3] * H
                boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
                kept = [idx[_nms(boxes[idx], scores[idx], self.nms_threshold)]
                        for c in ids.unique() for idx in [torch.nonzero(ids == c).flatten()]]
                k = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.long)
                k = k[scores[k].argsort(descending=True)]
                out.append(Detections(ids[k].long(), scores[k].float(), boxes[k].float()))
        return out


@hookimpl
def vadx_register_object_detectors(register) -> None:
    register(DarknetDetector)
