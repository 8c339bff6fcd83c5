"""accumulator_score vs its plain-PyTorch references and a NumPy loop, side by side.

Run: pytest bench/test_accumulator_score.py   (ratios: the parenthesised columns per group)
"""

import numpy as np
import pytest
import torch

import vadx
from vadx.ops import reference

KW = dict(tau=0.5, nu=2.0, lb=-7.0, ub=7.0, decay="symmetric")
SHAPES = {"B1024-T10k": (1024, 10_000), "B1-T10M": (1, 10_000_000)}


def numpy_loop(sigma: np.ndarray, tau, nu, lb, ub, decay):
    """The best plain NumPy: increments vectorised over everything, then one loop over time
    vectorised over streams (the clipped accumulation is the only sequential part)."""
    valid = ~np.isnan(sigma)
    c = np.clip(sigma.astype(np.float64), 0.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fall = (tau - c) / tau if decay == "symmetric" else np.clip((1 - c - tau) / (1 - tau), 0, 1)
        a = np.where(c >= tau, nu * (c - tau) / (1 - tau), -(nu * fall))
    a = np.where(valid, a, 0.0)
    x = np.full(sigma.shape[0], lb)
    xs = np.empty_like(a)
    for t in range(sigma.shape[1]):
        x = np.minimum(np.maximum(x + a[:, t], lb), ub)
        xs[:, t] = x
    s = (1.0 / (1.0 + np.exp(-xs))).astype(sigma.dtype)
    s[~valid] = np.nan
    return s, x


@pytest.fixture(scope="module", params=list(SHAPES))
def case(request):
    B, T = SHAPES[request.param]
    sigma = torch.rand(B, T, generator=torch.Generator().manual_seed(0))
    return request.param, sigma


def _check_same(sigma, s):
    probe = sigma[:, :4096]
    s_ref, _ = reference.accumulator_score_scan(probe, **KW)
    torch.testing.assert_close(s[:, :4096], s_ref)


def test_op(benchmark, case):
    name, sigma = case
    benchmark.group = f"accumulator_score {name}"
    s, _ = benchmark(vadx.ops.accumulator_score, sigma, **KW)
    _check_same(sigma, s)


def test_op_one_thread(benchmark, case):
    name, sigma = case
    benchmark.group = f"accumulator_score {name}"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        benchmark(vadx.ops.accumulator_score, sigma, **KW)
    finally:
        torch.set_num_threads(threads)


def test_reference_scan(benchmark, case):
    name, sigma = case
    benchmark.group = f"accumulator_score {name}"
    s, _ = benchmark.pedantic(reference.accumulator_score_scan, (sigma,), KW, rounds=3, iterations=1)
    _check_same(sigma, s)


def test_reference_loop(benchmark, case):
    name, sigma = case
    if sigma.shape[1] > 100_000:
        pytest.skip("a Python loop over 10M frames of tensor ops: minutes per round")
    benchmark.group = f"accumulator_score {name}"
    benchmark.pedantic(reference.accumulator_score, (sigma,), KW, rounds=3, iterations=1)


def test_numpy_loop(benchmark, case):
    name, sigma = case
    benchmark.group = f"accumulator_score {name}"
    rounds = 1 if sigma.shape[1] > 100_000 else 3
    s, _ = benchmark.pedantic(numpy_loop, (sigma.numpy(),), KW, rounds=rounds, iterations=1)
    _check_same(sigma, torch.from_numpy(s))
