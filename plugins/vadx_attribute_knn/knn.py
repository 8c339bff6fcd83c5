"""k-nearest-neighbour density scores and the greedy coreset that bounds the exemplar bank.

:func:`knn_mean_distance` never forms the full query x bank distance matrix: it walks the bank in
column chunks, gets squared distances from one GEMM per chunk (``|q|^2 - 2 q.b + |b|^2``) and keeps
a running top-k, so memory is ``queries x (chunk + k)`` whatever the bank size
(bench/test_attribute_knn.py times it against ``torch.cdist`` + ``topk`` at 50,000 exemplars).
"""

from __future__ import annotations

import torch
from torch import Tensor


def knn_mean_distance(queries: Tensor, bank: Tensor, k: int, *, chunk: int = 8192,
                      query_groups: Tensor | None = None, bank_groups: Tensor | None = None,
                      query_chunk: int = 1024) -> Tensor:
    """Mean Euclidean distance from each query to its ``k`` nearest bank rows: float32 ``[n]``.

    Args:
        queries: ``[n, d]``; bank: ``[m, d]``.
        k: neighbours averaged (at most ``m``; fewer reachable ones are averaged as they are).
        chunk: bank rows per GEMM.
        query_groups, bank_groups: int ``[n]`` and ``[m]``: a query never matches a bank row of its
            own group (leave-one-video-out scores of the training objects).
        query_chunk: queries per pass (bounds memory when fitting scores every training object;
            a frame's few objects are always one pass, so its scores never depend on others).
    """
    n, m = queries.shape[0], bank.shape[0]
    if n > query_chunk:
        return torch.cat([knn_mean_distance(
            queries[a:a + query_chunk], bank, k, chunk=chunk, query_chunk=query_chunk,
            query_groups=None if query_groups is None else query_groups[a:a + query_chunk],
            bank_groups=bank_groups) for a in range(0, n, query_chunk)])
    if n == 0:
        return torch.zeros(0, device=queries.device)
    if m == 0:
        raise ValueError("knn_mean_distance: the bank is empty")
    k = min(k, m)
    q = queries.float()
    q2 = q.square().sum(1, keepdim=True)
    best = torch.full((n, k), float("inf"), device=q.device)
    for a in range(0, m, chunk):
        b = bank[a:a + chunk].float()
        d = (q2 - 2.0 * (q @ b.T) + b.square().sum(1)).clamp_min_(0)
        if query_groups is not None:
            d.masked_fill_(query_groups.view(-1, 1) == bank_groups[a:a + chunk].view(1, -1), float("inf"))
        best = torch.cat([best, d], 1).topk(k, dim=1, largest=False, sorted=False).values
    # sorted before summing: the same k values give the same mean bits whatever order topk left
    best = best.sort(dim=1).values
    finite = torch.isfinite(best)
    dist = best.clamp_min(0).sqrt().where(finite, torch.zeros_like(best))
    return dist.sum(1) / finite.sum(1).clamp_min(1)


def greedy_coreset(x: Tensor, size: int, *, dims: int = 128,
                   generator: torch.Generator | None = None) -> Tensor:
    """Indices of ``size`` rows of ``x`` chosen by greedy k-center selection (each pick is the row
    farthest from those picked so far), on a random Gaussian projection to ``dims`` dimensions
    (PatchCore's speed-up: distances are nearly preserved, the cost drops by d / dims).
    Returns int64 ``[min(size, n)]``, all rows when ``n <= size``."""
    n = x.shape[0]
    if size >= n:
        return torch.arange(n)
    x = x.float()
    if x.shape[1] > dims:
        proj = torch.randn(x.shape[1], dims, generator=generator) / dims ** 0.5
        x = x @ proj.to(x.device)
    start = int(torch.randint(n, (1,), generator=generator))
    chosen = torch.empty(size, dtype=torch.long)
    nearest = torch.full((n,), float("inf"), device=x.device)
    idx = start
    for i in range(size):
        chosen[i] = idx
        nearest = torch.minimum(nearest, (x - x[idx]).square().sum(1))
        idx = int(nearest.argmax())
    return chosen
