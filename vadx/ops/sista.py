"""Temporally-coherent sparse coding (Luo et al. §3.2-3.7): the SISTA recurrence (= the sRNN's forward
pass) as torch.ops.vadx.sista with its backward, and the helpers a TSC / sRNN-AE detector needs."""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary

from vadx.ops._checks import check_same_device

__all__ = ["reconstruction_error", "sista", "tsc_dictionary_step"]

# The largest K the op accepts (csrc/sista.h kSistaMaxK): the T x K loop cannot be interrupted.
MAX_K = 10000

# A^T A per dictionary, for calls that record no gradient: {A: (key of its contents, gram)}.
_gram_cache = WeakIdKeyDictionary()


def sista(
    x: Tensor,
    A: Tensor,
    lambda1: Tensor | float,
    lambda2: Tensor | float,
    gamma: Tensor | float,
    S: Tensor,
    alpha0: Tensor,
    K: int,
    mode: str = "signed",
) -> Tensor:
    r"""Sparse codes of a sequence by SISTA (Luo et al., Algorithm 1): the stacked-RNN forward pass.

    For each item ``b`` and frame ``t = 1..T`` (``alpha_0 = alpha0``), K ISTA steps on
    ``||x_t - A a||^2 + lambda1 ||a||_1 + lambda2 S_t ||a - alpha_{t-1}||^2`` warm-started from
    the previous frame's codes::

        a = alpha_{t-1}
        K times:
            z = a - (A^T A a + S_t lambda2 a) / gamma + A^T x_t / gamma
            a = soft_{lambda1/gamma}(z + S_t lambda2 alpha_{t-1} / gamma)
        alpha_t = a

    with ``soft_b(v) = sign(v) max(|v| - b, 0)`` (``mode="signed"``, the authors' code) or
    ``max(v - b, 0)`` (``mode="nonneg"``, the paper's text). ``K = 1`` is one plain ISTA step
    ``soft(alpha_{t-1} + A^T (x_t - A alpha_{t-1}) / gamma)`` (the S terms cancel); ``S = 0``
    makes every frame an independent K-step ISTA warm-started from the previous codes.

    ``A^T A`` and ``A^T x_t`` (all t) are GEMMs done once; each step is then one ``[B, n] x [n, n]``
    GEMM and one fused elementwise pass. CPU: the steps' float32 GEMMs run on oneDNN (through
    ATen's ``mkldnn::_linear_pointwise``; MKL's sgemm is half as fast on these small-batch products
    on AMD CPUs; on Intel CPUs MKL is the faster one for dictionaries up to n = 512 and takes
    those), float64 on BLAS, the elementwise pass vectorised and split over items with OpenMP.
    Backward skips dL/dx (a GEMM) when x does not require grad, and on CPU sums the scalars'
    gradients inside each step's elementwise pass. CUDA: cuBLAS and one kernel per step, no host
    synchronisation inside the T x K loop (the scalars are read on the device).

    Differentiable in ``x``, ``A``, ``lambda1``, ``lambda2``, ``gamma``, ``S`` and ``alpha0``
    (first order): backpropagation through the T x K unrolled steps, a second C++ op
    (``torch.ops.vadx.sista_backward``). The soft threshold's derivative at its kinks is the one
    autograd gives for ``sign(z) * relu(|z| - b)`` / ``relu(z - b)``: zero at the threshold.

    Memory: for backward the op keeps the input of every ISTA step, ``[T, K, B, n]`` in x's dtype
    (O(B T K n), the size of the unrolled network's hidden states), plus x, A, S and the codes it
    references anyway. The soft-threshold masks are not stored: they are read off those states
    (``a != 0``, or ``a > 0`` for nonneg). ``A^T A`` is recomputed in backward (one ``d n^2``
    GEMM) rather than kept. Backward's workspace is another ``[T, K, B, n]`` (dL/d pre-activation
    of every step, so that dL/d(A^T A) is a single GEMM). When the call records no gradient
    (``torch.no_grad()``, inference, or no input requiring grad) the per-step states are not even
    allocated: the recurrence runs in two ``[B, n]`` buffers (the op's ``keep_states=False``).

    When the call records no gradient (``torch.no_grad()``, inference, or no input requiring
    grad), ``A^T A`` is cached per dictionary tensor: at the paper's size (d = n = 2048) it costs
    as much as the whole recurrence over a 10-frame clip, and a detector reuses one dictionary for
    every clip. The cache entry lives as long as ``A`` and is refreshed when A's version counter,
    storage or shape change (any in-place op on ``A``, optimizer steps included). Edits that bypass
    the version counter (through ``A.data`` or a NumPy view) are not seen: replace the tensor
    instead. Tensors created under ``torch.inference_mode`` (no version counter) and
    ``torch.compile`` skip the cache.

    Streaming: run a long sequence chunk by chunk, passing the previous chunk's last codes on as
    ``alpha0`` (``alpha0 = codes[:, -1]``) and the similarity to the previous chunk's last frame as
    ``S[:, 0]``; the chunks reproduce the one-shot codes (up to float rounding of the GEMMs).
    One frame at a time is ``T = 1``.

    Args:
        x: features ``[B, T, d]`` (B independent sequences, e.g. patches x clips), float32 or
            float64; may be non-contiguous. NaN/inf in ``x[b, t]`` (or in ``S[b, t]``,
            ``alpha0[b]``) make ``codes[b, t:]`` NaN — that item, from that frame on, since each
            frame starts from the previous codes — and leave every other item untouched; nothing
            raises. Drop or impute such frames first if later frames matter.
        A: dictionary ``[d, n]``, x's dtype and device (columns of norm <= 1 in the paper; not
            enforced, see :func:`tsc_dictionary_step`).
        lambda1, lambda2, gamma: sparsity weight (finite, >= 0), temporal-coherence weight
            (finite) and step parameter (finite, > 0; ISTA converges for
            ``gamma >= ||A||_2^2``), Python numbers or 0-d tensors (learnable: they get gradients
            when they require grad) on x's device or the CPU. Their values are checked once per
            call (one device-to-host read of the three scalars on CUDA).
        S: ``[B, T]`` similarities, ``S[:, t] = S_{t-1,t}``; ``S[:, 0]`` couples frame 1 to
            ``alpha0``.
        alpha0: initial codes ``[B, n]``, or ``[n]`` shared by all items.
        K: ISTA steps per frame (layers of the sRNN), in [1, 10000] (``vadx.ops.sista.MAX_K``);
            the paper uses 3 (sRNN) to 30 (TSC). The bound exists because a running call cannot
            be interrupted (Ctrl-C is seen only when it returns): K = 10000 is about a second per
            frame at the paper's size on one CPU core, K = 1e6 would be minutes.
        mode: ``"signed"`` (default) or ``"nonneg"``, see above.

    Returns:
        codes ``[B, T, n]`` in x's dtype: ``codes[:, t] = alpha_{t+1}``.

    Raises:
        ValueError / TypeError: a bad argument, naming it with the expected and the actual value
            (shape, dtype, or device: every tensor must be on x's device).

    Example:
        >>> x, A = torch.randn(21, 10, 64), torch.nn.functional.normalize(torch.randn(64, 128), dim=0)
        >>> codes = sista(x, A, 0.1, 2.0, 20.0, torch.ones(21, 10), torch.zeros(128), K=3)
        >>> codes.shape
        torch.Size([21, 10, 128])
    """
    for name, v in (("x", x), ("A", A), ("S", S), ("alpha0", alpha0)):
        if not isinstance(v, Tensor):
            raise TypeError(f"sista: {name} must be a torch.Tensor, got {type(v).__name__}")
    if not isinstance(K, numbers.Integral) or isinstance(K, bool):
        raise TypeError(f"sista: K must be an int, got {type(K).__name__}")
    if not isinstance(mode, str):  # the op's schema would reject it naming no argument
        raise TypeError(f"sista: mode must be 'signed' or 'nonneg', got {mode!r}")
    check_same_device("sista", "x", x, A=A, S=S, alpha0=alpha0)
    dtype = x.dtype if x.is_floating_point() else torch.float64  # the op reports a bad x dtype
    lambda1 = _scalar("lambda1", lambda1, x, dtype)
    lambda2 = _scalar("lambda2", lambda2, x, dtype)
    gamma = _scalar("gamma", gamma, x, dtype)
    if alpha0.dim() == 1 and x.dim() == 3 and A.dim() == 2 and alpha0.shape[0] == A.shape[1]:
        alpha0 = alpha0.expand(x.shape[0], alpha0.shape[0])  # other shapes: the op names them
    if K < 1 or K > MAX_K:
        raise ValueError(f"sista: K (ISTA steps per frame) must be in [1, {MAX_K}], got {K}")
    needs_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (x, A, lambda1, lambda2, gamma, S, alpha0)
    )
    gram = None
    if not torch.compiler.is_compiling() and not needs_grad:
        gram = _cached_gram(A)
    codes, _ = torch.ops.vadx.sista(
        x, A, gram, lambda1, lambda2, gamma, S, alpha0, int(K), mode, needs_grad
    )
    return codes


