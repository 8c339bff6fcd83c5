"""sista at the paper's sizes (Luo et al. §3.6-3.7, K = 3, 2048 x 2048 dictionary), side by side with
its GEMM floor and plain PyTorch, one group per shape.

- inference: B = 21 patches x 4 clips = 84 sequences, T = 10, d = n = 2048, forward only. The floor is
  the products alone with torch.mm: A^T x for all t, then T K products with A^T A (given). The op is
  timed as a detector calls it (A^T A cached per dictionary) and as a first call (A^T A computed).
  Target: within 1.3x of the floor.
- training: B = 84, T = 10, d = n = 512, forward + backward of a loss on the codes, gradients for
  A, lambda1, lambda2, gamma, S and alpha0. Baseline: autograd through vadx.ops.reference.sista in
  float32 (the plain-PyTorch version at the op's precision) and as documented (float64).
  Target: >= 3x faster than autograd through the reference.
- streaming: 21 patches, one frame per call (T = 1) carrying alpha; one round = one frame, so the
  OPS column is frames/s (the paper reports 152 frames/s for this stage on a GPU).

Run: pytest bench/test_sista.py   (ratios: the parenthesised columns per group)
     pytest bench/test_sista.py -k training_ratio -s   (the interleaved training ratio only)

What made the training ratio swing between 1.3x and 2.6x from run to run (issue 21), measured:
- the allocator: early in a process glibc maps every block over 128 KB afresh, so each of the
  reference's ~1,800 autograd intermediates (172 KB at B=84, n=512) page-faults (~70,000 faults
  and +120 ms per step) until its dynamic threshold rises; the op allocates a few large buffers
  (~20,000 faults). Ratios measured before the process settles are 1.8x (1 thread) to 3x (2
  threads), after it 1.5x to 1.85x. test_training_ratio warms up until steps stop faulting, and
  records the faults per step.
- threads: the op scales to 2 threads better than the reference's small ops (1.45x at 1 thread,
  1.85x at 2, steady state); both are reported.
- noisy neighbours: another process on the 2 cores stalls OpenMP barriers for a time slice; single
  rounds then read 0.1x or 4.7x. Rounds alternate op and reference, and the median is reported.
- the host: on this Intel Xeon MKL's sgemm and oneDNN run the [84, 512] x [512, 512] products at the
  same speed (~125 GFLOP/s a core), where on the AMD EPYC the op's comment measured MKL at half
  speed, which slows only the reference (it multiplies with at::mm). The CPU model is recorded.
- warm-up: the op's first call JIT-compiles oneDNN primitives (~1 s).
"""

import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import pytest
import torch

import vadx
from vadx.ops import reference

K = 3
# lambda2 as in the paper's Fig. 7; lambda1 gives ~80 % zero codes, the sparsity it reports at K = 3
LAMBDA1, LAMBDA2 = 0.8, 2.0


def problem(B, T, d, n, seed=0):
    """Unit-norm dictionary columns (the paper's constraint), post-ReLU-like features, similarities
    in [0.5, 1], gamma = ||A||_2^2 (ISTA's step bound)."""
    g = torch.Generator().manual_seed(seed)
    A = torch.nn.functional.normalize(torch.randn(d, n, generator=g), dim=0)
    x = torch.relu(torch.randn(B, T, d, generator=g))
    S = 0.5 + 0.5 * torch.rand(B, T, generator=g)
    gamma = float(torch.linalg.matrix_norm(A, ord=2)) ** 2
    return x, A, S, torch.zeros(B, n), gamma


# ---- paper size, inference ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def inference():
    return problem(84, 10, 2048, 2048)


GROUP_INFERENCE = "sista inference B84 T10 d=n=2048 K3 (forward)"


def test_inference_op(benchmark, inference):
    x, A, S, alpha0, gamma = inference
    benchmark.group = GROUP_INFERENCE
    with torch.no_grad():
        codes = benchmark(vadx.ops.sista, x, A, LAMBDA1, LAMBDA2, gamma, S, alpha0, K)
    assert 0.7 < (codes == 0).float().mean() < 0.9  # sparse, as the paper's codes (80 %)
    probe = reference.sista(x[:4], A, LAMBDA1, LAMBDA2, gamma, S[:4], alpha0[:4], K)
    torch.testing.assert_close(codes[:4], probe, rtol=1e-4, atol=1e-4)


