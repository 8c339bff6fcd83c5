"""Argument checks shared by the op wrappers and the fake kernels."""

from __future__ import annotations

import numbers

import torch
from torch import Tensor


def check_same_device(fn: str, ref_name: str, ref: Tensor, **tensors) -> None:
    """Raise ValueError naming the first tensor in ``tensors`` that is not on ``ref``'s device
    (a CPU tensor next to a CUDA one, two CUDA devices, a meta tensor next to a real one), with the
    expected and the actual device. Non-tensors and None are left to the op's own checks.

    The wrappers call this before anything else touches the tensors: the dispatcher would send a
    CPU/CUDA mix to the CUDA kernel, and a mix with meta tensors to the fake kernel, which
    computes no values; both also check (the C++ checks raise the same ValueError)."""
    owner = f"{ref_name}'" if ref_name.endswith("s") else f"{ref_name}'s"
    for name, t in tensors.items():
        if isinstance(t, Tensor) and t.device != ref.device:
            raise ValueError(f"{fn}: {name} must be on {owner} device {ref.device}, got {t.device}")


def real_scalar(fn: str, name: str, v) -> float:
    """A scalar argument (a real number or a 0-d real tensor) as a float; a TypeError naming it for
    anything else (bool included), a ValueError for an int too large for a float."""
    if (isinstance(v, Tensor) and v.dim() == 0 and not v.is_complex() and v.dtype != torch.bool
            and v.device.type != "meta"):
        return float(v.item())
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a real number, got {type(v).__name__} {v!r:.40}")
    try:
        return float(v)
    except OverflowError:
        raise ValueError(f"{fn}: {name} must fit a float64, got {v!r:.40}") from None
