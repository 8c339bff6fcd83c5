"""Shared pieces of the two coders: feature sequences for training, dictionary initialisation,
the Gaussian similarity (eq. 10) and the ISTA step bound."""

from __future__ import annotations

import torch
from torch import Tensor


def gaussian_similarity(x: Tensor, prev: Tensor | None, delta2: float) -> Tensor:
    """``S[b, t] = exp(-||x[b, t] - x[b, t-1]||^2 / delta2)`` (eq. 10) for ``x`` ``[B, T, d]``;
    ``prev`` ``[B, d]`` is the frame before ``x[:, 0]`` (None at the start of a video: S = 0, so
    the first frame is not tied to the initial codes)."""
    first = (torch.zeros(x.shape[0], 1, dtype=x.dtype, device=x.device) if prev is None else
             torch.exp(-(x[:, :1] - prev[:, None]).square().sum(-1) / delta2))
    rest = torch.exp(-(x[:, 1:] - x[:, :-1]).square().sum(-1) / delta2)
    return torch.cat([first, rest], dim=1)


def spectral_norm_sq(A: Tensor) -> float:
    """``||A||_2^2``, the Lipschitz constant of ``a -> A^T A a`` (ISTA needs gamma above it)."""
    return float(torch.linalg.matrix_norm(A.detach().double(), ord=2) ** 2)


def init_dictionary(feats: list[Tensor], n_atoms: int, generator: torch.Generator) -> Tensor:
    """``[d, n_atoms]`` columns = randomly drawn training patch features, unit norm (the usual
    data-driven initialisation of dictionary learning; the paper does not give one)."""
    counts = torch.tensor([f.shape[0] * f.shape[1] for f in feats])
    total = int(counts.sum())
    pick = torch.randint(total, (n_atoms,), generator=generator)
    flat = torch.cat([f.reshape(-1, f.shape[-1]) for f in feats])
    cols = flat[pick.to(flat.device)].T.float().contiguous()  # feats may be stored as float16
    noise = torch.randn(cols.shape, generator=generator).to(cols.device) * 1e-3  # break ties between equal picks
    cols = cols + noise * cols.norm(dim=0, keepdim=True).clamp_min(1.0)
    return cols / cols.norm(dim=0, keepdim=True).clamp_min(1e-12)


class SequenceSampler:
    """Random training batches ``[batch * 21, T, d]``: ``batch`` windows of ``T`` consecutive
    frames, each from a random training video (videos drawn in proportion to their usable windows),
    each window's 21 patches as independent sequences (coherence links the same scale and region
    only). Videos shorter than ``T`` frames are skipped (a batch needs equal lengths); at least one
    must have ``T`` frames."""

    def __init__(self, feats: list[Tensor], T: int, batch: int, generator: torch.Generator):
        self.feats = [f for f in feats if f.shape[0] >= T]
        if not self.feats:
            longest = max(f.shape[0] for f in feats)
            raise ValueError(f"sequence_length must be at most the longest training video "
                             f"({longest} frames), got {T}")
        self.windows = torch.tensor([f.shape[0] - T + 1 for f in self.feats], dtype=torch.float64)
        self.T, self.batch, self.g = T, batch, generator

    def __call__(self) -> Tensor:
        vids = torch.multinomial(self.windows, self.batch, replacement=True, generator=self.g)
        out = []
        for v in vids.tolist():
            start = int(torch.randint(int(self.windows[v]), (1,), generator=self.g))
            out.append(self.feats[v][start:start + self.T].transpose(0, 1))  # [21, T, d]
        return torch.cat(out).float()
