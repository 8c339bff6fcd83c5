"""Pretrained CNN backbones shared by all plugins: one registry, torchvision's file formats.

Weights are never downloaded. :func:`load_backbone` takes a file path (a torchvision state dict
``.pth`` loaded with ``weights_only=True``, or ``.safetensors``), or finds the file in the folder
named by the ``VADX_WEIGHTS_DIR`` environment variable, and checks its SHA-256 where it is known:
torchvision file names embed the first 8 hex digits (``resnet18-f37072fd.pth``), and
:data:`KNOWN_FILES` lists full digests. Random initialisation only when asked (``weights="random"``).

Every model keeps torchvision's module names (so its state dicts load with strict key matching) and
has ``forward_features(x)`` (the last feature map) and ``out_channels``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vadx.features.alexnet import AlexNet
from vadx.features.folding import fold_batchnorm, folded
from vadx.features.mobilenet_v2 import MobileNetV2
from vadx.features.resnet import ResNet, resnet18, resnet50

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    build: Callable[..., nn.Module]
    file_patterns: tuple[str, ...]  # looked up in VADX_WEIGHTS_DIR, in this order


BACKBONES: dict[str, BackboneSpec] = {
    "alexnet": BackboneSpec(AlexNet, ("alexnet-owt-*.pth", "alexnet*.pth", "alexnet*.safetensors")),
    "resnet18": BackboneSpec(resnet18, ("resnet18-*.pth", "resnet18*.pth", "resnet18*.safetensors")),
    "resnet50": BackboneSpec(resnet50, ("resnet50-*.pth", "resnet50*.pth", "resnet50*.safetensors")),
    "mobilenet_v2": BackboneSpec(MobileNetV2, ("mobilenet_v2-*.pth", "mobilenet_v2*.pth",
                                               "mobilenet_v2*.safetensors")),
}


@dataclass(frozen=True)
class KnownFile:
    backbone: str
    build_kwargs: dict[str, Any] = field(default_factory=dict)
    note: str = ""


# Full SHA-256 digests of files whose provenance is documented, with how to build their network.
KNOWN_FILES: dict[str, KnownFile] = {
    "062486834ef36ab40baf98c5b9f23290f52e79af5763f506cf162db27158c71f": KnownFile(
        "mobilenet_v2", {"relu6": False},
        "torchvision int8 mobilenet_v2 (qnnpack 37f702c5) dequantised, BatchNorm folded; its "
        "activations match ReLU better than ReLU6"),
}

_TORCHVISION_NAME = re.compile(r"-([0-9a-f]{8,64})\.(pth|pt)$")


@dataclass(frozen=True)
class WeightsInfo:
    """Which weights a backbone carries: record it with every result."""

    backbone: str
    path: str | None  # None for random initialisation
    sha256: str | None
    verified: bool  # the digest matched a known one (file name prefix or KNOWN_FILES)

    def to_json(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "file": Path(self.path).name if self.path else "random",
                "sha256": self.sha256, "verified": self.verified}


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_weights(name: str, folder: str | os.PathLike | None = None) -> Path:
    """The weights file for backbone ``name`` in ``folder`` (default: ``$VADX_WEIGHTS_DIR``)."""
    spec = _spec(name)
    folder = folder if folder is not None else os.environ.get("VADX_WEIGHTS_DIR")
    how = (f"pass weights=<path to a torchvision {name} state dict>, set VADX_WEIGHTS_DIR to the "
           f"folder holding it, or pass weights='random' for an untrained network")
    if not folder:
        raise FileNotFoundError(f"no weights for backbone {name!r}: VADX_WEIGHTS_DIR is not set; {how}")
    for pattern in spec.file_patterns:
        hits = sorted(Path(folder).glob(pattern))
        if hits:
            return hits[0]
    raise FileNotFoundError(f"no weights for backbone {name!r} in {os.fspath(folder)!r} (looked for "
                            f"{', '.join(spec.file_patterns)}); {how}")


def demo_weights(name: str) -> str | None:
    """For quick demos: None (use ``$VADX_WEIGHTS_DIR``) when it holds weights for ``name``, else
    ``"random"``. Detectors' ``demo_params`` use it; real use passes weights explicitly."""
    try:
        find_weights(name)
    except FileNotFoundError:
        return "random"
    return None


def _spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {name!r}")
    return BACKBONES[name]


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not a plain state dict"
        raise ValueError(f"weights file {os.fspath(path)!r} is not a state dict torch.load can read "
                         f"with weights_only=True ({type(e).__name__}: {e}); vadx never unpickles "
                         f"arbitrary objects") from e
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise ValueError(f"weights file {os.fspath(path)!r} must hold a state dict (name -> tensor), "
                         f"got {type(sd).__name__}")
    return sd


