"""sista (DESIGN.md op 3) and its backward against the plain-PyTorch reference, hand-written ISTA,
gradcheck, opcheck and torch.compile; and the TSC helpers."""

import pytest
import torch
from torch.testing import assert_close

import vadx
from vadx.ops import reference

op = vadx.ops.sista
F64 = torch.float64
PARAMS = dict(lambda1=0.05, lambda2=2.0, gamma=4.0)  # gamma >= ||A||^2 for the make() dictionaries


def make(B=3, T=5, d=12, n=16, seed=0, dtype=torch.float32, device="cpu", shared_alpha0=False):
    """A unit-column dictionary, features it roughly explains, similarities in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    A = torch.nn.functional.normalize(torch.randn(d, n, generator=g, dtype=F64), dim=0)
    x = torch.randn(B, T, n, generator=g, dtype=F64) @ A.T * 0.5
    x += 0.1 * torch.randn(B, T, d, generator=g, dtype=F64)
    S = torch.rand(B, T, generator=g, dtype=F64)
    alpha0 = 0.3 * torch.randn(n if shared_alpha0 else (B, n), generator=g, dtype=F64)
    return tuple(t.to(device=device, dtype=dtype) for t in (x, A, S, alpha0))


def soft(z, b, mode):
    if mode == "signed":
        return torch.sign(z) * torch.clamp(z.abs() - b, min=0)
    return torch.clamp(z - b, min=0)


def ista(x_t, A, a, lambda1, gamma, K, mode):
    """K plain ISTA steps on ||x_t - A a||^2 + lambda1 ||a||_1 (step 1/gamma), rows as items."""
    for _ in range(K):
        a = soft(a + (x_t - a @ A.T) @ A / gamma, lambda1 / gamma, mode)
    return a


@pytest.mark.parametrize("mode", ["signed", "nonneg"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-13)])
def test_matches_reference(device, dtype, tol, mode):
    for K, shared in ((3, False), (1, True), (5, False)):
        x, A, S, alpha0 = make(dtype=dtype, device=device, shared_alpha0=shared)
        codes = op(x, A, **PARAMS, S=S, alpha0=alpha0, K=K, mode=mode)
        expected = reference.sista(*(t.cpu() for t in (x, A)), **PARAMS, S=S.cpu(), alpha0=alpha0.cpu(),
                                   K=K, mode=mode)
        assert codes.dtype == dtype and codes.shape == (3, 5, 16)
        assert 0.1 < (expected != 0).double().mean() < 0.95  # both sides of the threshold
        assert_close(codes.cpu(), expected, rtol=tol, atol=tol)
    if mode == "nonneg":
        assert (codes >= 0).all()


def test_scalars_as_tensors_and_numbers_agree(device):
    x, A, S, alpha0 = make(device=device)
    as_numbers = op(x, A, 0.05, 2.0, 4.0, S, alpha0, 3)
    as_tensors = op(x, A, torch.tensor(0.05), torch.tensor(2.0, dtype=F64), torch.tensor(4.0), S, alpha0, 3)
    assert torch.equal(as_numbers, as_tensors)


def test_k1_is_one_ista_step_by_hand(device):
    x, A, S, alpha0 = make(T=1, dtype=F64, device=device)
    for mode in ("signed", "nonneg"):
        codes = op(x, A, 0.05, 2.0, 4.0, S, alpha0, 1, mode)
        # soft(alpha0 + A^T (x - A alpha0) / gamma): the S terms of line 4 and 5 cancel at K = 1.
        by_hand = soft(alpha0 + (x[:, 0] - alpha0 @ A.T) @ A / 4.0, 0.05 / 4.0, mode)
        assert_close(codes[:, 0], by_hand, rtol=1e-13, atol=1e-13)


def test_s_zero_decouples_time_steps(device):
    x, A, S, alpha0 = make(T=6, dtype=F64, device=device)
    codes = op(x, A, **PARAMS, S=torch.zeros_like(S), alpha0=alpha0, K=3)
    prev = alpha0
    for t in range(6):  # each frame: an independent 3-step ISTA, warm-started from the last codes
        expected = ista(x[:, t], A, prev, 0.05, 4.0, 3, "signed")
        assert_close(codes[:, t], expected, rtol=1e-12, atol=1e-12)
        prev = codes[:, t]
    coupled = op(x, A, **PARAMS, S=S, alpha0=alpha0, K=3)
    assert (coupled - codes).abs().max() > 1e-3  # S does couple the frames


def test_huge_lambda1_gives_all_zero_codes(device):
    x, A, S, alpha0 = make(device=device)
    for mode in ("signed", "nonneg"):
        assert (op(x, A, 1e6, 2.0, 4.0, S, alpha0, 3, mode) == 0).all()


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-13)])
def test_streaming_in_chunks_equals_one_shot(device, dtype, tol):
    x, A, S, alpha0 = make(T=9, dtype=dtype, device=device)
    one_shot = op(x, A, **PARAMS, S=S, alpha0=alpha0, K=3)
    chunks, a = [], alpha0
    for t0, t1 in ((0, 4), (4, 5), (5, 9)):  # a frame at a time in the middle
        chunks.append(op(x[:, t0:t1], A, **PARAMS, S=S[:, t0:t1], alpha0=a, K=3))
        a = chunks[-1][:, -1]
    assert_close(torch.cat(chunks, dim=1), one_shot, rtol=tol, atol=tol)


@pytest.mark.parametrize("B,T,n,d", [(0, 4, 16, 12), (3, 0, 16, 12), (3, 4, 0, 12), (3, 4, 16, 0)])
def test_zero_size(device, B, T, n, d):
    x = torch.randn(B, T, d, device=device, dtype=F64, requires_grad=True)
    A = torch.randn(d, n, device=device, dtype=F64, requires_grad=True)
    S = torch.rand(B, T, device=device, dtype=F64, requires_grad=True)
    alpha0 = torch.randn(B, n, device=device, dtype=F64, requires_grad=True)
    codes = op(x, A, **PARAMS, S=S, alpha0=alpha0, K=2)
    assert codes.shape == (B, T, n)
    expected = reference.sista(x.cpu(), A.cpu(), **PARAMS, S=S.cpu(), alpha0=alpha0.cpu(), K=2)
    assert_close(codes.cpu(), expected)
    codes.sum().backward()
    for t in (x, A, S, alpha0):
        assert t.grad.shape == t.shape


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-13)])
def test_non_contiguous_inputs(device, dtype, tol):
    x, A, S, alpha0 = make(dtype=dtype, device=device)
    expected = op(x, A, **PARAMS, S=S, alpha0=alpha0, K=3)
    x_nc = x.transpose(0, 1).contiguous().transpose(0, 1)  # [B, T, d] view with T outermost
    A_nc = A.T.contiguous().T
    S_nc = torch.stack([S, S], dim=-1)[..., 0]
    alpha0_nc = torch.stack([alpha0, alpha0], dim=-1)[..., 1]
    assert not any(t.is_contiguous() for t in (x_nc, A_nc, S_nc, alpha0_nc))
    codes = op(x_nc, A_nc, **PARAMS, S=S_nc, alpha0=alpha0_nc, K=3)
    assert_close(codes, expected, rtol=tol, atol=tol)
    shared = alpha0[0].expand(3, -1)  # zero row stride
    expected = op(x, A, **PARAMS, S=S, alpha0=alpha0[0], K=3)
    assert_close(op(x, A, **PARAMS, S=S, alpha0=shared, K=3), expected, rtol=tol, atol=tol)


def test_nan_in_x_poisons_its_item_from_that_frame_on(device):
    x, A, S, alpha0 = make(T=6, device=device)
    clean = op(x, A, **PARAMS, S=S, alpha0=alpha0, K=3)
    x[1, 2, 5] = float("nan")
    codes = op(x, A, **PARAMS, S=S, alpha0=alpha0, K=3)
    assert torch.isnan(codes[1, 2:]).all()
    keep = torch.ones(3, 6, dtype=torch.bool)
    keep[1, 2:] = False
    assert_close(codes[keep], clean[keep], rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["signed", "nonneg"])
def test_gradcheck_every_input(device, mode):
    x, A, S, alpha0 = make(B=2, T=3, d=4, n=5, dtype=F64, device=device)
    scalars = [torch.tensor(v, dtype=F64, device=device) for v in (0.05, 1.5, 3.0)]
    inputs = [t.clone().requires_grad_() for t in (x, A, *scalars, S, alpha0)]

    def f(x, A, lambda1, lambda2, gamma, S, alpha0):
        return op(x, A, lambda1, lambda2, gamma, S, alpha0, 3, mode)

    assert 0.2 < (f(*inputs) != 0).double().mean() < 1  # kinks exercised, not only the linear part
    assert torch.autograd.gradcheck(f, inputs)
    # A given A^T A is an input of its own (the op's cached-Gram path), with its own gradient.
    gram = (A.T @ A + 0.1 * torch.rand(5, 5, dtype=F64, device=device)).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, A, gram, S: torch.ops.vadx.sista(x, A, gram, *scalars, S, alpha0, 2, mode)[0],
        (inputs[0], inputs[1], gram, inputs[5]),
    )


@pytest.mark.parametrize("mode", ["signed", "nonneg"])
def test_gradients_match_autograd_through_reference(device, mode):
    """float32 at the paper's batch (21 patches x 4 clips, 10 frames, K = 3), d = n = 128, against
    autograd through the float64 reference."""
    x, A, S, alpha0 = make(B=84, T=10, d=128, n=128, seed=3, device=device)
    scalars = [torch.tensor(v, device=device) for v in (0.5, 2.0, 6.0)]
    leaves = [t.clone().requires_grad_() for t in (x, A, *scalars, S, alpha0)]
    ref_leaves = [t.detach().cpu().requires_grad_() for t in leaves]
    w = torch.randn(84, 10, 128, generator=torch.Generator().manual_seed(1))
    codes = op(*leaves[:6], leaves[6], 3, mode).cpu()
    assert 0.2 < (codes == 0).float().mean() < 0.9
    (codes * w).sum().backward()
    (reference.sista(*ref_leaves[:6], ref_leaves[6], 3, mode) * w).sum().backward()
    names = ("x", "A", "lambda1", "lambda2", "gamma", "S", "alpha0")
    for name, a, b in zip(names, leaves, ref_leaves):
        scale = b.grad.abs().max().item()
        assert_close(a.grad.cpu(), b.grad, rtol=1e-3, atol=1e-4 * scale, msg=lambda m, n=name: f"{n}: {m}")


def test_cached_gram_follows_in_place_updates():
    x, A, S, alpha0 = make(dtype=F64)
    with torch.no_grad():
        first = op(x, A, **PARAMS, S=S, alpha0=alpha0, K=3)  # fills the cache
        assert torch.equal(op(x, A, **PARAMS, S=S, alpha0=alpha0, K=3), first)
        A.mul_(0.5)  # bumps A's version counter: the cached A^T A is stale
        cached = op(x, A, **PARAMS, S=S, alpha0=alpha0, K=3)
    fresh = op(x, A.clone().requires_grad_(), **PARAMS, S=S, alpha0=alpha0, K=3)  # no cache
    assert_close(cached, fresh.detach(), rtol=1e-14, atol=1e-14)
    assert (cached - first).abs().max() > 1e-3


@pytest.mark.parametrize(
    "change,exc,pattern",
    [
        (dict(x=torch.zeros(3, 5)), ValueError, r"x must be 3-D \[B, T, d\], got 2-D with shape \[3, 5\]"),
        (dict(x=torch.zeros(3, 5, 12, dtype=torch.int64)), TypeError,
         r"x must be float32 or float64, got Long"),
        (dict(A=torch.zeros(11, 16)), ValueError,
         r"A must have shape \[d, n\] with d = 12 \(x's last dim\), got \[11, 16\]"),
        (dict(A=torch.zeros(12, 16, dtype=F64)), TypeError, r"A must have x's dtype Float, got Double"),
        (dict(S=torch.zeros(3, 4)), ValueError, r"S must have shape \[B, T\] = \[3, 5\], got \[3, 4\]"),
        (dict(S=torch.zeros(3, 5, dtype=F64)), TypeError, r"S must have x's dtype Float, got Double"),
        (dict(alpha0=torch.zeros(2, 16)), ValueError,
         r"alpha0 must have shape \[B, n\] = \[3, 16\], got \[2, 16\]"),
        (dict(alpha0=torch.zeros(15)), ValueError,
         r"alpha0 must have shape \[B, n\] = \[3, 16\], got \[15\]"),
        (dict(K=0), ValueError, r"K \(ISTA steps per frame\) must be in \[1, 10000\], got 0"),
        (dict(K=2.0), TypeError, r"K must be an int, got float"),
        (dict(mode="relu"), ValueError, r"mode must be 'signed' or 'nonneg', got 'relu'"),
        (dict(gamma=torch.ones(1)), ValueError, r"gamma must be a number or a 0-d tensor, got shape \(1,\)"),
        (dict(lambda1="0.1"), TypeError, r"lambda1 must be a number or a 0-d tensor, got str"),
        (dict(S=[[1.0]]), TypeError, r"S must be a torch.Tensor, got list"),
    ],
)
def test_bad_arguments(change, exc, pattern):
    x, A, S, alpha0 = make()
    kw = dict(x=x, A=A, **PARAMS, S=S, alpha0=alpha0, K=3, mode="signed") | change
    with pytest.raises(exc, match=pattern):
        op(**kw)


def test_bad_arguments_of_the_ops():
    x, A, S, alpha0 = make()
    s = torch.tensor(1.0)
    with pytest.raises(ValueError, match=r"lambda2 must have shape \[\] \(a 0-d tensor\) = \[\], got \[1\]"):
        torch.ops.vadx.sista(x, A, None, s, s.reshape(1), s, S, alpha0, 3, "signed")
    with pytest.raises(ValueError, match=r"gram must have shape \[n, n\] \(A\^T A\) = \[16, 16\], got \[16, 15\]"):
        torch.ops.vadx.sista(x, A, torch.zeros(16, 15), s, s, s, S, alpha0, 3, "signed")
    codes, states = torch.ops.vadx.sista(x, A, None, s, s, s, S, alpha0, 3, "signed")
    with pytest.raises(ValueError, match=r"sista_backward: states must have shape \[T, K, B, n\] = "
                                         r"\[5, 3, 3, 16\], got \[5, 3, 2, 16\]"):
        torch.ops.vadx.sista_backward(codes, x, A, None, s, s, s, S, codes, states[:, :, :2], "signed")


@pytest.mark.parametrize("name", ["A", "S", "alpha0", "lambda1", "gamma"])
def test_argument_on_another_device_is_a_value_error(name):
    """A device mismatch is a bad argument like any other: ValueError naming the argument, the
    expected and the actual device. Meta vs CPU here; CPU vs CUDA in the CUDA test below."""
    x, A, S, alpha0 = make()
    kw = dict(x=x, A=A, lambda1=torch.tensor(0.05), lambda2=2.0, gamma=torch.tensor(4.0), S=S,
              alpha0=alpha0, K=3)
    with pytest.raises(ValueError, match=rf"sista: {name} must be on x's device cpu, got meta"):
        op(**(kw | {name: kw[name].to("meta")}))
    with pytest.raises(ValueError, match=r"sista: A must be on x's device meta, got cpu"):
        op(**(kw | {"x": x.to("meta")}))


@pytest.mark.parametrize("fn", [vadx.ops.reconstruction_error, vadx.ops.tsc_dictionary_step])
def test_helpers_name_an_argument_on_another_device(fn):
    x, A, _, _ = make()
    alpha = torch.zeros(3, 5, 16)
    args = (x, A, alpha) if fn is vadx.ops.reconstruction_error else (A, x, alpha, 0.1)
    name = fn.__name__
    with pytest.raises(ValueError, match=rf"{name}: alpha must be on x's device cpu, got meta"):
        fn(*[a.to("meta") if a is alpha else a for a in args])
    with pytest.raises(ValueError, match=rf"{name}: A must be on x's device cpu, got meta"):
        fn(*[a.to("meta") if a is A else a for a in args])


def test_cpu_scalars_follow_x_and_meta_tensors_give_shapes():
    # 0-d CPU tensors are moved to x's device, as PyTorch's ops take CPU scalars.
    x, A, S, alpha0 = (t.to("meta") for t in make())
    codes = op(x, A, torch.tensor(0.05), 2.0, torch.tensor(4.0), S, alpha0, K=3)
    assert codes.shape == (3, 5, 16) and codes.device.type == "meta"


def test_raw_ops_check_devices_too():
    # A meta tensor sends the raw ops to their fake kernels, which check like the C++ kernels.
    x, A, S, alpha0 = make()
    s = torch.tensor(1.0)
    with pytest.raises(ValueError, match=r"sista: gram must be on x's device cpu, got meta"):
        torch.ops.vadx.sista(x, A, torch.zeros(16, 16, device="meta"), s, s, s, S, alpha0, 3, "signed")
    with pytest.raises(ValueError, match=r"sista: lambda2 must be on x's device meta, got cpu"):
        m = [t.to("meta") for t in (x, A, S, alpha0)]
        torch.ops.vadx.sista(m[0], m[1], None, s.to("meta"), s, s.to("meta"), m[2], m[3], 3, "signed")
    codes, states = torch.ops.vadx.sista(x, A, None, s, s, s, S, alpha0, 3, "signed")
    with pytest.raises(ValueError, match=r"sista_backward: states must be on x's device cpu, got meta"):
        torch.ops.vadx.sista_backward(codes, x, A, None, s, s, s, S, codes, states.to("meta"), "signed")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_device_mismatch_is_a_value_error():
    x, A, S, alpha0 = make()
    s = torch.tensor(1.0)
    with pytest.raises(ValueError, match=r"sista: A must be on x's device cuda:0, got cpu"):
        op(x.cuda(), A, **PARAMS, S=S.cuda(), alpha0=alpha0.cuda(), K=3)
    with pytest.raises(ValueError, match=r"sista: S must be on x's device cpu, got cuda:0"):
        op(x, A, **PARAMS, S=S.cuda(), alpha0=alpha0, K=3)
    with pytest.raises(ValueError, match=r"sista: gamma must be on x's device cpu, got cuda:0"):
        op(x, A, 0.05, 2.0, torch.tensor(4.0, device="cuda"), S, alpha0, K=3)
    # The raw op goes to the CUDA kernel, whose C++ check raises the same ValueError.
    c = [t.cuda() for t in (x, A, s, S, alpha0)]
    with pytest.raises(ValueError, match=r"sista: alpha0 must be on x's device cuda:0, got cpu"):
        torch.ops.vadx.sista(c[0], c[1], None, c[2], c[2], c[2], c[3], alpha0, 3, "signed")
    with pytest.raises(ValueError, match=r"sista: lambda1 must be on x's device cuda:0, got cpu"):
        torch.ops.vadx.sista(c[0], c[1], None, s, c[2], c[2], c[3], c[4], 3, "signed")
    if torch.cuda.device_count() > 1:
        with pytest.raises(ValueError, match=r"sista: A must be on x's device cuda:0, got cuda:1"):
            op(c[0], A.to("cuda:1"), **PARAMS, S=c[3], alpha0=c[4], K=3)


def test_cpu_float32_products_run_on_onednn():
    """The CPU kernels' float32 GEMMs run on oneDNN's matmul, an op internal to ATen that they find
    by name and schema; a torch that changed it would make them fall back to at::mm silently (half
    the speed at the paper's sizes). The counters say which path each product took. On Intel CPUs
    products with an inner dimension up to mkl_max_k (small dictionaries) take at::mm on purpose
    (MKL's sgemm is the faster one there)."""
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch is built without oneDNN")
    counts = vadx._C.sista_cpu_gemm_counts
    assert counts()["onednn_available"], (
        "sista's CPU kernel did not find mkldnn::_linear_pointwise(X, W, B, attr, scalars, "
        f"algorithm) in torch {torch.__version__}: its float32 products fall back to at::mm"
    )
    mkl_max_k = counts()["mkl_max_k"]
    x, A, S, alpha0 = make(B=2, T=3, d=mkl_max_k + 6, n=mkl_max_k + 6)

    def products(*args):
        before = counts()
        op(*args, **PARAMS, S=S.to(args[0].dtype), alpha0=alpha0.to(args[0].dtype), K=2)
        after = counts()
        return after["onednn"] - before["onednn"], after["mm"] - before["mm"]

    onednn, mm = products(x, A)  # float32 contiguous: every product on oneDNN
    assert onednn > 0 and mm == 0, f"float32 products: {onednn} on oneDNN, {mm} fell back to at::mm"
    onednn, mm = products(x.double(), A.double())  # float64: BLAS, and the counters see it
    assert onednn == 0 and mm > 0
    if mkl_max_k > 0:  # small dictionaries on Intel: the steps' products (k = n) on at::mm
        x, A, S, alpha0 = make(B=2, T=3, d=mkl_max_k + 6, n=mkl_max_k)
        onednn, mm = products(x, A)
        assert mm >= 3 * 2 and onednn <= 1, f"float32 products: {onednn} on oneDNN, {mm} on at::mm"


def test_opcheck(device):
    x, A, S, alpha0 = make(B=2, T=3, d=4, n=5, dtype=F64, device=device)
    scalars = [torch.tensor(v, dtype=F64, device=device, requires_grad=True) for v in (0.05, 1.5, 3.0)]
    x, A, S, alpha0 = (t.requires_grad_() for t in (x, A, S, alpha0))
    gram = (A.detach().T @ A.detach()).requires_grad_()
    for g, mode in ((None, "signed"), (gram, "nonneg")):
        torch.library.opcheck(torch.ops.vadx.sista.default, (x, A, g, *scalars, S, alpha0, 2, mode))
    torch.library.opcheck(torch.ops.vadx.sista.default,
                          (x[:, :0], A, None, *scalars, S[:, :0], alpha0, 2, "signed"))  # T = 0
    codes, states = torch.ops.vadx.sista(x, A, None, *scalars, S, alpha0, 2, "signed")
    plain = [t.detach() for t in (x, A, *scalars, S, codes)]
    grad = torch.randn_like(plain[-1])
    for g in (None, gram.detach()):
        torch.library.opcheck(torch.ops.vadx.sista_backward.default,
                              (grad, *plain[:2], g, *plain[2:], states, "signed"))


def test_torch_compile_fullgraph():
    x, A, S, alpha0 = make()
    gamma = torch.tensor(4.0, requires_grad=True)
    A = A.requires_grad_()

    def f(x, A, gamma, S, alpha0):
        codes = op(x, A, 0.05, 2.0, gamma, S, alpha0, 3)
        return vadx.ops.reconstruction_error(x, A, codes).mean()

    compiled = torch.compile(f, fullgraph=True)
    loss, expected = compiled(x, A, gamma, S, alpha0), f(x, A, gamma, S, alpha0)
    assert_close(loss, expected)
    grads = torch.autograd.grad(loss, (A, gamma))
    for a, b in zip(grads, torch.autograd.grad(expected, (A, gamma))):
        assert_close(a, b)


def test_reconstruction_error():
    x, A, S, alpha0 = make(dtype=F64)
    codes = op(x, A, **PARAMS, S=S, alpha0=alpha0, K=3)
    err = vadx.ops.reconstruction_error(x, A, codes)
    assert err.shape == (3, 5)
    assert_close(err[1, 2], ((x[1, 2] - A @ codes[1, 2]) ** 2).sum())
    with pytest.raises(ValueError, match=r"alpha must have shape \(3, 5, 16\) .* got \(3, 5, 15\)"):
        vadx.ops.reconstruction_error(x, A, codes[..., :15])
    with pytest.raises(ValueError, match=r"x must have shape \[..., d\] with d = 12 .* got \(3, 5, 11\)"):
        vadx.ops.reconstruction_error(x[..., :11], A, codes)


def test_tsc_dictionary_step():
    x, A, S, alpha0 = make(B=4, T=6, dtype=F64)
    codes = op(x, A, **PARAMS, S=S, alpha0=alpha0, K=3)
    A_before = A.clone()
    new = vadx.ops.tsc_dictionary_step(A, x, codes, lr=0.05)
    assert torch.equal(A, A_before) and not new.requires_grad
    # The documented step: gradient of the mean squared error, then column norms clipped to 1.
    X, C = x.reshape(-1, 12), codes.reshape(-1, 16)
    step = A + 0.05 * 2 / X.shape[0] * (X - C @ A.T).T @ C
    assert_close(new, step / torch.linalg.vector_norm(step, dim=0).clamp_min(1.0))
    assert (torch.linalg.vector_norm(new, dim=0) <= 1 + 1e-12).all()
    mse = lambda D: vadx.ops.reconstruction_error(x, D, codes).mean()  # noqa: E731
    assert mse(vadx.ops.tsc_dictionary_step(A, x, codes, lr=0.01)) < mse(A)
    short = A * 0.5  # columns shorter than 1 are not projected
    assert_close(vadx.ops.tsc_dictionary_step(short, x[:0], codes[:0], lr=1.0), short)


# --- issue 21 B1: nothing lost, nothing crashes -------------------------------------------------


@pytest.mark.parametrize(
    "name,value,pattern",
    [
        ("gamma", 0.0, r"gamma \(step parameter, 1/step size\) must be finite and > 0, got 0"),
        ("gamma", -4.0, r"gamma .* must be finite and > 0, got -4"),
        ("gamma", float("nan"), r"gamma .* must be finite and > 0, got nan"),
        ("gamma", float("inf"), r"gamma .* must be finite and > 0, got inf"),
        ("lambda1", -0.05, r"lambda1 \(sparsity weight\) must be finite and >= 0, got -0.05"),
        ("lambda1", float("inf"), r"lambda1 .* must be finite and >= 0, got inf"),
        ("lambda2", float("nan"), r"lambda2 \(temporal-coherence weight\) must be finite, got nan"),
        ("lambda2", float("-inf"), r"lambda2 .* must be finite, got -inf"),
    ],
)
def test_sista_rejects_bad_scalar_values(name, value, pattern):
    """gamma <= 0, lambda1 < 0 and non-finite scalars used to run and return garbage codes."""
    x, A, S, alpha0 = make()
    kw = dict(x=x, A=A, **PARAMS, S=S, alpha0=alpha0, K=3)
    for v in (value, torch.tensor(value)):  # a number, and a 0-d tensor
        with pytest.raises(ValueError, match=pattern):
            op(**(kw | {name: v}))
    s = {k: torch.tensor(float(v)) for k, v in PARAMS.items()} | {name: torch.tensor(value)}
    with pytest.raises(ValueError, match=pattern):  # the raw op checks too
        torch.ops.vadx.sista(x, A, None, s["lambda1"], s["lambda2"], s["gamma"], S, alpha0, 3, "signed")


def test_sista_k_is_bounded():
    """K = 1e6 ran for 23 s without a way to interrupt it: K has a documented bound."""
    import time

    x, A, S, alpha0 = make(B=1, T=1, d=4, n=4)
    assert vadx.ops.sista.__module__ == "vadx.ops.sista"
    from vadx.ops.sista import MAX_K

    assert MAX_K == 10000
    for K in (MAX_K + 1, 10**6):
        start = time.perf_counter()
        with pytest.raises(ValueError, match=rf"K \(ISTA steps per frame\) must be in \[1, 10000\], got {K}"):
            op(x, A, **PARAMS, S=S, alpha0=alpha0, K=K)
        with pytest.raises(ValueError, match=rf"must be in \[1, 10000\], got {K}"):
            s = torch.tensor(1.0)
            torch.ops.vadx.sista(x, A, None, s, s, torch.tensor(4.0), S, alpha0, K, "signed")
        assert time.perf_counter() - start < 1.0
    # the bound itself is accepted, and matches the reference
    x, A, S, alpha0 = make(B=1, T=1, d=4, n=4, dtype=F64)
    assert_close(op(x, A, **PARAMS, S=S, alpha0=alpha0, K=MAX_K),
                 reference.sista(x, A, **PARAMS, S=S, alpha0=alpha0, K=MAX_K), rtol=1e-12, atol=1e-12)


class _RecordSista(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the keep_states argument and the states shape of every vadx::sista call."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.vadx.sista.default:
            keep = args[10] if len(args) > 10 else (kwargs or {}).get("keep_states", True)
            self.calls.append((keep, tuple(out[1].shape)))
        return out


@pytest.mark.parametrize("mode", ["signed", "nonneg"])
@pytest.mark.parametrize("K", [1, 2, 3, 4])
def test_inference_sista_allocates_no_states(device, K, mode):
    """Inference (no grad) ran the same as training and kept the [T, K, B, n] states for a
    backward that never comes; it now runs in two [B, n] buffers, with identical codes."""
    x, A, S, alpha0 = make(dtype=F64, device=device)
    s = [torch.tensor(v, dtype=F64, device=device) for v in PARAMS.values()]
    kept, kept_states = torch.ops.vadx.sista(x, A, None, *s, S, alpha0, K, mode, True)
    lean, no_states = torch.ops.vadx.sista(x, A, None, *s, S, alpha0, K, mode, False)
    assert kept_states.shape == (5, K, 3, 16) and no_states.shape == (5, 0, 3, 16)
    assert torch.equal(kept, lean)
    assert_close(lean, reference.sista(x, A, **PARAMS, S=S, alpha0=alpha0, K=K, mode=mode),
                 rtol=1e-13, atol=1e-13)
    # the wrapper asks for the states only when a gradient will be needed
    rec = _RecordSista()
    with rec:
        with torch.no_grad():
            op(x, A.requires_grad_(), **PARAMS, S=S, alpha0=alpha0, K=K, mode=mode)
        op(x, A.detach(), **PARAMS, S=S, alpha0=alpha0, K=K, mode=mode)
        codes = op(x, A.requires_grad_(), **PARAMS, S=S, alpha0=alpha0, K=K, mode=mode)
    assert rec.calls == [(False, (5, 0, 3, 16)), (False, (5, 0, 3, 16)), (True, (5, K, 3, 16))]
    codes.sum().backward()  # and backward still works from the kept states
    assert A.grad is not None and torch.isfinite(A.grad).all()


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), float("-inf"), 0.0, -0.1])
def test_tsc_dictionary_step_rejects_bad_lr(lr):
    """lr=nan was accepted and returned a NaN dictionary."""
    x, A, S, alpha0 = make(dtype=F64)
    codes = op(x, A, **PARAMS, S=S, alpha0=alpha0, K=3)
    with pytest.raises(ValueError, match=rf"tsc_dictionary_step: lr must be finite and > 0, got {lr!r}"):
        vadx.ops.tsc_dictionary_step(A, x, codes, lr=lr)
    with pytest.raises(TypeError, match=r"tsc_dictionary_step: lr must be a number, got str"):
        vadx.ops.tsc_dictionary_step(A, x, codes, lr="0.1")
    assert torch.isfinite(vadx.ops.tsc_dictionary_step(A, x, codes, lr=torch.tensor(0.05))).all()
