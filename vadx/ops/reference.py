"""Plain-PyTorch reference implementations of vadx's ops: the documented semantics and the oracle
that the C++/CUDA kernels are tested against. Written for clarity, not speed; every function
computes in float64 and returns the op's dtype."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["accumulator_score", "accumulator_score_scan"]


def _sas_prepare(sigma: Tensor, tau: float, nu: float, lb: float, x0, decay: str):
    """float64 [B, T] sigma, per-frame increments a, validity mask and the float64 x0 [B]."""
    if decay not in ("symmetric", "paper"):
        raise ValueError(f"decay must be 'symmetric' or 'paper', got {decay!r}")
    sig = (sigma if sigma.dim() == 2 else sigma.unsqueeze(0)).double()
    B = sig.shape[0]
    if x0 is None:
        x = torch.full((B,), float(lb), dtype=torch.float64, device=sig.device)
    else:
        x = torch.as_tensor(x0, dtype=torch.float64, device=sig.device).reshape(-1).expand(B).clone()
    valid = ~torch.isnan(sig)
    c = sig.clamp(0.0, 1.0)
    rise = nu * (c - tau) / (1.0 - tau)
    if decay == "symmetric":
        fall = (tau - c) / tau if tau > 0 else torch.zeros_like(c)  # unused when tau == 0
    else:
        fall = ((1.0 - c - tau) / (1.0 - tau)).clamp(0.0, 1.0)
    a = torch.where(c >= tau, rise, -(nu * fall))
    return sig, a, valid, x


def _sas_finish(sigma: Tensor, xs: Tensor, x_last: Tensor):
    opmath = torch.float64 if sigma.dtype == torch.float64 else torch.float32
    s = torch.sigmoid(xs.to(opmath)).to(sigma.dtype)
    if sigma.dim() == 1:
        return s[0], x_last[0]
    return s, x_last


def accumulator_score(sigma, tau=0.5, nu=2.0, lb=-7.0, ub=7.0, x0=None, decay="symmetric"):
    """Sequential loop over frames, vectorised over streams (see vadx.ops.accumulator_score)."""
    sig, a, valid, x = _sas_prepare(sigma, tau, nu, lb, x0, decay)
    xs = torch.empty_like(sig)
    for t in range(sig.shape[1]):
        stepped = torch.clamp(x + a[:, t], lb, ub)
        x = torch.where(valid[:, t], stepped, x)  # NaN frame: the accumulator holds
        xs[:, t] = torch.where(valid[:, t], x, torch.nan)
    return _sas_finish(sigma, xs, x)


def accumulator_score_scan(sigma, tau=0.5, nu=2.0, lb=-7.0, ub=7.0, x0=None, decay="symmetric"):
    """The same function as an inclusive Hillis-Steele scan over time of f(x) = clip(x + a, l, u)
    (O(T log T) tensor work, no Python loop over frames): an independent derivation of the
    recurrence, and a fast plain-PyTorch baseline for very long streams."""
    sig, a, valid, x0v = _sas_prepare(sigma, tau, nu, lb, x0, decay)
    inf = torch.tensor(float("inf"), dtype=torch.float64, device=sig.device)
    l = torch.where(valid, torch.tensor(float(lb), dtype=torch.float64), -inf)
    u = torch.where(valid, torch.tensor(float(ub), dtype=torch.float64), inf)
    a = torch.where(valid, a, 0.0)
    T = sig.shape[1]
    shift = 1
    while shift < T:
        # prefix[t] = prefix[t] ∘ prefix[t - shift]  (earlier: t - shift, later: t)
        ea, el, eu = a[:, :-shift], l[:, :-shift], u[:, :-shift]
        la, ll, lu = a[:, shift:], l[:, shift:], u[:, shift:]
        a = torch.cat([a[:, :shift], ea + la], dim=1)
        l = torch.cat([l[:, :shift], torch.clamp(el + la, ll, lu)], dim=1)
        u = torch.cat([u[:, :shift], torch.clamp(eu + la, ll, lu)], dim=1)
        shift *= 2
    x = torch.clamp(x0v[:, None] + a, l, u)
    xs = torch.where(valid, x, torch.nan)
    x_last = x[:, -1] if T > 0 else x0v
    return _sas_finish(sigma, xs, x_last)
