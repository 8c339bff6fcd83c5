"""Receptive-field roll-back localization (Sabokrou et al. §3.3) as torch.ops.vadx.rollback_coverage,
and receptive_field(), which computes its geometry from a network's layers."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["receptive_field", "rollback_coverage"]

Pair = tuple[int, int]

#: The largest output ``[B, H0, W0]`` rollback_coverage makes, in bytes (1 TiB; kMaxOutputBytes in
#: csrc/rollback_coverage.h, which checks it on every device): an absurd ``out_size`` is refused
#: with a ValueError naming it, instead of the allocator's error that names no argument.
MAX_OUTPUT_BYTES = 2**40


def _is_int(v) -> bool:
    # SymInt: sizes taken from a tensor's shape under torch.compile with dynamic shapes
    return isinstance(v, (numbers.Integral, torch.SymInt)) and not isinstance(v, bool)


def _int(v):
    # A SymInt stays symbolic (int() would specialise the compiled graph on its value): the op's
    # schema takes SymInt[2].
    return v if isinstance(v, torch.SymInt) else int(v)


def _pair(fn: str, name: str, v) -> Pair:
    """An int or an (h, w) pair of ints as an (h, w) tuple."""
    if _is_int(v):
        return _int(v), _int(v)
    if isinstance(v, Sequence) and len(v) == 2 and all(_is_int(e) for e in v):
        return _int(v[0]), _int(v[1])
    raise TypeError(f"{fn}: {name} must be an int or an (h, w) pair of ints, got {v!r}")


def rollback_coverage(weights: Tensor, size, jump, offset, out_size) -> Tensor:
    r"""Roll flags (or scores) on a layer's grid back to input pixels: per pixel, the sum of the
    weights of all cells whose receptive field covers it.

    Cell ``(i, j)`` of the layer-k grid sees input rows ``i * J_h - P_h ... i * J_h - P_h + R_h - 1``
    and columns ``j * J_w - P_w ... j * J_w - P_w + R_w - 1`` (size ``R``, jump ``J``, offset ``P``
    per axis, as :func:`receptive_field` computes them), clipped to the frame. For every frame
    ``b`` and pixel ``(y, x)``::

        coverage[b, y, x] = sum of weights[b, i, j] over the cells (i, j) whose field holds (y, x)

    With 0/1 anomaly flags this is the number of anomalous fields covering a pixel; the paper
    localizes anomalies as ``coverage > zeta`` (zeta = 3), which is left to the caller.

    Args:
        weights: ``[B, Hk, Wk]`` (or ``[Hk, Wk]`` for one frame) flags or scores on the layer-k grid;
            float32 or float64 (also float16/bfloat16); bool and uint8 flags are converted to
            float32. May be non-contiguous. Not differentiable (the result is detached).
            ``NaN`` and ``inf`` weights reach exactly the pixels their cells cover, with IEEE sum
            semantics there (any ``NaN``, or both ``+inf`` and ``-inf``, give ``NaN``; otherwise
            ``±inf``); they never spill onto other pixels.
        size: field size ``R``, an ``(h, w)`` pair or one int for both axes, each in [1, 2^31).
        jump: field stride ``J`` on the input (the product of the layers' strides), in [1, 2^31).
        offset: ``P``, how far the first cell's field starts before pixel 0 (the accumulated
            padding), in [-2^31, 2^31). Negative values (a field starting inside the frame, e.g.
            when the frame was cropped before the network) are allowed.
        out_size: the input frame size ``(H0, W0)``, each >= 0 (e.g. ``frame.shape[-2:]``:
            under ``torch.compile(dynamic=True)`` these stay symbolic, so one compiled graph
            serves every frame size). The output ``B x H0 x W0`` elements may take at most
            :data:`MAX_OUTPUT_BYTES` (1 TiB).

    Returns:
        ``[B, H0, W0]`` (or ``[H0, W0]``) coverage in weights' floating dtype.

    Raises:
        ValueError / TypeError: a bad argument, naming it with the expected and the actual value;
            a ValueError naming ``out_size`` and the bytes also for an output over
            :data:`MAX_OUTPUT_BYTES`, or one this machine (or GPU) cannot allocate, on CPU and
            CUDA alike.

    Cost is O(cells + pixels) per frame whatever the field size: each frame's weights go into a
    float64 summed-area table and each pixel's covering cells form one rectangle of it (four
    lookups), with the per-row and per-column cell ranges computed once per call. That table is
    used only where it is exact (every partial sum representable in float64: 0/1 flags, integer
    counts, scores of similar magnitude); a frame whose weights span too many orders of magnitude
    (1e17 next to 1.0) or approach the float64 maximum is instead summed directly over each
    pixel's covering cells (O(cells per pixel) per distinct pixel), so a large weight never
    cancels or overflows onto pixels it does not cover: coverage is always the float64 sum of the
    pixel's own covering weights. CPU and CUDA results are bit-identical.

    Example:
        >>> flags = torch.zeros(1, 3, 4)
        >>> flags[0, 1, 2] = 1
        >>> cov = rollback_coverage(flags, size=5, jump=2, offset=1, out_size=(6, 8))
        >>> cov[0, 1:6, 3:8].sum().item(), cov.sum().item()   # rows 1..5, cols 3..7 covered
        (25.0, 25.0)
    """
    fn = "rollback_coverage"
    if not isinstance(weights, Tensor):
        raise TypeError(f"{fn}: weights must be a torch.Tensor, got {type(weights).__name__}")
    if weights.dim() not in (2, 3):
        raise ValueError(
            f"{fn}: weights must be [Hk, Wk] or [B, Hk, Wk], got {weights.dim()}-D with shape "
            f"{tuple(weights.shape)}"
        )
    if weights.dtype in (torch.bool, torch.uint8):
        weights = weights.to(torch.float32)
    elif not weights.dtype.is_floating_point:
        raise TypeError(f"{fn}: weights must be floating-point, bool or uint8, got {weights.dtype}")
    single = weights.dim() == 2
    w = weights.detach().unsqueeze(0) if single else weights.detach()
    geometry = [_pair(fn, name, v) for name, v in
                (("size", size), ("jump", jump), ("offset", offset), ("out_size", out_size))]
    cov = torch.ops.vadx.rollback_coverage(w, *geometry)
    return cov[0] if single else cov


def receptive_field(layers) -> tuple[Pair, Pair, Pair]:
    r"""The receptive-field geometry of a stack of convolution/pooling layers, for
    :func:`rollback_coverage`.

    Each layer is ``(kernel, stride, padding)`` or ``(kernel, stride, padding, dilation)``, every
    entry an int or an ``(h, w)`` pair (as ``torch.nn.Conv2d``/``MaxPool2d`` take them). Per axis,
    starting from ``R = 1, J = 1, P = 0`` (the input itself)::

        k_eff = dilation * (kernel - 1) + 1
        R += (k_eff - 1) * J;   P += padding * J;   J *= stride

    so that cell ``i`` of the last layer sees input pixels ``i * J - P ... i * J - P + R - 1``.
    Pooling with ``ceil_mode`` changes how many cells there are, not where they look.

    Returns:
        ``(size, jump, offset)``, each an ``(h, w)`` pair of ints.

    Raises:
        TypeError / ValueError: a malformed layer, naming its index and value (kernel, stride and
        dilation must be >= 1, padding >= 0).

    Example (torchvision AlexNet up to conv2: conv1 11/4/2, max-pool 3/2, conv2 5/1/2):
        >>> receptive_field([(11, 4, 2), (3, 2, 0), (5, 1, 2)])
        ((51, 51), (8, 8), (18, 18))
    """
    fn = "receptive_field"
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise TypeError(f"{fn}: layers must be a sequence of layers, got {type(layers).__name__}")
    size, jump, offset = [1, 1], [1, 1], [0, 0]
    for n, layer in enumerate(layers):
        if not isinstance(layer, Sequence) or len(layer) not in (3, 4):
            raise ValueError(
                f"{fn}: layer {n} must be (kernel, stride, padding) or (kernel, stride, padding, "
                f"dilation), got {layer!r}"
            )
        raw = (*layer, 1)[:4]  # dilation defaults to 1
        pairs = []
        for name, v, lo in zip(("kernel", "stride", "padding", "dilation"), raw, (1, 1, 0, 1)):
            p = _pair(fn, f"layer {n} {name}", v)
            if min(p) < lo:
                raise ValueError(f"{fn}: layer {n} {name} must be >= {lo}, got {v!r}")
            pairs.append(p)
        kernel, stride, padding, dilation = pairs
        for a in range(2):
            k_eff = dilation[a] * (kernel[a] - 1) + 1
            size[a] += (k_eff - 1) * jump[a]
            offset[a] += padding[a] * jump[a]
            jump[a] *= stride[a]
    return tuple(size), tuple(jump), tuple(offset)