def test_inference_op_gram_per_call(benchmark, inference):
    """A first call with a new dictionary: A^T A computed inside the op."""
    x, A, S, alpha0, gamma = inference
    benchmark.group = GROUP_INFERENCE
    scalars = [torch.tensor(v) for v in (LAMBDA1, LAMBDA2, gamma)]
    benchmark(torch.ops.vadx.sista, x, A, None, *scalars, S, alpha0, K, "signed")


def test_inference_gemm_floor(benchmark, inference):
    """The op's matrix products alone, with torch.mm: A^T x_t for all t (one GEMM), then T K
    products of a [B, n] block with A^T A (given)."""
    x, A, S, alpha0, gamma = inference
    benchmark.group = GROUP_INFERENCE
    B, T, d = x.shape
    gram = A.T @ A
    x2 = x.reshape(B * T, d)
    a = torch.randn(B, A.shape[1])

    def products():
        torch.mm(x2, A)
        for _ in range(T * K):
            torch.mm(a, gram)

    benchmark(products)


def test_inference_plain_pytorch(benchmark, inference):
    x, A, S, alpha0, gamma = inference
    benchmark.group = GROUP_INFERENCE
    with torch.no_grad():
        benchmark.pedantic(reference.sista, (x, A, LAMBDA1, LAMBDA2, gamma, S, alpha0, K),
                           dict(dtype=None), rounds=3, iterations=1)


# ---- training size, forward + backward ---------------------------------------------------------


@pytest.fixture(scope="module")
def training():
    x, A, S, alpha0, gamma = problem(84, 10, 512, 512, seed=1)
    weight = torch.randn(84, 10, 512, generator=torch.Generator().manual_seed(2))
    return x, A, S, alpha0, gamma, weight


GROUP_TRAINING = "sista training B84 T10 d=n=512 K3 (forward + backward)"


def train_step(fn, x, A, S, alpha0, gamma, weight):
    """One loss.backward() with every parameter of the sRNN requiring grad; returns the grads."""
    leaves = [t.clone().requires_grad_() for t in (A, torch.tensor(LAMBDA1), torch.tensor(LAMBDA2),
                                                   torch.tensor(gamma), S, alpha0)]
    A_, l1, l2, g, S_, a0 = leaves
    (fn(x, A_, l1, l2, g, S_, a0, K) * weight).sum().backward()
    return [t.grad for t in leaves]


def test_training_op(benchmark, training):
    benchmark.group = GROUP_TRAINING
    grads = benchmark(train_step, vadx.ops.sista, *training)
    expected = train_step(reference.sista, *training)
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4 * float(b.abs().max()))


def test_training_reference_float32(benchmark, training):
    benchmark.group = GROUP_TRAINING
    benchmark(train_step, lambda *a: reference.sista(*a, dtype=None), *training)


def test_training_reference_float64(benchmark, training):
    """The reference as documented (it computes in float64)."""
    benchmark.group = GROUP_TRAINING
    benchmark.pedantic(train_step, (reference.sista, *training), rounds=3, iterations=1)


# ---- streaming, one frame per call -------------------------------------------------------------


@pytest.fixture(scope="module")
def streaming():
    return problem(21, 64, 2048, 2048, seed=3)


GROUP_STREAMING = "sista streaming B21 T1 d=n=2048 K3 (one frame per round: OPS = frames/s)"


def stream(step, x, S, alpha0):
    """A callable that runs the next frame (cycling through x) from the previous frame's codes."""
    state = {"t": 0, "alpha": alpha0}

    def frame():
        t = state["t"] % x.shape[1]
        state["alpha"] = step(x[:, t:t + 1], S[:, t:t + 1], state["alpha"])
        state["t"] += 1

    return frame


def test_streaming_op(benchmark, streaming):
    x, A, S, alpha0, gamma = streaming
    benchmark.group = GROUP_STREAMING
    with torch.no_grad():
        benchmark(stream(lambda xt, st, a: vadx.ops.sista(xt, A, LAMBDA1, LAMBDA2, gamma, st, a, K)[:, 0],
                         x, S, alpha0))


