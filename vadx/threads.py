"""Intra-op thread count for a block of work, restored afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def intra_op_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` (None: leave it as it is), then restore.

    For loops of many small ops: each parallel region costs a fork/join, and on a machine whose
    cores are shared the other threads may not be running, so one thread can be several times
    faster (sRNN-AE training, 84 x 128 GEMMs: 0.036 s per iteration on 1 thread against 0.37-0.57
    on 2, measured side by side on this project's 2-core machine while it was shared)."""
    if n is not None and n < 1:
        raise ValueError(f"intra_op_threads: n must be >= 1 or None, got {n!r}")
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
