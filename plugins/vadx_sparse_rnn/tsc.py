"""TSC (Luo et al. §3.2): temporally-coherent sparse coding with a learned dictionary."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vadx.ops import sista, tsc_dictionary_step
from vadx_sparse_rnn.coding import SequenceSampler, gaussian_similarity, init_dictionary, spectral_norm_sq


class TSCCoder(nn.Module):
    """One stream's TSC model: dictionary ``A`` ``[d, n]`` and the fixed ``lambda1``, ``lambda2``,
    ``gamma``, ``delta2`` (buffers, saved with the model)."""

    def __init__(self, d: int, n: int, *, lambda1: float, lambda2: float, delta2: float, K: int,
                 mode: str):
        super().__init__()
        self.register_buffer("A", torch.zeros(d, n))
        self.register_buffer("gamma", torch.tensor(1.0))
        self.lambda1, self.lambda2, self.delta2, self.K, self.mode = lambda1, lambda2, delta2, K, mode

    def similarity(self, x: Tensor, prev: Tensor | None) -> Tensor:
        return gaussian_similarity(x, prev, self.delta2)

    def initial_codes(self, B: int) -> Tensor:
        return torch.zeros(B, self.A.shape[1], device=self.A.device)

    def codes(self, x: Tensor, S: Tensor, alpha0: Tensor) -> Tensor:
        return sista(x, self.A, self.lambda1, self.lambda2, self.gamma, S, alpha0, self.K, self.mode)

    def reconstruct(self, codes: Tensor) -> Tensor:
        return codes @ self.A.T

    @torch.no_grad()
    def fit(self, feats: list[Tensor], *, T: int, batch: int, iterations: int, gamma: float | None,
            generator: torch.Generator, bar=None) -> list[float]:
        """Alternate SISTA codes (A fixed) and one projected gradient step on A (codes fixed, eq. 3,
        step = 1 / the Lipschitz constant of the batch's dictionary objective). ``gamma=None``:
        gamma follows the ISTA bound ``||A||_2^2 + lambda2`` (S <= 1) of the current dictionary
        and is frozen with it at the end. Returns the per-iteration mean reconstruction error
        ``||x_t - A alpha_t||^2`` of the batch (before the dictionary step); ``bar`` (a
        :class:`vadx.progress.Bar` or None) advances once per iteration with it."""
        A = init_dictionary(feats, self.A.shape[1], generator)
        sample = SequenceSampler(feats, T, batch, generator)
        zeros = torch.zeros(A.shape[1], dtype=A.dtype, device=A.device)
        losses = []
        for _ in range(iterations):
            g = gamma if gamma is not None else spectral_norm_sq(A) + self.lambda2
            x = sample()
            S = gaussian_similarity(x, None, self.delta2)
            codes = sista(x, A, self.lambda1, self.lambda2, g, S, zeros, self.K, self.mode)
            err = (x - codes @ A.T).square().sum(-1).mean()
            flat = codes.reshape(-1, codes.shape[-1])
            lip = 2 * float(torch.linalg.matrix_norm(flat.double(), ord=2) ** 2) / flat.shape[0]
            if lip > 0:  # all-zero codes: lambda1 too large for these features; nothing to learn
                A = tsc_dictionary_step(A, x, codes, 1.0 / lip)
            losses.append(float(err))
            if bar is not None:
                bar.update(1, loss=losses[-1])
        self.A.copy_(A)
        self.gamma.fill_(gamma if gamma is not None else spectral_norm_sq(A) + self.lambda2)
        return losses
