"""Sabokrou et al.'s two Gaussian classifiers (§3.2): fit_gaussian and the fused
torch.ops.vadx.mahalanobis_cascade."""

from __future__ import annotations

import torch
from torch import Tensor

from vadx.ops._checks import check_same_device, real_scalar

__all__ = ["fit_gaussian", "mahalanobis_cascade"]


def mahalanobis_cascade(
    feats: Tensor,
    mu1: Tensor,
    w1: Tensor,
    beta: float,
    alpha: float,
    ct_weight: Tensor,
    ct_bias: Tensor,
    mu2: Tensor,
    w2: Tensor,
    phi: float,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Label every position of a feature map with a two-stage Gaussian cascade.

    For each position ``x`` (the ``m`` channels of ``feats[b, :, i, j]``)::

        d1 = ||W1 (x - mu1)||                         Mahalanobis distance to G1
        label = 0                       if d1 <= beta           normal
        label = 1                       if d1 >= alpha          anomalous (also d1 NaN/inf)
        otherwise (suspicious):
            z  = sigmoid(ct_weight @ x + ct_bias)     the CT layer (a learned 1x1 conv)
            d2 = ||W2 (z - mu2)||                     Mahalanobis distance to G2
            label = 2 if d2 >= phi (or NaN) else 3    anomalous / normal by G2

    Fused: positions are whitened tile by tile straight from the NCHW map (no ``[B, H, W, m]``
    copy, no whitened map in memory) and the CT layer and G2 run only on suspicious positions, so
    stage 2 costs in proportion to their number.

    Args:
        feats: ``[B, m, H, W]`` feature map (e.g. AlexNet conv2 output), float32 or float64 (CUDA
            also float16/bfloat16). May be non-contiguous (e.g. a channel slice). Positions with
            NaN/inf features get ``d1`` NaN or inf and label 1; nothing crashes.
        mu1, w1: G1 as returned by :func:`fit_gaussian`: mean ``[m]`` and whitening matrix
            ``[m, m]`` (inverse Cholesky factor of the covariance).
        beta, alpha: G1 thresholds, ``beta <= alpha`` (``beta == alpha``: no suspicious positions).
        ct_weight, ct_bias: the CT layer, ``[h, m]`` (a ``[h, m, 1, 1]`` conv weight is accepted)
            and ``[h]``.
        mu2, w2: G2, ``[h]`` and ``[h, h]``.
        phi: G2 threshold.

    Returns:
        ``(d1, d2, label)``: ``d1`` and ``d2`` ``[B, H, W]`` in feats' dtype (``d2`` is NaN where
        stage 2 did not run), ``label`` ``[B, H, W]`` uint8 as above.

    Raises:
        ValueError / TypeError: mismatched shapes (naming ``m`` and ``h``) or dtypes, a parameter
        on another device than feats (ValueError naming it, the expected and the actual device),
        or ``beta > alpha``.
    """
    if not isinstance(feats, Tensor):
        raise TypeError(f"mahalanobis_cascade: feats must be a torch.Tensor, got {type(feats).__name__}")
    check_same_device("mahalanobis_cascade", "feats", feats, mu1=mu1, w1=w1, ct_weight=ct_weight,
                      ct_bias=ct_bias, mu2=mu2, w2=w2)
    if isinstance(ct_weight, Tensor) and ct_weight.dim() == 4 and ct_weight.shape[2:] == (1, 1):
        ct_weight = ct_weight.flatten(1)
    beta, alpha, phi = (real_scalar("mahalanobis_cascade", name, v)
                        for name, v in (("beta", beta), ("alpha", alpha), ("phi", phi)))
    return torch.ops.vadx.mahalanobis_cascade(feats, mu1, w1, beta, alpha, ct_weight, ct_bias, mu2, w2, phi)


def fit_gaussian(x: Tensor, shrinkage: float | None = None) -> tuple[Tensor, Tensor]:
    r"""Fit a Gaussian to samples and return what the Mahalanobis distance needs.

    The covariance is regularised so the fit never fails on degenerate data (fewer samples than
    dimensions, constant channels — common in real conv features)::

        S      = empirical covariance (maximum likelihood, divided by N)
        Sigma  = (1 - s) S + s (tr(S) / m) I          shrinkage towards a scaled identity
        Sigma += 1e-9 (tr(S) / m, or 1 if that is 0) I   a last floor for exactly singular S

    with ``s`` from the Ledoit-Wolf formula (``shrinkage=None``, the same estimate as
    scikit-learn's ``LedoitWolf``) or given. Computed in float64 whatever x's dtype; the results
    are returned in x's dtype, and a result that does not fit it (float16 whitening matrices of
    low-variance features overflow 65504) raises a ValueError instead of returning inf.

    Args:
        x: ``[N, m]`` samples (N >= 1), finite.
        shrinkage: ``None`` for Ledoit-Wolf, or a fixed ``s`` in [0, 1].

    Returns:
        ``(mu, w)``: mean ``[m]`` and ``w`` ``[m, m]`` = ``L^-1`` where ``Sigma = L L^T``
        (Cholesky), so ``||w (v - mu)||`` is the Mahalanobis distance of ``v``; in x's dtype.
    """
    if not isinstance(x, Tensor) or x.dim() != 2 or not x.is_floating_point():
        got = f"{x.dim()}-D {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"fit_gaussian: x must be a floating-point [N, m] tensor, got {got}")
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"fit_gaussian: x must be float16, bfloat16, float32 or float64, got {x.dtype}")
    if x.device.type == "meta":  # the fit reads the values (the shrinkage, the Cholesky factor)
        raise ValueError("fit_gaussian: x must hold values (a CPU or CUDA tensor), got a meta tensor")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"fit_gaussian: x must have N >= 1 samples of m >= 1 dims, got {tuple(x.shape)}")
    if shrinkage is not None and not 0.0 <= real_scalar("fit_gaussian", "shrinkage", shrinkage) <= 1.0:
        raise ValueError(f"fit_gaussian: shrinkage must be None or in [0, 1], got {shrinkage!r}")
    xd = x.detach().double()
    if not torch.isfinite(xd).all():
        bad = int((~torch.isfinite(xd).all(dim=1)).sum())
        raise ValueError(f"fit_gaussian: x has {bad} rows with NaN/inf values; drop them first")
    n, m = xd.shape
    mu = xd.mean(dim=0)
    xc = xd - mu
    emp = xc.T @ xc / n
    if not torch.isfinite(emp).all():  # finite x whose squares overflow float64 (|x| ~ 1e154+)
        raise ValueError(f"fit_gaussian: x's covariance overflows float64 (largest |x - mean| "
                         f"{float(xc.abs().max()):.3g}); scale x down first")
    scale = torch.trace(emp) / m
    s = _ledoit_wolf_shrinkage(xc, scale) if shrinkage is None else float(shrinkage)
    eye = torch.eye(m, dtype=torch.float64, device=xd.device)
    sigma = (1.0 - s) * emp + s * scale * eye
    sigma += 1e-9 * (float(scale) if scale > 0 else 1.0) * eye
    chol, info = torch.linalg.cholesky_ex(sigma)
    if int(info) != 0:  # not reachable with the floor above, but never return garbage
        raise RuntimeError(f"fit_gaussian: covariance is not positive definite (minor {int(info)})")
    w = torch.linalg.solve_triangular(chol, eye, upper=False)
    mu_out, w_out = mu.to(x.dtype), w.to(x.dtype)
    if not (torch.isfinite(mu_out).all() and torch.isfinite(w_out).all()):
        # float16/bfloat16: the whitening matrix scales like 1/std and overflows the format for
        # features of small spread (float16's max is 65504); never return inf silently.
        big = max(float(mu.abs().max()), float(w.abs().max()))
        raise ValueError(
            f"fit_gaussian: the fitted mean/whitening matrix does not fit x's dtype {x.dtype} "
            f"(largest magnitude {big:.3g}, {x.dtype} max {torch.finfo(x.dtype).max:.6g}); "
            f"pass x as float32 or float64 (e.g. x.float())"
        )
    return mu_out, w_out


def _ledoit_wolf_shrinkage(xc: Tensor, scale: Tensor) -> float:
    """Ledoit & Wolf (2004) optimal shrinkage of the covariance of centred samples xc [N, m]."""
    n, m = xc.shape
    x2 = xc * xc
    beta = ((x2.T @ x2).sum() / n - ((xc.T @ xc) ** 2).sum() / n**2) / (m * n)
    delta = (((xc.T @ xc) / n - scale * torch.eye(m, dtype=xc.dtype, device=xc.device)) ** 2).sum() / m
    beta = torch.minimum(beta, delta)
    # delta = 0: the covariance already is the scaled identity (always for m = 1), nothing to
    # shrink (scikit-learn's 0.0); rounding can leave beta slightly negative, which used to make
    # -beta / 0 = -inf and a NaN covariance ("not positive definite").
    if float(delta) <= 0.0 or float(beta) <= 0.0:
        return 0.0
    return min(float(beta / delta), 1.0)
