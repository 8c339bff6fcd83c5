"""sRNN-AE (Luo et al. §3.4-3.5): the K-layer sRNN (SISTA unrolled) with a linear decoder, all
parameters and a learned similarity trained end to end."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vadx.ops import sista
from vadx_sparse_rnn.coding import SequenceSampler, init_dictionary, spectral_norm_sq


class SRNNAECoder(nn.Module):
    """One stream's sRNN-AE: theta = {A, lambda1, lambda2, gamma, alpha0, Z} and the similarity
    network phi (eq. 11): ``Linear(d, 512) - ReLU - Linear(512, 512) - ReLU``, L2-normalised, so
    ``S = phi(x_t)^T phi(x_{t-1})`` lies in [0, 1] as the paper states (a final ReLU is what makes
    the dot product of unit vectors non-negative)."""

    def __init__(self, d: int, n: int, *, K: int, mode: str, hidden: int = 512):
        super().__init__()
        self.A = nn.Parameter(torch.zeros(d, n))
        self.Z = nn.Parameter(torch.zeros(d, n))
        self.lambda1 = nn.Parameter(torch.tensor(0.0))
        self.lambda2 = nn.Parameter(torch.tensor(0.0))
        self.gamma = nn.Parameter(torch.tensor(1.0))
        self.alpha0 = nn.Parameter(torch.zeros(n))
        self.phi = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.K, self.mode = K, mode

    def embed(self, x: Tensor) -> Tensor:
        return F.normalize(self.phi(x), dim=-1)

    def similarity(self, x: Tensor, prev: Tensor | None) -> Tensor:
        """``[B, T]`` for ``x`` ``[B, T, d]``; ``S[:, 0] = 0`` at the start of a video (``prev``
        None), else the similarity to ``prev`` ``[B, d]``."""
        e = self.embed(x)
        first = (torch.zeros_like(e[:, :1, 0]) if prev is None else
                 (e[:, :1] * self.embed(prev)[:, None]).sum(-1))
        return torch.cat([first, (e[:, 1:] * e[:, :-1]).sum(-1)], dim=1)

    def initial_codes(self, B: int) -> Tensor:
        return self.alpha0.expand(B, -1)

    def codes(self, x: Tensor, S: Tensor, alpha0: Tensor) -> Tensor:
        return sista(x, self.A, self.lambda1, self.lambda2, self.gamma, S, alpha0, self.K, self.mode)

    def reconstruct(self, codes: Tensor) -> Tensor:
        return codes @ self.Z.T

    def fit(self, feats: list[Tensor], *, T: int, batch: int, iterations: int, lr: float,
            weight_decay: float, lambda1: float, lambda2: float, generator: torch.Generator,
            bar=None, sista_fn=None) -> list[float]:
        """RMSProp on eq. 9. Returns the per-iteration reconstruction loss (eq. 9 without the
        weight decay, averaged over the batch's sequences). ``sista_fn`` replaces
        :func:`vadx.ops.sista` (the benchmark's plain-PyTorch reference comparison); ``bar`` (a
        :class:`vadx.progress.Bar` or None) advances once per iteration with the loss."""
        sista_fn = sista_fn or sista
        A = init_dictionary(feats, self.A.shape[1], generator)
        with torch.no_grad():
            self.A.copy_(A)
            self.Z.copy_(A)  # start as the dictionary's own reconstruction, x_hat = A h
            self.lambda1.fill_(lambda1)
            self.lambda2.fill_(lambda2)
            self.gamma.fill_(spectral_norm_sq(A) + lambda2)  # the ISTA bound (S <= 1)
            self.alpha0.zero_()
            for m in self.phi:
                if isinstance(m, nn.Linear):  # seeded like everything else
                    bound = 1.0 / m.in_features ** 0.5
                    m.weight.copy_(torch.rand(m.weight.shape, generator=generator) * 2 * bound - bound)
                    m.bias.copy_(torch.rand(m.bias.shape, generator=generator) * 2 * bound - bound)
        decayed = [self.A, self.Z, self.alpha0, *self.phi.parameters()]
        # TensorFlow's RMSProp (the paper's framework): decay 0.9, epsilon 1e-10
        opt = torch.optim.RMSprop(self.parameters(), lr=lr, alpha=0.9, eps=1e-10)
        sample = SequenceSampler(feats, T, batch, generator)
        losses = []
        for _ in range(iterations):
            x = sample()
            S = self.similarity(x, None)
            codes = sista_fn(x, self.A, self.lambda1, self.lambda2, self.gamma, S,
                             self.alpha0.expand(x.shape[0], -1), self.K, self.mode)
            rec = (x - self.reconstruct(codes)).square().sum(dim=(1, 2)).mean()
            loss = rec + weight_decay * sum(p.square().sum() for p in decayed)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():  # keep the recurrence well defined: sparsity and coupling
                self.lambda1.clamp_(min=0.0)  # weights >= 0, a positive step parameter
                self.lambda2.clamp_(min=0.0)
                self.gamma.clamp_(min=1e-3)
            losses.append(rec.item() / T)
            if bar is not None:
                bar.update(1, loss=losses[-1])
        return losses
