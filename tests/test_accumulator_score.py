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


# --- issue 21: the vectorised CPU kernel (lanes across streams, runtime ISA dispatch) -----------


def _same(a, b):
    """Equal values, NaN where the other is NaN (torch.equal treats NaN as unequal)."""
    nan = torch.isnan(a)
    return torch.equal(nan, torch.isnan(b)) and torch.equal(a[~nan], b[~nan])


def _drifting(B, T, seed, dtype):
    """Confidences around tau with bounds far away: the state never clips, so the scan's composed
    block entries round differently from frame-by-frame stepping (its check must re-replay), and
    float64 scores show any last-bit difference of the state."""
    g = torch.Generator().manual_seed(seed)
    sigma = (0.5 + 1e-3 * torch.randn(B, T, generator=g, dtype=torch.float64)).to(dtype)
    sigma[:, 777::5003] = float("nan")
    return sigma, dict(tau=0.5, nu=0.37, lb=-1e6, ub=1e6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("data", ["random", "drifting"])
def test_accumulator_score_paths_agree_bit_for_bit(dtype, data):
    """A stream's scores and final state are the same bits whichever path computes them: alone
    (few streams: the parallel scan over time), in a batch of 67 (lanes across streams, the last
    group partial), on one thread, and chunk by chunk."""
    T = 70_001
    if data == "random":
        sigma = torch.rand(3, T, generator=torch.Generator().manual_seed(5), dtype=dtype)
        sigma[1, 100:130] = float("nan")
        kw = dict(tau=0.4, nu=1.3, lb=-5.0, ub=4.0, decay="paper")
    else:
        sigma, kw = _drifting(3, T, 6, dtype)
    x0 = torch.tensor([0.25, -3.0, 2.0], dtype=torch.float64)
    alone = [op(sigma[b], x0=x0[b], **kw) for b in range(3)]
    batch = torch.rand(67, T, generator=torch.Generator().manual_seed(7), dtype=dtype)
    rows = [0, 33, 66]  # the first group, a middle one, the partial last group
    batch[rows] = sigma
    x0_batch = torch.zeros(67, dtype=torch.float64)
    x0_batch[rows] = x0
    s_batch, x_batch = op(batch, x0=x0_batch, **kw)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        s_one, x_one = op(sigma, x0=x0, **kw)
    finally:
        torch.set_num_threads(threads)
    cuts = [0, 1, 4000, 4099, 40_000, T]
    x, parts = x0, []
    for a, b in zip(cuts, cuts[1:]):
        s, x = op(sigma[:, a:b], x0=x, **kw)
        parts.append(s)
    s_chunks = torch.cat(parts, dim=1)
    for b, r in enumerate(rows):
        s_alone, x_alone = alone[b]
        for s_other, x_other in ((s_batch[r], x_batch[r]), (s_one[b], x_one[b]), (s_chunks[b], x[b])):
            assert _same(s_other, s_alone)
            assert x_other.item() == x_alone.item()
    s_ref, x_ref = reference.accumulator_score(sigma, x0=x0, **kw)
    assert_close(s_batch[rows], s_ref, equal_nan=True)
    assert_close(x_batch[rows], x_ref, rtol=1e-12, atol=1e-6)


def test_accumulator_score_nan_frames_hold_a_state_outside_the_bounds():
    """A NaN frame is the identity even before the first clip: x0 beyond ub is held, not clipped,
    until a real confidence moves it (the vector kernel turns NaN into bounds that clip nothing)."""
    sigma = torch.tensor([[float("nan"), float("nan"), 0.2, float("nan"), 1.0]] * 20)
    x0 = torch.full((20,), 100.0, dtype=torch.float64)
    s, x = op(sigma, x0=x0, nu=1.0)
    s_ref, x_ref = reference.accumulator_score(sigma, x0=x0, nu=1.0)
    assert_close(s, s_ref, equal_nan=True) and torch.equal(x, x_ref)
    assert torch.isnan(s[:, [0, 1, 3]]).all() and x[0].item() == 7.0
    s_one, x_one = op(sigma[0, :2], x0=100.0)  # only NaN frames: the state is x0
    assert torch.isnan(s_one).all() and x_one.item() == 100.0


def test_accumulator_score_infinite_confidences_are_clipped_not_missing():
    sigma = torch.tensor([float("inf"), float("-inf"), 0.9, float("inf")], dtype=torch.float64)
    s, x = _assert_matches_reference(sigma)
    assert not torch.isnan(s).any()
    assert torch.equal(s, op(sigma.clamp(0, 1))[0])


def test_accumulator_score_rejects_float8():
    sigma = torch.rand(2, 5).to(torch.float8_e4m3fn)
    with pytest.raises(TypeError, match=r"sigma must be float32, float64, float16 or bfloat16, got Float8_e4m3fn"):
        op(sigma)


_ISA_SCRIPT = """
import sys, torch, vadx
from torch.testing import assert_close
from vadx.ops import reference
print(torch.backends.cpu.get_cpu_capability())
g = torch.Generator().manual_seed(0)
for dtype in (torch.float32, torch.float64):
    sigma = torch.rand(37, 3001, generator=g, dtype=dtype)
    sigma[5, 10:20] = float("nan")
    for kw in (dict(), dict(tau=0.3, nu=0.7, lb=-5.0, ub=6.0, decay="paper")):
        s, x = vadx.ops.accumulator_score(sigma, **kw)
        s_ref, x_ref = reference.accumulator_score(sigma, **kw)
        assert_close(s, s_ref, equal_nan=True)
        assert_close(x, x_ref, rtol=0, atol=1e-9)
        s1, x1 = vadx.ops.accumulator_score(sigma[:, :1234], **kw)
        s2, x2 = vadx.ops.accumulator_score(sigma[:, 1234:], x0=x1, **kw)
        both = torch.cat([s1, s2], 1)
        assert torch.equal(both.isnan(), s.isnan()) and torch.equal(both[~s.isnan()], s[~s.isnan()])
        assert torch.equal(x2, x)
    long = torch.rand(1, 200_000, generator=g, dtype=dtype)  # the scan over time
    s, x = vadx.ops.accumulator_score(long)
    s_ref, x_ref = reference.accumulator_score_scan(long)
    assert_close(s, s_ref, equal_nan=True)
    s_many, x_many = vadx.ops.accumulator_score(long.expand(40, -1).contiguous())
    assert torch.equal(s_many[17], s[0]) and torch.equal(x_many[17], x[0])
print("ok")
"""


@pytest.mark.parametrize("capability", ["default", "avx2", "avx512"])
def test_accumulator_score_every_compiled_isa(capability):
    """Each per-capability build of the kernel (chosen at run time like ATen's, here forced with
    ATEN_CPU_CAPABILITY) matches the reference and streams bit for bit."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability)
    run = subprocess.run([sys.executable, "-c", _ISA_SCRIPT], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    got, status = run.stdout.split()[:2]
    if got != capability.upper():
        pytest.skip(f"this CPU runs {got}, not {capability}")
    assert status == "ok"


@pytest.mark.parametrize("name", ["tau", "nu", "lb", "ub"])
@pytest.mark.parametrize("value", ["x", None, [0.5], True, torch.tensor([0.5, 0.6])])
def test_accumulator_score_scalar_that_is_not_a_number_is_a_type_error(name, value):
    """Found by bench/fuzz.py: float(tau) raised "could not convert string to float: 'x'" (no
    argument named), and a non-str decay reached the op's schema check."""
    with pytest.raises(TypeError, match=rf"accumulator_score: {name} must be a real number, got"):
        op(torch.rand(2, 5), **{name: value})
    with pytest.raises(TypeError, match=r"decay must be 'symmetric' or 'paper', got 3"):
        op(torch.rand(2, 5), decay=3)
    with pytest.raises(ValueError, match=r"accumulator_score: ub must fit a float64"):
        op(torch.rand(2, 5), ub=10**400)
    sigma = torch.rand(2, 5)
    assert torch.equal(op(sigma, tau=torch.tensor(0.25))[0], op(sigma, tau=0.25)[0])  # 0-d: a number
