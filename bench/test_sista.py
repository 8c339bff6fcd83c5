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
"""

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