def load_backbone(name: str, weights: str | os.PathLike | None = None, *, sha256: str | None = None,
                  **build_kwargs: Any) -> nn.Module:
    """Backbone ``name`` (one of :data:`BACKBONES`) with its weights, in eval mode, on the CPU.

    Args:
        name: ``"alexnet"``, ``"resnet18"``, ``"resnet50"`` or ``"mobilenet_v2"``.
        weights: a file path; None to look in ``$VADX_WEIGHTS_DIR``; ``"random"`` for an untrained
            network (explicitly asked for, never a silent fallback).
        sha256: the expected full digest; raises if the file differs. Without it, the digest is
            checked against the file name (torchvision convention) or :data:`KNOWN_FILES`.
        **build_kwargs: passed to the network's constructor (e.g. ``relu6`` for MobileNetV2);
            they override what :data:`KNOWN_FILES` says about the file.
    The model's ``weights_info`` (:class:`WeightsInfo`) says which weights it carries.
    """
    spec = _spec(name)
    if isinstance(weights, str) and weights == "random":
        model = spec.build(**build_kwargs)
        model.weights_info = WeightsInfo(name, None, None, False)
        return model.eval()
    path = Path(weights) if weights is not None else find_weights(name)
    if not path.is_file():
        raise FileNotFoundError(f"weights for backbone {name!r}: no file {os.fspath(path)!r}")
    digest = sha256_file(path)
    verified = False
    if sha256 is not None:
        if digest != sha256.lower():
            raise ValueError(f"weights file {os.fspath(path)!r}: expected SHA-256 {sha256}, got {digest}")
        verified = True
    m = _TORCHVISION_NAME.search(path.name)
    if m:
        if not digest.startswith(m.group(1)):
            raise ValueError(f"weights file {os.fspath(path)!r} is corrupt or not what its name says: "
                             f"its name expects a SHA-256 starting {m.group(1)}, got {digest}")
        verified = True
    known = KNOWN_FILES.get(digest)
    if known is not None:
        if known.backbone != name:
            raise ValueError(f"weights file {os.fspath(path)!r} holds a {known.backbone} "
                             f"({known.note}), not a {name}")
        verified = True
        build_kwargs = {**known.build_kwargs, **build_kwargs}
    model = spec.build(**build_kwargs)
    sd = _read_state_dict(path)
    missing, unexpected = _key_mismatch(model, sd)
    if missing or unexpected:
        raise ValueError(f"weights file {os.fspath(path)!r} does not match torchvision's {name}: "
                         f"missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected "
                         f"keys {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    model.load_state_dict(sd, strict=True)
    model.weights_info = WeightsInfo(name, os.fspath(path), digest, verified)
    return model.eval()


def _key_mismatch(model: nn.Module, sd: dict[str, Tensor]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    return sorted(expected - set(sd)), sorted(set(sd) - expected)


def imagenet_normalize(frames: Tensor) -> Tensor:
    """uint8 ``[N, C, H, W]`` (C = 1 grey or 3 RGB) -> float32 ``[N, 3, H, W]`` ImageNet-normalised.

    Grey frames are replicated to three channels, as ImageNet networks expect RGB.
    """
    if frames.dim() != 4 or frames.shape[1] not in (1, 3):
        raise ValueError(f"frames must be [N, C, H, W] with C in (1, 3), got shape {tuple(frames.shape)}")
    x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def conv_geometry(modules: Iterable[nn.Module] | nn.Module) -> list[tuple]:
    """(kernel, stride, padding, dilation) of each Conv2d / MaxPool2d / AvgPool2d on the main path.

    Feed it to :func:`vadx.ops.receptive_field`. Modules are visited in registration order;
    ResNet's ``downsample`` shortcut branches are skipped: they run in parallel with the main path
    and, being 1x1, never widen the receptive field.
    """
    root = modules if isinstance(modules, nn.Module) else nn.Sequential(*modules)
    out = []
    for qualname, m in root.named_modules():
        if "downsample" in qualname.split("."):
            continue
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s, p = m.kernel_size, m.stride, m.padding
            d = m.dilation if isinstance(m, (nn.Conv2d, nn.MaxPool2d)) else 1
            if isinstance(p, str):
                raise ValueError(f"conv_geometry: module {qualname!r} has padding={p!r}; needs numbers")
            out.append((k, s, p, d))
    return out


__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "KNOWN_FILES",
    "AlexNet",
    "MobileNetV2",
    "ResNet",
    "WeightsInfo",
    "conv_geometry",
    "demo_weights",
    "find_weights",
    "fold_batchnorm",
    "folded",
    "imagenet_normalize",
    "load_backbone",
    "resnet18",
    "resnet50",
    "sha256_file",
]