def _scalar(name: str, v, x: Tensor, dtype: torch.dtype) -> Tensor:
    """A number or 0-d tensor as a 0-d tensor on x's device (differentiably for tensors). A 0-d
    tensor on the CPU is moved there, as PyTorch's ops take CPU scalars; any other device than
    x's is an error."""
    if isinstance(v, Tensor):
        if v.dim() != 0:
            raise ValueError(f"sista: {name} must be a number or a 0-d tensor, got shape {tuple(v.shape)}")
        if v.device.type != "cpu":
            check_same_device("sista", "x", x, **{name: v})
        return v.to(device=x.device, dtype=dtype)
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return torch.tensor(float(v), dtype=dtype, device=x.device)
    raise TypeError(f"sista: {name} must be a number or a 0-d tensor, got {type(v).__name__}")


def _cached_gram(A: Tensor) -> Tensor | None:
    """A^T A from the cache (see sista's docstring), computed on a miss; None where A cannot be
    keyed (no version counter)."""
    if A.is_inference() or A.dim() != 2 or not A.is_floating_point():
        return None
    key = (A._version, A.data_ptr(), tuple(A.shape), A.stride(), A.dtype)
    hit = _gram_cache.get(A)
    if hit is not None and hit[0] == key:
        return hit[1]
    with torch.no_grad():
        gram = A.mT @ A
    _gram_cache[A] = (key, gram)
    return gram


