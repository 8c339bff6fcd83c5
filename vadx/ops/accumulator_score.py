"""The Sigmoidal Anomaly Score accumulator (Petrocchi et al. §3.5) as torch.ops.vadx.accumulator_score."""

from __future__ import annotations

import numbers

import torch
from torch import Tensor

from vadx.ops._checks import check_same_device, real_scalar

__all__ = ["accumulator_score"]


def _number(name: str, v) -> float:
    return real_scalar("accumulator_score", name, v)


def accumulator_score(
    sigma: Tensor,
    tau: float = 0.5,
    nu: float = 2.0,
    lb: float = -7.0,
    ub: float = 7.0,
    x0: Tensor | float | None = None,
    decay: str = "symmetric",
) -> tuple[Tensor, Tensor]:
    r"""Sigmoidal Anomaly Score: a clipped accumulator of classifier confidences, squashed.

    For every stream ``b`` and frame ``t`` (``x_0 = x0[b]``)::

        Delta+ = (sigma_t - tau) / (1 - tau)
        Delta- = (tau - sigma_t) / tau                             decay="symmetric" (authors' code)
        Delta- = clip((1 - sigma_t - tau) / (1 - tau), 0, 1)        decay="paper"     (paper's text)
        x_t = clip(x_{t-1} + nu * Delta+, lb, ub)   if sigma_t >= tau
        x_t = clip(x_{t-1} - nu * Delta-, lb, ub)   otherwise
        s_t = 1 / (1 + exp(-x_t))

    The score rises quickly while the classifier is confident that frames are anomalous and decays
    back, so single-frame false alarms are damped and sustained anomalies saturate towards
    ``logistic(ub)``. Higher is more anomalous.

    Args:
        sigma: confidences in [0, 1], shape ``[B, T]`` (B independent streams) or ``[T]``; float32
            or float64 (also float16/bfloat16). Values outside [0, 1] are clipped to it. ``NaN``
            marks a frame without a confidence (e.g. a dropped frame): its score is ``NaN`` and the
            accumulator holds its value, so one bad frame never poisons the rest of a stream.
            May be non-contiguous. Not differentiable (the result is detached from sigma's graph).
        tau: confidence threshold in [0, 1). ``tau = 0`` makes every frame a rise.
        nu: step size, finite and > 0. Any finite nu is exact (a huge nu makes every frame jump
            to lb or ub); the scans saturate composed shifts at 2^1000, exact for
            ``|x0|, |lb|, |ub| <= 2^999``, so no nu makes NaN.
        lb, ub: finite clipping bounds, ``lb < ub``.
        x0: initial accumulator per stream, ``[B]`` (``[]`` or a number for 1-D sigma); default
            ``lb`` (as the authors' code). Pass the previous call's ``x_last`` here to continue a
            stream chunk by chunk: the chunks' scores equal the one-shot scores. A tensor x0 must
            be on sigma's device.
        decay: ``"symmetric"`` (default) or ``"paper"``, see above.

    Returns:
        ``(s, x_last)``: ``s`` has sigma's shape and dtype; ``x_last`` (``[B]``, or ``[]`` for 1-D
        sigma) is the accumulator after the last frame, in float64 whatever sigma's dtype, so that
        continuing a stream from it reproduces the one-shot computation.

    Raises:
        ValueError / TypeError: a bad argument, naming it with the expected and the actual value.

    The CPU kernel advances one stream per vector lane (16 float32 streams per AVX-512 vector;
    the instruction set is picked at run time as ATen picks its own, see
    ``torch.backends.cpu.get_cpu_capability()``), streams in parallel across threads; fewer
    streams than lanes are cut into blocks scanned in parallel over time
    (``x -> clip(x + a, l, u)`` is closed under composition, so the recurrence is an associative
    scan), then checked so that the result is exactly the frame-by-frame one. So on a given
    machine the scores and ``x_last`` are bit for bit the same however streams are batched,
    chunked or threaded. Across instruction sets and against the CUDA kernel (its own exp, and a
    scan that rounds the float64 state differently) scores and ``x_last`` may differ in the last
    bits; against the reference, within float64 / the score dtype's rounding.

    Example:
        >>> s, x = accumulator_score(torch.tensor([0.1, 0.9, 0.9, 0.2]))
        >>> s.shape, x.dtype
        (torch.Size([4]), torch.float64)
    """
    if not isinstance(sigma, Tensor):
        raise TypeError(f"accumulator_score: sigma must be a torch.Tensor, got {type(sigma).__name__}")
    if sigma.dim() not in (1, 2):
        raise ValueError(
            f"accumulator_score: sigma must be [T] or [B, T], got {sigma.dim()}-D with shape "
            f"{tuple(sigma.shape)}"
        )
    tau, nu, lb, ub = (_number(name, v) for name, v in (("tau", tau), ("nu", nu), ("lb", lb), ("ub", ub)))
    if not isinstance(decay, str):
        raise TypeError(f"accumulator_score: decay must be 'symmetric' or 'paper', got {decay!r}")
    single = sigma.dim() == 1
    sigma2 = sigma.detach().unsqueeze(0) if single else sigma.detach()
    B = sigma2.shape[0]
    if x0 is None:
        x0 = torch.full((B,), lb, dtype=torch.float64, device=sigma.device)
    elif isinstance(x0, numbers.Real) and not isinstance(x0, bool):
        x0 = torch.full((B,), _number("x0", x0), dtype=torch.float64, device=sigma.device)
    elif isinstance(x0, Tensor):
        check_same_device("accumulator_score", "sigma", sigma, x0=x0)
        if single and x0.dim() == 0:
            x0 = x0.reshape(1)
        x0 = x0.detach().to(torch.float64)  # the accumulator state is float64
    else:
        raise TypeError(
            f"accumulator_score: x0 must be None, a number or a Tensor, got {type(x0).__name__}"
        )
    s, x_last = torch.ops.vadx.accumulator_score(sigma2, tau, nu, lb, ub, x0, decay)
    if single:
        return s[0], x_last[0]
    return s, x_last
