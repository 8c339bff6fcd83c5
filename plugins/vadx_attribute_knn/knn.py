"""k-nearest-neighbour density scores and the greedy coreset that bounds the exemplar bank.

:func:`knn_mean_distance` never forms the full query x bank distance matrix, and a query's result
never depends on which other queries share the call (so a detector may search a whole chunk's
objects at once and still stream exactly as it scores offline):

- low-dimensional attributes (``d <= exact_dims``, velocity): squared distances to every bank
  row from elementwise differences and a fixed-order sum, on cache-sized planes of query block x
  bank chunk (the bank transposed: one contiguous plane per dimension), top-``k`` per chunk;
- the others (appearance): one GEMM per bank chunk (``|q|^2 - 2 q.b + |b|^2``, whose rounding
  depends on the GEMM's shape) keeps a running top-``candidates``; those candidates' distances are
  recomputed the fixed-order way and the ``k`` smallest kept. A rounding bound on the GEMM's
  error proves the candidates hold the exact ``k`` nearest; a query where it cannot (near-ties
  beyond the candidates) is searched the low-dimensional way over the whole bank.

bench/test_attribute_knn.py times it against ``torch.cdist`` + ``topk`` at 50,000 exemplars.
"""

from __future__ import annotations

import torch
from torch import Tensor

_EPS32 = float(torch.finfo(torch.float32).eps) / 2  # unit roundoff of float32


def _fixed_sum(x: Tensor) -> Tensor:
    """Sum over the last dimension in a fixed pairwise order, by elementwise adds only: a row's
    bits never depend on the other rows, the batch or the thread count (a reduction kernel's
    vectorisation and splitting may)."""
    while x.shape[-1] > 1:
        h = x.shape[-1] // 2
        y = x[..., :h] + x[..., h:2 * h]
        x = torch.cat([y, x[..., 2 * h:]], -1) if x.shape[-1] % 2 else y
    return x[..., 0]


def _squared(q: Tensor, rows: Tensor) -> Tensor:
    """Squared distances, fixed-order: ``q [n, d]`` to ``rows [n, c, d]`` or ``[c, d]``: ``[n, c]``."""
    return _fixed_sum((q.unsqueeze(1) - rows).square())


def _pairwise_tree(d: int):
    """The order in which :func:`_fixed_sum` adds ``d`` terms, as nested pairs of indices."""
    t: list = list(range(d))
    while len(t) > 1:
        h = len(t) // 2
        t = [(t[i], t[h + i]) for i in range(h)] + t[2 * h:]
    return t[0]


def _squared_columns(q: Tensor, bank_t: Tensor, tree) -> Tensor:
    """:func:`_squared` of ``q [n, d]`` to every row of a bank given transposed (``bank_t
    [d, c]``): the same elementwise operations in the same pairwise order as :func:`_fixed_sum`
    (``tree``: :func:`_pairwise_tree`), so the same bits, but each on a contiguous ``[n, c]``
    plane (depth first: a few planes live at once) instead of strided slices of an ``[n, c, d]``
    block."""
    if isinstance(tree, int):
        return (q[:, tree:tree + 1] - bank_t[tree]).square_()
    return _squared_columns(q, bank_t, tree[0]).add_(_squared_columns(q, bank_t, tree[1]))


# up to this many dimensions the exact search uses transposed-bank planes (Python-level
# operations per dimension and plane); above it [n, m, d] blocks (few queries reach it: near-ties)
_COLUMN_DIMS = 64