def _setup_context(ctx, inputs, output):
    x, A, gram, lambda1, lambda2, gamma, S, _alpha0, _K, mode = inputs[:10]  # [10]: keep_states
    codes, states = output
    ctx.mark_non_differentiable(states)
    ctx.set_materialize_grads(False)  # states get no gradient: no [T, K, B, n] of zeros for it
    ctx.mode = mode
    ctx.n_inputs = len(inputs)
    ctx.save_for_backward(x, A, gram, lambda1, lambda2, gamma, S, codes, states)


def _backward(ctx, grad_codes, _grad_states):
    if grad_codes is None:  # the codes did not reach the loss (grads are not materialised)
        return (None,) * ctx.n_inputs
    x, A, gram, lambda1, lambda2, gamma, S, codes, states = ctx.saved_tensors
    need_dx = ctx.needs_input_grad[0]  # features are usually data: skip their [B T, n] x [n, d] GEMM
    dx, dA, dgram, dl1, dl2, dgamma, dS, dalpha0 = torch.ops.vadx.sista_backward(
        grad_codes, x, A, gram, lambda1, lambda2, gamma, S, codes, states, ctx.mode, need_dx
    )
    grads = (dx if need_dx else None, dA, dgram if gram is not None else None, dl1, dl2, dgamma,
             dS, dalpha0)
    return grads + (None,) * (ctx.n_inputs - len(grads))  # K, mode (and keep_states)


