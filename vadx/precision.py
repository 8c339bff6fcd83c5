"""Mixed precision for training: bf16 autocast where the processor runs bf16 natively.

On CPUs with AVX512-BF16 or AMX (e.g. AMD Zen 4, Intel Sapphire Rapids) oneDNN runs bf16
convolutions about twice as fast as float32 (a latent-pred training step: 2.1x here); on CPUs
without them bf16 is emulated and slower, so ``"auto"`` keeps float32 there. Only training uses
it: inference stays float32, so scores do not depend on the precision a model was trained in
beyond the weights themselves, and save/load stays bit-identical.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch

PRECISIONS = ("auto", "bf16", "fp32")


@functools.lru_cache(maxsize=1)
def native_cpu_bf16() -> bool:
    """The CPU computes bf16 natively (AVX512-BF16 or AMX-BF16) and oneDNN can use it."""
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
        with open("/proc/cpuinfo") as f:  # Linux: the flags say whether bf16 is native
            flags = f.read()
    except (OSError, RuntimeError, AttributeError):
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve(precision: str, device: torch.device) -> str:
    """``"bf16"`` or ``"fp32"``: what ``precision`` (``"auto"``, ``"bf16"``, ``"fp32"``) means
    on ``device``; ``"auto"`` is bf16 on CUDA devices that support it and on native-bf16 CPUs."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and native_cpu_bf16() else "fp32"


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """Autocast to bf16 inside the block when ``resolve(precision, device)`` is bf16."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=resolve(precision, device) == "bf16"):
        yield