def test_streaming_gemm_floor(benchmark, streaming):
    x, A, S, alpha0, gamma = streaming
    benchmark.group = GROUP_STREAMING
    gram = A.T @ A

    def products(xt, st, a):
        torch.mm(xt[:, 0], A)
        for _ in range(K):
            torch.mm(a, gram)
        return a

    benchmark(stream(products, x, S, alpha0))


def test_streaming_plain_pytorch(benchmark, streaming):
    x, A, S, alpha0, gamma = streaming
    benchmark.group = GROUP_STREAMING
    with torch.no_grad():
        benchmark(stream(lambda xt, st, a: reference.sista(xt, A, LAMBDA1, LAMBDA2, gamma, st, a, K,
                                                           dtype=None)[:, 0], x, S, alpha0))


# ---- training ratio, interleaved rounds ----------------------------------------------------------

RATIO_ROUNDS = int(os.environ.get("VADX_BENCH_ROUNDS", "12"))
RATIO_RESULTS = Path(__file__).parent / "results" / "sista_training_ratio.json"


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _timed_step(fn, training):
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    train_step(fn, *training)
    return time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def _ratio_rounds(training, threads):
    """Interleaved rounds at a fixed thread count: per round the best of 3 steps of each, the
    reference/op ratio per round. Warm-up first: until neither step page-faults (the allocator has
    settled, see the module docstring) or 20 rounds."""
    reference32 = lambda *a: reference.sista(*a, dtype=None)  # noqa: E731
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for warm in range(20):
            _, f_op = _timed_step(vadx.ops.sista, training)
            _, f_ref = _timed_step(reference32, training)
            if warm >= 2 and f_op == 0 and f_ref == 0:
                break
        rounds = []
        for _ in range(RATIO_ROUNDS):
            op = min(_timed_step(vadx.ops.sista, training) for _ in range(3))
            ref = min(_timed_step(reference32, training) for _ in range(3))
            rounds.append((op, ref))
    finally:
        torch.set_num_threads(before)
    spread = lambda v: {"min": min(v), "median": statistics.median(v), "max": max(v)}  # noqa: E731
    return {
        "warm_up_rounds": warm + 1,
        "ratio": spread([r[0] / o[0] for o, r in rounds]),
        "op_ms": spread([1e3 * o[0] for o, _ in rounds]),
        "reference_float32_ms": spread([1e3 * r[0] for _, r in rounds]),
        "page_faults_per_step": {"op": max(o[1] for o, _ in rounds),
                                 "reference": max(r[1] for _, r in rounds)},
    }


def test_training_ratio(benchmark, training, capsys):
    """Forward + backward, op vs autograd through the float32 reference, as the ratio of
    neighbouring measurements (min / median / max over interleaved rounds) at 1 thread and at the
    default thread count; written to bench/results/sista_training_ratio.json. Target: >= 2.5x."""
    result = {
        "shape": "B84 T10 d=n=512 K3", "cpu": _cpu_model(), "cpus": os.cpu_count(),
        "torch": torch.__version__, "loadavg_before": os.getloadavg(), "threads": {},
    }
    for threads in sorted({1, torch.get_num_threads()}):
        result["threads"][str(threads)] = _ratio_rounds(training, threads)
    result["loadavg_after"] = os.getloadavg()
    RATIO_RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    benchmark.extra_info.update(result)
    benchmark.group = GROUP_TRAINING + " (interleaved ratio in extra_info)"
    benchmark.pedantic(train_step, (vadx.ops.sista, *training), rounds=3, iterations=1)
    with capsys.disabled():
        print(f"\nsista training ratio on {result['cpu']}, load {result['loadavg_before'][0]:.1f}"
              f" -> {result['loadavg_after'][0]:.1f}")
        for threads, r in result["threads"].items():
            v = r["ratio"]
            print(f"  {threads} thread(s): reference / op min {v['min']:.2f}  median {v['median']:.2f}"
                  f"  max {v['max']:.2f}   op median {r['op_ms']['median']:.1f} ms, reference "
                  f"{r['reference_float32_ms']['median']:.1f} ms, faults/step {r['page_faults_per_step']}")
