"""The CT layer (paper §3.4): a 1x1 convolution with h sigmoid units whose kernels are the encoder
of a sparse auto-encoder trained on normal region features.

The paper names the model (sparse auto-encoder, h = 500 hidden units) but none of its training
settings; these follow the standard formulation (Ng, "Sparse autoencoder", CS294A notes):

    z  = sigmoid(W x~ + b)                     encoder = the CT layer
    x^ = V z + c                               linear decoder (x~ is real-valued, not in [0, 1])
    J  = mean ||x^ - x~||^2 / 2 + (lambda / 2)(||W||^2 + ||V||^2) + beta_s sum_j KL(rho || rho^_j)

with rho^_j the mean activation of unit j over the mini-batch, rho = 0.05, beta_s = 3,
lambda = 1e-4 (the notes' defaults), Adam (lr 1e-3), mini-batches of 256.

The auto-encoder sees standardised features x~ = (x - mean) / std (per channel, over the
training regions; std floored at 1e-3 of its mean, for dead channels), because raw conv
features span very different ranges per channel and would saturate the sigmoids. The
standardisation is folded into the returned CT weights (W / std, b - W mean / std), so the CT
layer takes raw features, as ``vadx.ops.mahalanobis_cascade`` applies it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

import vadx.progress


def kl_sparsity(rho: float, rho_hat: Tensor) -> Tensor:
    """sum_j KL(rho || rho_hat_j) between Bernoulli distributions."""
    rho_hat = rho_hat.clamp(1e-6, 1 - 1e-6)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


def train_sparse_ae(x: Tensor, hidden: int, *, epochs: int, rho: float, sparsity_weight: float,
                    weight_decay: float, lr: float = 1e-3, batch_size: int = 256, seed: int = 0,
                    progress: bool = True) -> tuple[Tensor, Tensor, list[float]]:
    """Train the sparse auto-encoder on ``x`` ``[N, m]`` (raw features); ``progress`` shows a
    bar (:func:`vadx.progress.bar`) with the epoch's mean loss so far.

    Returns:
        ``(ct_weight [h, m], ct_bias [h], losses)``: the CT layer acting on raw features, and the
        mean loss of each epoch.
    """
    x = x.detach().float()
    n, m = x.shape
    mean = x.mean(0)
    std = x.std(0, unbiased=False)
    std = std.clamp_min(1e-3 * float(std.mean().clamp_min(1e-12)))
    xs = (x - mean) / std
    g = torch.Generator().manual_seed(seed)
    enc, dec = nn.Linear(m, hidden), nn.Linear(hidden, m)
    with torch.no_grad():  # seeded init (nn.Linear's default, drawn from our generator)
        for lin in (enc, dec):
            bound = 1 / math.sqrt(lin.in_features)
            lin.weight.copy_(torch.empty_like(lin.weight).uniform_(-bound, bound, generator=g))
            lin.bias.copy_(torch.empty_like(lin.bias).uniform_(-bound, bound, generator=g))
    enc, dec = enc.to(x.device), dec.to(x.device)
    xs = xs.to(x.device)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=lr)
    steps = max(1, math.ceil(n / batch_size))
    losses: list[float] = []
    bar = vadx.progress.bar(epochs * steps, "fcn-cascade sparse auto-encoder", "step", show=progress)
    with torch.enable_grad(), bar:
        for _ in range(epochs):
            order = torch.randperm(n, generator=g).to(x.device)
            total, seen = 0.0, 0
            for s in range(steps):
                xb = xs[order[s * batch_size:(s + 1) * batch_size]]
                z = torch.sigmoid(enc(xb))
                rec = 0.5 * (dec(z) - xb).pow(2).sum(1).mean()
                decay = 0.5 * weight_decay * (enc.weight.pow(2).sum() + dec.weight.pow(2).sum())
                loss = rec + decay + sparsity_weight * kl_sparsity(rho, z.mean(0))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * xb.shape[0]
                seen += xb.shape[0]
                bar.update(1, loss=total / seen)
            losses.append(total / n)
    w = enc.weight.detach() / std  # fold the standardisation in: W x~ + b = (W/std) x + b'
    b = enc.bias.detach() - (w * mean).sum(1)
    return w.contiguous(), b.contiguous(), losses
