"""Plain-PyTorch reference implementations of vadx's ops: the documented semantics and the oracle
that the C++/CUDA kernels are tested against. Written for clarity, not speed; every function
computes in float64 and returns the op's dtype."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "accumulator_score",
    "accumulator_score_scan",
    "mahalanobis_cascade",
    "rollback_coverage",
    "rollback_coverage_conv_transpose",
    "sista",
]


_SAS_MAX_SHIFT = 2.0**1000


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
        # the composed shift saturates at +-2^1000 as in the kernels (csrc/accumulator_score.h):
        # exact for |x|, |lb|, |ub| <= 2^999, and a huge nu can no longer make inf - inf = NaN
        a = torch.cat([a[:, :shift], (ea + la).clamp(-_SAS_MAX_SHIFT, _SAS_MAX_SHIFT)], dim=1)
        l = torch.cat([l[:, :shift], torch.clamp(el + la, ll, lu)], dim=1)
        u = torch.cat([u[:, :shift], torch.clamp(eu + la, ll, lu)], dim=1)
        shift *= 2
    x = torch.clamp(x0v[:, None] + a, l, u)
    xs = torch.where(valid, x, torch.nan)
    x_last = x[:, -1] if T > 0 else x0v
    return _sas_finish(sigma, xs, x_last)


def mahalanobis_cascade(feats, mu1, w1, beta, alpha, ct_weight, ct_bias, mu2, w2, phi):
    """Two-stage Gaussian cascade (see vadx.ops.mahalanobis_cascade), position by position:
    permute to [B, H, W, m], whiten, then the CT transform and G2 on the suspicious positions."""
    x = feats.double().permute(0, 2, 3, 1)  # [B, H, W, m]
    d1 = torch.linalg.vector_norm((x - mu1.double()) @ w1.double().T, dim=-1)
    label = torch.ones(d1.shape, dtype=torch.uint8, device=d1.device)  # anomalous unless shown otherwise (NaN too)
    label[d1 <= beta] = 0
    suspicious = (d1 > beta) & (d1 < alpha)
    d2 = torch.full_like(d1, float("nan"))
    z = torch.sigmoid(x[suspicious] @ ct_weight.double().reshape(ct_weight.shape[0], -1).T
                      + ct_bias.double())
    d2_s = torch.linalg.vector_norm((z - mu2.double()) @ w2.double().T, dim=-1)
    d2[suspicious] = d2_s
    label[suspicious] = torch.where(d2_s < phi, 3, 2).to(torch.uint8)  # NaN d2: anomalous
    return d1.to(feats.dtype), d2.to(feats.dtype), label


def rollback_coverage(weights, size, jump, offset, out_size):
    """Paints every cell's field, clipped to the frame, with its weight (O(cells * R^2); see
    vadx.ops.rollback_coverage). ``size``, ``jump``, ``offset`` and ``out_size`` are (h, w) pairs;
    bool/uint8 flags count as float32."""
    w = weights if weights.dtype.is_floating_point else weights.float()
    w3 = w if w.dim() == 3 else w.unsqueeze(0)
    (rh, rw), (jh, jw), (ph, pw), (H0, W0) = size, jump, offset, out_size
    out = torch.zeros(w3.shape[0], H0, W0, dtype=torch.float64, device=w.device)
    for b in range(w3.shape[0]):
        for i in range(w3.shape[1]):
            r0, r1 = max(i * jh - ph, 0), min(i * jh - ph + rh, H0)
            for j in range(w3.shape[2]):
                c0, c1 = max(j * jw - pw, 0), min(j * jw - pw + rw, W0)
                if r0 < r1 and c0 < c1:
                    out[b, r0:r1, c0:c1] += w3[b, i, j].double()
    out = out.to(w.dtype)
    return out if w.dim() == 3 else out[0]


def rollback_coverage_conv_transpose(weights, size, jump, offset, out_size):
    """The same coverage as a transposed convolution with an all-ones R_h x R_w kernel and stride J
    (cell i paints full-output rows i*J .. i*J + R - 1), cropped by P and zero-padded to out_size:
    the off-the-shelf alternative, O(cells * R^2) multiply-adds in weights' (float) dtype;
    [B, Hk, Wk] only."""
    (rh, rw), (jh, jw), (ph, pw), (H0, W0) = size, jump, offset, out_size
    ones = torch.ones(1, 1, rh, rw, dtype=weights.dtype, device=weights.device)
    full = torch.nn.functional.conv_transpose2d(weights.unsqueeze(1), ones, stride=(jh, jw))[:, 0]
    # pixel y is full-output row y + P: pad with uncovered (zero) rows before the full output
    # where P < 0 and after it where it ends before the frame does, then crop
    top, left = max(-ph, 0), max(-pw, 0)
    y0, x0 = ph + top, pw + left
    bottom = max(y0 + H0 - (full.shape[1] + top), 0)
    right = max(x0 + W0 - (full.shape[2] + left), 0)
    full = torch.nn.functional.pad(full, (left, right, top, bottom))
    return full[:, y0:y0 + H0, x0:x0 + W0]


def sista(x, A, lambda1, lambda2, gamma, S, alpha0, K, mode="signed", dtype=torch.float64):
    """Luo et al.'s Algorithm 1 line by line (see vadx.ops.sista): a loop over frames and ISTA
    steps, differentiable by autograd in every tensor input. Computes in ``dtype``; ``dtype=None``
    keeps x's dtype (the plain-PyTorch baseline of the benchmarks)."""
    if mode not in ("signed", "nonneg"):
        raise ValueError(f"mode must be 'signed' or 'nonneg', got {mode!r}")
    dt = x.dtype if dtype is None else dtype

    def cast(v):
        return v.to(dt) if isinstance(v, Tensor) else torch.tensor(float(v), dtype=dt, device=x.device)

    out_dtype = x.dtype
    x, A, S, l1, l2, g = cast(x), cast(A), cast(S), cast(lambda1), cast(lambda2), cast(gamma)
    B, T, _ = x.shape
    n = A.shape[1]
    AtA = A.T @ A
    alpha = cast(alpha0).expand(B, n)
    codes = []
    for t in range(T):
        s = S[:, t, None]
        Atx = x[:, t] @ A  # A^T x_t, as rows
        a = alpha
        for _ in range(K):
            z = a - (a @ AtA + s * l2 * a) / g + Atx / g  # line 4 (AtA is symmetric)
            z = z + s * l2 * alpha / g
            b = l1 / g
            a = torch.sign(z) * torch.relu(z.abs() - b) if mode == "signed" else torch.relu(z - b)
        alpha = a
        codes.append(a)
    out = torch.stack(codes, dim=1) if codes else x.new_zeros(B, 0, n)
    return out.to(out_dtype)