def _exact_smallest(q: Tensor, bank: Tensor, k: int, q_groups: Tensor | None,
                    b_groups: Tensor | None, budget: int = 1 << 22, plane: int = 1 << 17,
                    block: int = 32) -> Tensor:
    """The ``k`` smallest fixed-order squared distances of each query to the whole bank: ``[n, k]``
    (inf where fewer bank rows are reachable). Up to :data:`_COLUMN_DIMS` dimensions: ``block``
    queries at a time against bank chunks of ``plane / block`` rows (a plane stays in cache), the
    ``k`` smallest of each chunk kept, then of those (values, so equal whatever the chunking);
    above: query blocks of about ``budget`` elements against the whole bank."""
    n, m, d = q.shape[0], bank.shape[0], bank.shape[1]
    out = []
    if d <= _COLUMN_DIMS:
        bank_t, tree, c = bank.T.contiguous(), _pairwise_tree(d), max(k, plane // block)
        for a in range(0, n, block):
            qa, best = q[a:a + block], []
            for b in range(0, m, c):
                dist = _squared_columns(qa, bank_t[:, b:b + c], tree)
                if q_groups is not None:
                    dist.masked_fill_(q_groups[a:a + block].view(-1, 1) == b_groups[b:b + c].view(1, -1),
                                      float("inf"))
                best.append(dist.topk(min(k, dist.shape[1]), dim=1, largest=False, sorted=False).values)
            best = torch.cat(best, 1)
            out.append(best.topk(k, dim=1, largest=False, sorted=False).values if best.shape[1] > k else best)
        return torch.cat(out)
    step = max(1, budget // max(1, m * d))
    for a in range(0, n, step):
        dist = _squared(q[a:a + step], bank)
        if q_groups is not None:
            dist.masked_fill_(q_groups[a:a + step].view(-1, 1) == b_groups.view(1, -1), float("inf"))
        out.append(dist.topk(k, dim=1, largest=False, sorted=False).values)
    return torch.cat(out)


def _mean_distance(best: Tensor) -> Tensor:
    """Mean of the square roots of each row's finite values (sorted first, then added column by
    column: the same values give the same bits in any order, batch or thread count)."""
    best = best.sort(dim=1).values
    finite = torch.isfinite(best)
    dist = best.clamp_min(0).sqrt().where(finite, torch.zeros_like(best))
    total = dist[:, 0].clone()
    for j in range(1, dist.shape[1]):
        total = total + dist[:, j]
    return total / finite.sum(1).clamp_min(1).to(total.dtype)


def knn_mean_distance(queries: Tensor, bank: Tensor, k: int, *, chunk: int = 8192,
                      query_groups: Tensor | None = None, bank_groups: Tensor | None = None,
                      query_chunk: int = 1024, candidates: int = 32, exact_dims: int = 16) -> Tensor:
    """Mean Euclidean distance from each query to its ``k`` nearest bank rows: float32 ``[n]``.
    Each query's value is independent of the others in the call (see the module docstring).

    Args:
        queries: ``[n, d]``; bank: ``[m, d]`` (contiguous float32 is the GEMM's layout: no copy).
        k: neighbours averaged (at most ``m``; fewer reachable ones are averaged as they are).
        chunk: bank rows per GEMM.
        query_groups, bank_groups: int ``[n]`` and ``[m]``: a query never matches a bank row of its
            own group (leave-one-video-out scores of the training objects).
        query_chunk: queries per pass (bounds memory).
        candidates: nearest rows by the GEMM's distances re-measured exactly (at least ``k``).
        exact_dims: up to this dimension every bank row is measured exactly (no GEMM).
    """
    n, m = queries.shape[0], bank.shape[0]
    if n == 0:
        return torch.zeros(0, device=queries.device)
    if m == 0:
        raise ValueError("knn_mean_distance: the bank is empty")
    k = min(k, m)
    if n > query_chunk:
        return torch.cat([knn_mean_distance(
            queries[a:a + query_chunk], bank, k, chunk=chunk, query_chunk=query_chunk,
            query_groups=None if query_groups is None else query_groups[a:a + query_chunk],
            bank_groups=bank_groups, candidates=candidates, exact_dims=exact_dims)
            for a in range(0, n, query_chunk)])
    q = queries.float()
    bank = bank.float()
    c = min(max(candidates, k), m)
    if bank.shape[1] <= exact_dims or c == m:
        return _mean_distance(_exact_smallest(q, bank, k, query_groups, bank_groups))
    # candidates by GEMM: running top-c of the expanded squared distances
    q2 = q.square().sum(1, keepdim=True)
    approx = torch.full((n, c), float("inf"), device=q.device)
    index = torch.zeros((n, c), dtype=torch.long, device=q.device)
    bank_norm = bank.square().sum(1)
    for a in range(0, m, chunk):
        b = bank[a:a + chunk]
        d = (q2 - 2.0 * (q @ b.T) + bank_norm[a:a + chunk]).clamp_min_(0)
        if query_groups is not None:
            d.masked_fill_(query_groups.view(-1, 1) == bank_groups[a:a + chunk].view(1, -1), float("inf"))
        top = torch.cat([approx, d], 1).topk(c, dim=1, largest=False, sorted=False)
        index = torch.cat([index, torch.arange(a, a + b.shape[0], device=q.device).expand(n, -1)],
                          1).gather(1, top.indices)
        approx = top.values
    approx, order = approx.sort(dim=1)
    index = index.gather(1, order)
    # |GEMM - fixed-order| squared distance <= 2 gamma_(d+3) (|q| + |b|)^2 (Higham's dot-product
    # bound for both computations), with the bank's largest norm; 1 % slack
    d_dim = bank.shape[1] + 3
    gamma = d_dim * _EPS32 / (1 - d_dim * _EPS32)
    tol = 2.02 * gamma * (q.norm(dim=1) + bank_norm.max().sqrt()).square()
    best = torch.empty(n, k, device=q.device)
    todo = torch.arange(n, device=q.device)
    for width in sorted({min(k + 4, c), c}):
        # the nearest `width` candidates measured exactly; every other row's GEMM distance is >=
        # `bound`, so its exact one is >= bound - tol: if the k-th candidate is below that, the
        # candidates hold the exact k nearest (equal values whatever the GEMM's rounding)
        step = max(1, (1 << 20) // (width * bank.shape[1]))  # ~4 MB of gathered rows per block
        exact = torch.cat([_squared(q[todo[a:a + step]], bank[index[todo[a:a + step], :width]])
                           for a in range(0, todo.numel(), step)])
        exact.masked_fill_(approx[todo, :width].isinf(), float("inf"))
        best[todo] = exact.topk(k, dim=1, largest=False, sorted=False).values
        bound = approx[todo, min(width, c - 1)]
        sure = bound.isinf() | (best[todo].max(1).values < bound - tol[todo])
        todo = todo[~sure]
        if todo.numel() == 0:
            break
    if todo.numel():  # near-ties beyond the candidates: every bank row, measured exactly
        best[todo] = _exact_smallest(q[todo], bank, k,
                                     None if query_groups is None else query_groups[todo], bank_groups)
    return _mean_distance(best)


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
