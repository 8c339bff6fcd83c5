"""The network of a Darknet YOLO cfg, interpreted in PyTorch (inference only).

The layers YOLO-family cfgs use: convolutional (groups, batch norm, leaky / linear / relu),
maxpool, route, shortcut, upsample, dropout and yolo. Decoding follows Darknet's ``[yolo]`` layer
(``scale_x_y``, anchors by mask). Weights are read from Darknet's ``.weights`` format.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .cfg import parse_ints


class _YoloHead(nn.Module):
    def __init__(self, anchors: list[tuple[float, float]], n_classes: int, scale_x_y: float):
        super().__init__()
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32), persistent=False)
        self.n_classes, self.scale_x_y = n_classes, scale_x_y

    def decode(self, x: Tensor, net_hw: tuple[int, int]) -> Tensor:
        """``[N, A*(5+C), h, w]`` -> ``[N, A*h*w, 4 + C]``: normalised (cx, cy, w, h), obj*class."""
        n, _, h, w = x.shape
        a = self.anchors.shape[0]
        x = x.reshape(n, a, 5 + self.n_classes, h, w).permute(0, 1, 3, 4, 2)  # any memory format
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
                idx = [j if j >= 0 else i + j for j in parse_ints(sec["layers"])]
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
                mask = parse_ints(sec["mask"])
                all_anchors = parse_ints(sec["anchors"])
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
