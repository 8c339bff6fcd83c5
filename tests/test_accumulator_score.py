"""accumulator_score (DESIGN.md op 4) against its plain-PyTorch references."""

import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

import vadx
from vadx.ops import reference

op = vadx.ops.accumulator_score


def _assert_matches_reference(sigma, **kw):
    s, x = op(sigma, **kw)
    s_ref, x_ref = reference.accumulator_score(sigma.cpu(), **kw_cpu(kw))
    assert s.dtype == sigma.dtype and s.shape == sigma.shape
    assert x.dtype == torch.float64
    tol = {torch.float16: 1e-3, torch.bfloat16: 8e-3}.get(sigma.dtype)
    assert_close(s.cpu(), s_ref, equal_nan=True, rtol=tol, atol=tol)
    assert_close(x.cpu(), x_ref, rtol=0, atol=1e-9, equal_nan=True)
    return s, x


def kw_cpu(kw):
    return {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("decay", ["symmetric", "paper"])
@pytest.mark.parametrize("tau,nu", [(0.5, 2.0), (0.3, 0.7), (0.9, 5.0), (0.0, 1.0)])
def test_matches_reference_random(device, dtype, decay, tau, nu):
    g = torch.Generator().manual_seed(7)
    sigma = torch.rand(5, 300, generator=g, dtype=dtype).to(device)
    x0 = (torch.rand(5, generator=g, dtype=torch.float64) * 8 - 4).to(device)
    _assert_matches_reference(sigma, tau=tau, nu=nu, lb=-5.0, ub=6.0, x0=x0, decay=decay)


def test_matches_scan_reference_long_stream(device):
    # Few long streams take the parallel-scan path on CPU (more threads than streams).
    sigma = torch.rand(1, 100_003, generator=torch.Generator().manual_seed(1)).to(device)
    sigma[0, 10:20] = float("nan")
    s, x = op(sigma)
    s_ref, x_ref = reference.accumulator_score_scan(sigma.cpu())
    assert_close(s.cpu(), s_ref, equal_nan=True)
    assert_close(x.cpu(), x_ref, rtol=0, atol=1e-9)


def test_scan_path_equals_sequential_path():
    sigma = torch.rand(2, 200_000, generator=torch.Generator().manual_seed(2))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        s_seq, x_seq = op(sigma)
        torch.set_num_threads(4)  # B = 2 < 4 threads and T long: the scan over time
        s_scan, x_scan = op(sigma)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(s_seq, s_scan)
    assert_close(x_scan, x_seq, rtol=0, atol=1e-12)


def test_edge_values(device):
    T = 40
    cases = {
        "all_zero": torch.zeros(T),
        "all_one": torch.ones(T),
        "exactly_tau": torch.full((T,), 0.5),
        "alternating": torch.tensor([0.0, 1.0] * (T // 2)),
    }
    for name, sigma in cases.items():
        s, x = _assert_matches_reference(sigma.to(device), tau=0.5, nu=2.0)
        if name == "all_zero":  # starts at lb and can only fall: stays at lb
            assert_close(s.cpu(), torch.full((T,), 1 / (1 + math.exp(7.0))))
        if name == "all_one":  # rises by nu per frame and saturates at ub
            assert x.item() == 7.0
            assert_close(s[0].cpu(), torch.tensor(1 / (1 + math.exp(5.0))))
        if name == "exactly_tau":  # sigma == tau is a rise of Delta+ = 0: x stays at x0
            assert x.item() == -7.0


def test_tau_zero_never_divides_by_zero(device):
    sigma = torch.tensor([0.0, 0.0, 0.3, 1.0], dtype=torch.float64, device=device)
    s, x = _assert_matches_reference(sigma, tau=0.0, nu=1.0, decay="symmetric")
    assert torch.isfinite(s).all()
    assert x.item() == pytest.approx(-7.0 + 1.3, abs=1e-12)


def test_paper_decay_is_clipped(device):
    # paper rule: Delta- = clip((1 - sigma - tau) / (1 - tau), 0, 1); with tau = 0.7 and
    # sigma = 0.5 it is clipped to 0, so the accumulator holds below tau.
    sigma = torch.tensor([1.0, 0.5, 0.5], dtype=torch.float64, device=device)
    s, x = op(sigma, tau=0.7, nu=1.0, x0=0.0, decay="paper")
    assert x.item() == 1.0
    s_sym, x_sym = op(sigma, tau=0.7, nu=1.0, x0=0.0, decay="symmetric")
    assert_close(x_sym.cpu(), torch.tensor(1.0 - 2 * (0.2 / 0.7), dtype=torch.float64))


def test_zero_size(device):
    s, x = op(torch.empty(3, 0, device=device), x0=torch.tensor([1.0, 2.0, 3.0], device=device))
    assert s.shape == (3, 0) and torch.equal(x.cpu(), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    s, x = op(torch.empty(0, 9, device=device))
    assert s.shape == (0, 9) and x.shape == (0,)
    s, x = op(torch.empty(0, device=device))
    assert s.shape == (0,) and x.item() == -7.0


def test_non_contiguous(device):
    base = torch.rand(300, 6, generator=torch.Generator().manual_seed(3)).to(device)
    sigma = base.t()  # [6, 300], strides (1, 6)
    assert not sigma.is_contiguous()
    s, x = _assert_matches_reference(sigma)
    s_c, x_c = op(sigma.contiguous())
    assert torch.equal(s, s_c) and torch.equal(x, x_c)
    _assert_matches_reference(base[::2, 1])  # strided 1-D


def test_nan_frame_scores_nan_and_accumulator_holds(device):
    sigma = torch.tensor([0.9, 0.9, float("nan"), 0.9, float("nan")], device=device)
    s, x = _assert_matches_reference(sigma)
    assert torch.isnan(s[2]) and torch.isnan(s[4])
    without = op(sigma[torch.tensor([0, 1, 3])])
    assert_close(s[torch.tensor([0, 1, 3], device=device)], without[0])
    assert x.item() == without[1].item()


def test_out_of_range_sigma_is_clipped(device):
    sigma = torch.tensor([1.7, -0.4, 0.9], device=device)
    s, _ = op(sigma)
    s_clipped, _ = op(sigma.clamp(0, 1))
    assert torch.equal(s, s_clipped)


@pytest.mark.parametrize("T", [1000, 150_000])
def test_streaming_in_chunks_equals_one_shot(device, T):
    g = torch.Generator().manual_seed(T)
    sigma = torch.rand(2, T, generator=g).to(device)
    s_all, x_all = op(sigma, decay="paper")
    cuts = sorted(torch.randint(0, T, (6,), generator=g).tolist()) + [T]
    parts, x, start = [], None, 0
    for end in cuts:
        s, x = op(sigma[:, start:end], x0=x, decay="paper")
        parts.append(s)
        start = end
    assert torch.equal(torch.cat(parts, dim=1), s_all)
    assert_close(x, x_all, rtol=0, atol=1e-12)


def test_one_dimensional_input_and_scalar_x0():
    sigma = torch.rand(50, dtype=torch.float64)
    s, x = op(sigma, x0=torch.tensor(1.5))
    s2, x2 = op(sigma[None], x0=torch.tensor([1.5]))
    assert s.shape == (50,) and x.shape == ()
    assert torch.equal(s, s2[0]) and torch.equal(x, x2[0])
    assert torch.equal(op(sigma, x0=1.5)[0], s)


def test_half_and_bfloat16():
    sigma = torch.rand(3, 200, generator=torch.Generator().manual_seed(4))
    for dtype in (torch.float16, torch.bfloat16):
        _assert_matches_reference(sigma.to(dtype))


def test_sigma_gradient_is_not_tracked():
    sigma = torch.rand(2, 10, requires_grad=True)
    s, x = op(sigma)
    assert not s.requires_grad and not x.requires_grad


@pytest.mark.parametrize(
    "kwargs,exc,pattern",
    [
        ({"tau": 1.0}, ValueError, r"tau must be in \[0, 1\), got 1"),
        ({"tau": -0.1}, ValueError, r"tau must be in \[0, 1\), got -0.1"),
        ({"nu": 0.0}, ValueError, r"nu must be finite and > 0, got 0"),
        ({"nu": float("nan")}, ValueError, r"nu must be finite and > 0, got nan"),
        ({"lb": 3.0, "ub": 3.0}, ValueError, r"need finite lb < ub, got lb=3, ub=3"),
        ({"lb": 1.0, "ub": -1.0}, ValueError, r"lb=1, ub=-1"),
        ({"decay": "linear"}, ValueError, r"decay must be 'symmetric' or 'paper', got 'linear'"),
        ({"x0": torch.zeros(3)}, ValueError, r"x0 must have shape \[B\] = \[2\].*got \[3\]"),
        ({"x0": "a"}, TypeError, r"x0 must be None, a number or a Tensor, got str"),
    ],
)
def test_bad_arguments(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        op(torch.rand(2, 5), **kwargs)


def test_bad_sigma():
    with pytest.raises(ValueError, match=r"sigma must be \[T\] or \[B, T\], got 3-D with shape \(1, 2, 3\)"):
        op(torch.rand(1, 2, 3))
    with pytest.raises(TypeError, match=r"sigma must be a floating-point tensor, got Long"):
        op(torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match=r"sigma must be a torch.Tensor, got list"):
        op([0.1, 0.2])
    # The raw op checks too (nothing reaches a kernel unchecked).
    with pytest.raises(TypeError, match=r"x0 must be float64 .* got Float"):
        torch.ops.vadx.accumulator_score(torch.rand(2, 3), 0.5, 2.0, -7.0, 7.0, torch.zeros(2), "paper")
    with pytest.raises(ValueError, match=r"sigma must be 2-D \[B, T\], got 1-D"):
        torch.ops.vadx.accumulator_score(torch.rand(3), 0.5, 2.0, -7.0, 7.0, torch.zeros(1, dtype=torch.float64), "paper")


def test_x0_on_another_device_is_a_value_error():
    """A device mismatch is a bad argument like any other: ValueError naming the argument, the
    expected and the actual device. Meta vs CPU here (a meta tensor sends the raw op to its fake
    kernel, which checks too); CPU vs CUDA in the CUDA test below."""
    x0 = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"accumulator_score: x0 must be on sigma's device cpu, got meta"):
        op(torch.rand(2, 5), x0=x0.to("meta"))
    with pytest.raises(ValueError, match=r"accumulator_score: x0 must be on sigma's device meta, got cpu"):
        op(torch.rand(2, 5, device="meta"), x0=x0)
    raw = torch.ops.vadx.accumulator_score
    with pytest.raises(ValueError, match=r"accumulator_score: x0 must be on sigma's device cpu, got meta"):
        raw(torch.rand(2, 5), 0.5, 2.0, -7.0, 7.0, x0.to("meta"), "symmetric")
    with pytest.raises(ValueError, match=r"accumulator_score: x0 must be on sigma's device meta, got cpu"):
        raw(torch.rand(2, 5, device="meta"), 0.5, 2.0, -7.0, 7.0, x0, "symmetric")
    s, x = op(torch.rand(2, 5, device="meta"))  # all on meta: shapes only
    assert s.shape == (2, 5) and x.shape == (2,) and x.device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_device_mismatch_is_a_value_error():
    # The raw op goes to the CUDA kernel, whose C++ check raises the same ValueError.
    x0 = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"x0 must be on sigma's device cuda:0, got cpu"):
        op(torch.rand(2, 5, device="cuda"), x0=x0)
    with pytest.raises(ValueError, match=r"x0 must be on sigma's device cpu, got cuda:0"):
        op(torch.rand(2, 5), x0=x0.cuda())
    raw = torch.ops.vadx.accumulator_score
    with pytest.raises(ValueError, match=r"x0 must be on sigma's device cuda:0, got cpu"):
        raw(torch.rand(2, 5, device="cuda"), 0.5, 2.0, -7.0, 7.0, x0, "symmetric")
    with pytest.raises(ValueError, match=r"x0 must be on sigma's device cpu, got cuda:0"):
        raw(torch.rand(2, 5), 0.5, 2.0, -7.0, 7.0, x0.cuda(), "symmetric")
    if torch.cuda.device_count() > 1:
        with pytest.raises(ValueError, match=r"x0 must be on sigma's device cuda:0, got cuda:1"):
            raw(torch.rand(2, 5, device="cuda"), 0.5, 2.0, -7.0, 7.0, x0.to("cuda:1"), "symmetric")


def test_opcheck(device):
    for sigma in (torch.rand(3, 17), torch.rand(1, 40000, dtype=torch.float64), torch.rand(2, 0)):
        sigma = sigma.to(device)
        x0 = torch.linspace(-1, 1, sigma.shape[0], dtype=torch.float64, device=device)
        torch.library.opcheck(
            torch.ops.vadx.accumulator_score.default, (sigma, 0.4, 1.5, -6.0, 6.0, x0, "paper")
        )


def test_torch_compile_fullgraph():
    def f(sigma, x0):
        s, x = op(sigma, tau=0.6, x0=x0)
        return s.mean(dim=1) * 2, x + 1

    sigma = torch.rand(4, 64)
    x0 = torch.zeros(4, dtype=torch.float64)
    compiled = torch.compile(f, fullgraph=True)
    for a, b in zip(compiled(sigma, x0), f(sigma, x0)):
        assert_close(a, b)


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.one_of(st.floats(0, 1), st.just(float("nan")), st.floats(-2, 3)), min_size=0, max_size=60
    ),
    tau=st.floats(0, 0.99),
    nu=st.floats(0.01, 10),
    lb=st.floats(-10, 0),
    width=st.floats(0.01, 20),
    decay=st.sampled_from(["symmetric", "paper"]),
)
@example(data=[1.0, 0.0], tau=5e-324, nu=1.0, lb=0.0, width=1.0, decay="symmetric")  # 1/tau = inf
def test_property_matches_both_references(data, tau, nu, lb, width, decay):
    sigma = torch.tensor(data, dtype=torch.float64)
    kw = dict(tau=tau, nu=nu, lb=lb, ub=lb + width, decay=decay)
    s, x = op(sigma, **kw)
    for ref in (reference.accumulator_score, reference.accumulator_score_scan):
        s_ref, x_ref = ref(sigma, **kw)
        assert_close(s, s_ref, equal_nan=True, rtol=1e-12, atol=1e-12)
        assert_close(x, x_ref, rtol=1e-12, atol=1e-12)
    finite = s[~torch.isnan(s)]
    assert ((finite >= 1 / (1 + math.exp(-lb)) - 1e-12) & (finite <= 1 / (1 + math.exp(-(lb + width))) + 1e-12)).all()


# --- issue 21 B1: nothing lost, nothing crashes -------------------------------------------------


@pytest.mark.parametrize("nu", [1e300, 1e308, float.fromhex("0x1.fffffffffffffp+1023")])
@pytest.mark.parametrize("decay", ["symmetric", "paper"])
def test_accumulator_score_huge_nu_is_defined_and_nan_free(device, nu, decay):
    """nu = 1e308 made the scan reference (and the scan kernels: long CPU streams, CUDA) NaN:
    composed increments overflowed to inf and inf - inf = NaN. Composed shifts now saturate at
    2^1000 (exact for |x0|, |lb|, |ub| <= 2^999): every frame jumps straight to lb or ub."""
    g = torch.Generator().manual_seed(0)
    sigma = torch.rand(2, 20000, generator=g, dtype=torch.float64)  # long: the CPU scan path too
    sigma[0, 100:110] = float("nan")
    x0 = torch.tensor([-3.0, 1e300], dtype=torch.float64)
    s, x = op(sigma.to(device), nu=nu, x0=x0.to(device), decay=decay)
    s_seq, x_seq = reference.accumulator_score(sigma, nu=nu, x0=x0, decay=decay)
    s_scan, x_scan = reference.accumulator_score_scan(sigma, nu=nu, x0=x0, decay=decay)
    assert_close(s.cpu(), s_seq, equal_nan=True, rtol=0, atol=0)
    assert_close(s_scan, s_seq, equal_nan=True, rtol=0, atol=0)
    assert_close(x.cpu(), x_seq, rtol=0, atol=0)
    assert_close(x_scan, x_seq, rtol=0, atol=0)
    valid = ~torch.isnan(sigma)
    assert not torch.isnan(s.cpu()[valid]).any() and torch.isnan(s.cpu()[~valid]).all()
    # the sequential kernel path (many streams) agrees with the scan path
    many = sigma[:1].expand(8, -1).contiguous()
    s_many, _ = op(many.to(device), nu=nu, decay=decay)
    s_one, _ = op(sigma[:1].to(device), nu=nu, decay=decay)
    assert_close(s_many[:1].cpu(), s_one.cpu(), equal_nan=True, rtol=0, atol=0)