torch.library.register_autograd("vadx::sista", _backward, setup_context=_setup_context)


def reconstruction_error(x: Tensor, A: Tensor, alpha: Tensor) -> Tensor:
    r"""Per-item reconstruction error ``||x_t - A alpha_t||_2^2`` (Luo et al. eq. 12), the anomaly
    evidence of a patch.

    Args:
        x: features ``[..., d]`` (e.g. ``[B, T, d]``).
        A: dictionary ``[d, n]``.
        alpha: codes ``[..., n]`` with x's leading shape (e.g. from :func:`sista`).

    Returns:
        ``[...]`` (e.g. ``[B, T]``) in the inputs' dtype; differentiable.
    """
    _check_codes("reconstruction_error", x, A, alpha)
    residual = x - alpha @ A.mT
    return residual.square().sum(-1)


def tsc_dictionary_step(A: Tensor, x: Tensor, alpha: Tensor, lr: float) -> Tensor:
    r"""One projected-gradient step on the dictionary with the codes fixed (Luo et al. eq. 3).

    Objective: the mean over the ``N`` items of the squared reconstruction error, i.e. eq. 3
    divided by ``N`` so that ``lr`` does not depend on the batch size::

        L(A) = (1/N) sum_i ||x_i - A alpha_i||^2,     grad L = -(2/N) sum_i (x_i - A alpha_i) alpha_i^T
        A'   = A - lr grad L,   then each column A'[:, j] /= max(1, ||A'[:, j]||)

    (the projection onto ``||A[:, j]|| <= 1``; shorter columns are left alone). A plain gradient
    step decreases L for ``lr < 1 / (2 lambda_max(alpha^T alpha / N))``.

    Args:
        A: dictionary ``[d, n]``.
        x: features ``[..., d]``; alpha: their codes ``[..., n]`` (same leading shape, e.g. the
            ``[B, T]`` of :func:`sista`'s input and output). ``N = 0`` items: only the projection.
        lr: step size, a finite number > 0.

    Returns:
        The new dictionary ``[d, n]`` (a new tensor, not tracked by autograd; A is unchanged).

    Raises:
        ValueError / TypeError: a bad argument, naming it with the expected and the actual value.
    """
    _check_codes("tsc_dictionary_step", x, A, alpha)
    if isinstance(lr, Tensor) and lr.dim() == 0:
        lr = lr.item()
    if not isinstance(lr, numbers.Real) or isinstance(lr, bool):
        raise TypeError(f"tsc_dictionary_step: lr must be a number, got {type(lr).__name__}")
    if not (math.isfinite(float(lr)) and float(lr) > 0.0):
        raise ValueError(f"tsc_dictionary_step: lr must be finite and > 0, got {lr!r}")
    with torch.no_grad():
        X = x.reshape(-1, A.shape[0])
        codes = alpha.reshape(-1, A.shape[1])
        residual = X - codes @ A.mT
        grad = residual.mT @ codes * (-2.0 / max(X.shape[0], 1))
        new = A - float(lr) * grad
        return new / torch.linalg.vector_norm(new, dim=0).clamp_min(1.0)


def _check_codes(fn: str, x: Tensor, A: Tensor, alpha: Tensor) -> None:
    for name, v in (("x", x), ("A", A), ("alpha", alpha)):
        if not isinstance(v, Tensor):
            raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(v).__name__}")
    check_same_device(fn, "x", x, A=A, alpha=alpha)
    if A.dim() != 2:
        raise ValueError(f"{fn}: A must be 2-D [d, n], got shape {tuple(A.shape)}")
    d, n = A.shape
    if x.dim() < 1 or x.shape[-1] != d:
        raise ValueError(f"{fn}: x must have shape [..., d] with d = {d} (A's rows), got {tuple(x.shape)}")
    if alpha.shape != (*x.shape[:-1], n):
        raise ValueError(
            f"{fn}: alpha must have shape {(*x.shape[:-1], n)} (x's leading shape, A's columns), "
            f"got {tuple(alpha.shape)}"
        )
