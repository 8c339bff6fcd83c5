"""accumulator_score vs its plain-PyTorch references, a NumPy loop and a copy, side by side.

The op reads one float and writes one per frame, so its floor is memory speed: the group's
`clone` row is a copy of the same bytes into a fresh tensor (the op allocates its output too).
Target (issue 21) at B=1024 x T=10,000 float32: >= 20x the NumPy loop vectorised over streams and
<= 1.5x the clone, measured interleaved in one run by test_floor (min/median/max over rounds;
written to bench/results/accumulator_score_floor.json).

Run: pytest bench/test_accumulator_score.py   (ratios: the parenthesised columns per group)
     pytest bench/test_accumulator_score.py -k floor -s   (the interleaved ratios only)
"""

import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vadx
from vadx.ops import reference
from timing import best_of  # bench/timing.py

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


def test_clone(benchmark, case):
    """The memory floor: the same bytes copied into a fresh tensor."""
    name, sigma = case
    benchmark.group = f"accumulator_score {name}"
    benchmark(torch.clone, sigma)


FLOOR_ROUNDS = int(os.environ.get("VADX_BENCH_ROUNDS", "7"))
RESULTS = Path(__file__).parent / "results" / "accumulator_score_floor.json"


def _spread(values):
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


# glibc decides whether a 40 MB block is fresh memory (mmap: every page faults on its first write,
# ~1.7 us each here, in the op and the clone alike) or reused from its heap (no faults: the clone
# is then a pure memcpy). Which one a process sees depends on its history (after many mid-size
# tensors the heap can hold 40 MB free), so both are measured, each in a process of its own with
# the choice pinned by glibc's environment variables (and the faults per call recorded).
MALLOC_REGIMES = {
    "fresh": {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)},
    "reused": {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)},
}


def _page_faults(fn):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def measure_floor(rounds):
    """Interleaved rounds at B=1024 x T=10,000: the op and the clone (best of 5 each, alternating)
    and the NumPy loop (once) per round; ratios per round, as min / median / max."""
    B, T = SHAPES["B1024-T10k"]
    sigma = torch.rand(B, T, generator=torch.Generator().manual_seed(0))
    sigma_np = sigma.numpy()
    s, _ = vadx.ops.accumulator_score(sigma, **KW)
    _check_same(sigma, s)
    del s
    torch.clone(sigma)
    faults = {"op": _page_faults(lambda: vadx.ops.accumulator_score(sigma, **KW)),
              "clone": _page_faults(lambda: torch.clone(sigma))}
    times = []
    for _ in range(rounds):
        t_op = t_clone = float("inf")
        for _ in range(5):
            t_op = min(t_op, best_of(lambda: vadx.ops.accumulator_score(sigma, **KW), 1))
            t_clone = min(t_clone, best_of(lambda: torch.clone(sigma), 1))
        times.append((t_op, t_clone, best_of(lambda: numpy_loop(sigma_np, **KW), 1)))
    return {
        "rounds": rounds, "page_faults_per_call": faults,
        "op_over_clone": _spread([o / c for o, c, _ in times]),
        "numpy_over_op": _spread([n / o for o, _, n in times]),
        "op_ms": _spread([1e3 * o for o, _, _ in times]),
        "clone_ms": _spread([1e3 * c for _, c, _ in times]),
        "numpy_ms": _spread([1e3 * n for _, _, n in times]),
    }


def test_floor(benchmark, capsys):
    """The issue's targets (>= 20x the NumPy loop, <= 1.5x the clone) as ratios measured
    interleaved, min / median / max over rounds, in both allocator regimes; written to
    bench/results/accumulator_score_floor.json. The machine is shared (2 cores): absolute times
    drift with its load, neighbouring measurements' ratios much less."""
    B, T = SHAPES["B1024-T10k"]
    result = {
        "shape": [B, T], "dtype": "float32", "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
        "cpus": os.cpu_count(), "loadavg_before": os.getloadavg(), "regimes": {},
        "targets": {"op_over_clone_max": 1.5, "numpy_over_op_min": 20.0},
    }
    for regime, env in MALLOC_REGIMES.items():
        script = ("import json, sys; sys.path.insert(0, sys.argv[1]); import test_accumulator_score as b; "
                  "print(json.dumps(b.measure_floor(int(sys.argv[2]))))")
        run = subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent), str(FLOOR_ROUNDS)],
                             env={**os.environ, **env}, capture_output=True, text=True, timeout=1200)
        assert run.returncode == 0, run.stderr[-3000:]
        result["regimes"][regime] = json.loads(run.stdout.strip().splitlines()[-1])
    result["loadavg_after"] = os.getloadavg()
    result["targets_met"] = {
        regime: {"op_over_clone": r["op_over_clone"]["median"] <= 1.5,
                 "numpy_over_op": r["numpy_over_op"]["median"] >= 20.0}
        for regime, r in result["regimes"].items()}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    benchmark.extra_info.update(result)
    benchmark.group = "accumulator_score floor (interleaved ratios in extra_info)"
    sigma = torch.rand(B, T, generator=torch.Generator().manual_seed(0))
    benchmark.pedantic(vadx.ops.accumulator_score, (sigma,), KW, rounds=3, iterations=1)
    with capsys.disabled():
        print(f"\naccumulator_score B{B} T{T} float32, {result['threads']} threads, "
              f"{result['cpu_capability']}, load {result['loadavg_before'][0]:.1f} -> "
              f"{result['loadavg_after'][0]:.1f}")
        for regime, r in result["regimes"].items():
            print(f"  {regime}: page faults per call {r['page_faults_per_call']}")
            for key in ("op_over_clone", "numpy_over_op", "op_ms", "clone_ms", "numpy_ms"):
                v = r[key]
                print(f"  {regime:6s} {key:14s} min {v['min']:8.2f}  median {v['median']:8.2f}"
                      f"  max {v['max']:8.2f}")
    # The targets, recorded per regime. With fresh memory the clone and the op pay the
    # same 10,000 page faults (~13 ms here); with reused memory the clone is a copy within the
    # 480 MB L3 of this host, and the op is compute-bound (~1 ns a value a core: the float64 rule,
    # Sleef's exp and the transposes, see csrc/cpu/accumulator_score_kernel_isa.cpp). Measured on
    # the quiet machine (load ~1): fresh 1.25x the clone and 27x NumPy (both met), reused 1.58x
    # the clone (not met) and 87x NumPy. With fresh memory the NumPy ratio depends on NumPy's own
    # speed: against the 250 ms loop, 13 ms of faults alone would cap it at ~19x (here the
    # loop takes ~500 ms).
    with capsys.disabled():
        print(f"  targets met: {result['targets_met']}")
    # Regression guards (noise-proof bounds, not the targets): a kernel that lost its vectorisation
    # would be ~5x the clone and ~3x NumPy.
    for regime, r in result["regimes"].items():
        assert r["op_over_clone"]["median"] <= 2.0, (regime, r["op_over_clone"])
    assert result["regimes"]["reused"]["numpy_over_op"]["median"] >= 20.0, result["regimes"]["reused"]
