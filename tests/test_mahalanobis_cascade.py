"""mahalanobis_cascade and fit_gaussian (DESIGN.md op 1) against the reference, SciPy and scikit-learn."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis
from sklearn.covariance import EmpiricalCovariance, LedoitWolf
from torch.testing import assert_close

import vadx
from vadx.ops import reference

op = vadx.ops.mahalanobis_cascade


def make_model(m=24, h=16, n=600, seed=0, dtype=torch.float32):
    """G1 and G2 fitted on correlated 'normal' features, and a random CT layer."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(m, m, generator=g) / m**0.5
    shift = torch.randn(m, generator=g)
    train = torch.randn(n, m, generator=g) @ mix + shift
    mu1, w1 = vadx.ops.fit_gaussian(train.to(dtype))
    ct_w = torch.randn(h, m, generator=g) * 0.5
    ct_b = torch.randn(h, generator=g) * 0.1
    mu2, w2 = vadx.ops.fit_gaussian(torch.sigmoid(train @ ct_w.T + ct_b).to(dtype))
    model = dict(mu1=mu1, w1=w1, ct_weight=ct_w.to(dtype), ct_bias=ct_b.to(dtype), mu2=mu2, w2=w2)
    return train, (mix, shift), model


def make_feats(gen, B=3, H=6, W=9, seed=1, scale=1.6, dtype=torch.float32):
    """Test features: the training distribution widened by ``scale``, as NCHW."""
    mix, shift = gen
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, H, W, mix.shape[0], generator=g) @ mix * scale + shift
    return x.permute(0, 3, 1, 2).contiguous().to(dtype)  # NCHW


def run(feats, model, beta, alpha, phi, device="cpu"):
    kw = {k: v.to(device) for k, v in model.items()}
    return op(feats.to(device), kw["mu1"], kw["w1"], beta, alpha, kw["ct_weight"], kw["ct_bias"],
              kw["mu2"], kw["w2"], phi)


def ref(feats, model, beta, alpha, phi):
    return reference.mahalanobis_cascade(feats.cpu(), model["mu1"], model["w1"], beta, alpha,
                                         model["ct_weight"], model["ct_bias"], model["mu2"],
                                         model["w2"], phi)


def assert_matches(out, expected, beta, alpha, phi, rtol):
    d1, d2, label = (t.cpu() for t in out)
    e1, e2, elabel = expected
    assert d1.dtype == e1.dtype and label.dtype == torch.uint8 and d1.shape == e1.shape
    assert_close(d1, e1, rtol=rtol, atol=rtol)
    assert_close(d2, e2, rtol=rtol, atol=rtol, equal_nan=True)
    # Labels agree except where rounding puts a distance on the other side of a threshold.
    near = ((e1 - beta).abs() < 1e-4 * (1 + beta)) | ((e1 - alpha).abs() < 1e-4 * (1 + alpha))
    near |= (e2 - phi).abs() < 1e-4 * (1 + phi)
    assert near.sum() <= 0.05 * near.numel()
    assert torch.equal(label[~near], elabel[~near])


@pytest.mark.parametrize("dtype,rtol", [(torch.float32, 2e-5), (torch.float64, 1e-10)])
def test_matches_reference(device, dtype, rtol):
    _, mix, model = make_model(dtype=dtype)
    feats = make_feats(mix, dtype=dtype)
    expected = ref(feats, model, 6.0, 8.0, 5.0)
    assert {0, 1, 2, 3} <= set(expected[2].unique().tolist())  # every branch exercised
    assert_matches(run(feats, model, 6.0, 8.0, 5.0, device), expected, 6.0, 8.0, 5.0, rtol)


def test_frames_larger_than_one_tile():
    # m = 256 channels: a CPU tile holds 1024 positions, so 40x30 frames span two tiles each.
    _, mix, model = make_model(m=256, h=8, n=400)
    feats = make_feats(mix, B=2, H=40, W=30)
    d1 = ref(feats, model, 0.0, 0.0, 0.0)[0]
    beta, alpha = (float(d1.flatten().quantile(q)) for q in (0.3, 0.7))
    expected = ref(feats, model, beta, alpha, 3.0)
    assert_matches(run(feats, model, beta, alpha, 3.0), expected, beta, alpha, 3.0, 2e-5)


def test_d1_matches_scipy_and_sklearn():
    train, mix, model = make_model(dtype=torch.float64)
    train = train.double()
    feats = make_feats(mix, dtype=torch.float64)
    x = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1]).numpy()
    d1, _, _ = run(feats, model, 0.0, 1e9, 0.0)
    lw = LedoitWolf().fit(train.numpy())  # fit_gaussian's default estimate
    assert_close(d1.reshape(-1), torch.from_numpy(np.sqrt(lw.mahalanobis(x))), rtol=1e-6, atol=1e-6)
    vi = np.linalg.inv(lw.covariance_)
    for q in (0, 17, len(x) - 1):
        expected = scipy_mahalanobis(x[q], lw.location_, vi)
        assert d1.reshape(-1)[q].item() == pytest.approx(expected, rel=1e-6)
    mu0, w0 = vadx.ops.fit_gaussian(train, shrinkage=0.0)  # the plain empirical covariance
    d1, _, _ = run(feats, dict(model, mu1=mu0, w1=w0), 0.0, 1e9, 0.0)
    emp = EmpiricalCovariance().fit(train.numpy())
    assert_close(d1.reshape(-1), torch.from_numpy(np.sqrt(emp.mahalanobis(x))), rtol=1e-6, atol=1e-6)


def test_fit_gaussian_matches_ledoit_wolf_and_fixed_shrinkage():
    train = make_model()[0].double()
    mu, w = vadx.ops.fit_gaussian(train)
    cov = torch.linalg.inv(w.T @ w)
    lw = LedoitWolf().fit(train.numpy())
    assert_close(mu, torch.from_numpy(lw.location_))
    assert_close(cov, torch.from_numpy(lw.covariance_), rtol=1e-6, atol=1e-8)
    assert torch.equal(w, torch.tril(w))  # inverse Cholesky factor: lower triangular
    _, w0 = vadx.ops.fit_gaussian(train, shrinkage=0.0)  # plain MLE covariance (+ the tiny floor)
    emp = torch.from_numpy(EmpiricalCovariance().fit(train.numpy()).covariance_)
    assert_close(torch.linalg.inv(w0.T @ w0), emp, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shape", [(3, 8), (1, 5), (50, 4)])
def test_fit_gaussian_never_fails_on_degenerate_data(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g)
    x[:, 0] = 3.0  # a constant channel
    mu, w = vadx.ops.fit_gaussian(x)
    assert torch.isfinite(w).all() and torch.isfinite(mu).all()
    mu, w = vadx.ops.fit_gaussian(torch.zeros(4, 6))  # no variance at all
    assert torch.isfinite(w).all() and (torch.linalg.vector_norm(w @ torch.ones(6)) > 1e3)


def test_fit_gaussian_bad_input():
    with pytest.raises(ValueError, match=r"x must be a floating-point \[N, m\] tensor, got 3-D"):
        vadx.ops.fit_gaussian(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"N >= 1 samples .* got \(0, 3\)"):
        vadx.ops.fit_gaussian(torch.zeros(0, 3))
    with pytest.raises(ValueError, match=r"x has 1 rows with NaN/inf"):
        vadx.ops.fit_gaussian(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"shrinkage must be None or in \[0, 1\], got 1.5"):
        vadx.ops.fit_gaussian(torch.zeros(3, 2), shrinkage=1.5)


def test_all_normal_all_suspicious_none_suspicious(device):
    _, mix, model = make_model()
    feats = make_feats(mix)
    d1, d2, label = run(feats, model, 1e9, 1e10, 0.0, device)  # everything within beta
    assert (label == 0).all() and torch.isnan(d2).all()
    d1, d2, label = run(feats, model, -1.0, 1e10, 1e9, device)  # everything suspicious, normal by G2
    assert (label == 3).all() and not torch.isnan(d2).any()
    d1, d2, label = run(feats, model, -1.0, 0.0, 0.0, device)  # everything beyond alpha
    assert (label == 1).all() and torch.isnan(d2).all()
    d1, d2, label = run(feats, model, 7.0, 7.0, 0.0, device)  # beta == alpha: nothing suspicious
    assert set(label.unique().tolist()) <= {0, 1} and torch.isnan(d2).all()
    assert torch.equal(label.cpu() == 0, d1.cpu() <= 7.0)


@pytest.mark.parametrize("B,H,W", [(2, 1, 7), (2, 5, 1), (0, 4, 4), (2, 0, 3), (1, 1, 1)])
def test_small_and_empty_maps(device, B, H, W):
    _, mix, model = make_model()
    feats = make_feats(mix, B=max(B, 1), H=max(H, 1), W=W)[:B, :, :H]
    out = run(feats, model, 6.0, 8.0, 5.0, device)
    assert all(t.shape == (B, H, W) for t in out)
    assert_matches(out, ref(feats, model, 6.0, 8.0, 5.0), 6.0, 8.0, 5.0, 2e-5)


def test_non_contiguous_channel_slice(device):
    _, mix, model = make_model(m=24)
    mix, shift = mix
    wide = make_feats((torch.cat([mix, torch.eye(24)[:, :8]], dim=1), torch.cat([shift, torch.zeros(8)])))
    feats = wide[:, :24]  # a channel slice: non-contiguous
    assert not feats.is_contiguous()
    out = run(feats, model, 6.0, 8.0, 5.0, device)
    assert_matches(out, ref(feats.contiguous(), model, 6.0, 8.0, 5.0), 6.0, 8.0, 5.0, 2e-5)
    channels_last = make_feats((mix, shift)).to(memory_format=torch.channels_last)
    assert_matches(run(channels_last, model, 6.0, 8.0, 5.0, device),
                   ref(channels_last, model, 6.0, 8.0, 5.0), 6.0, 8.0, 5.0, 2e-5)


def test_nan_and_inf_features_are_anomalous_by_g1(device):
    _, mix, model = make_model()
    feats = make_feats(mix)
    feats[0, 3, 1, 2] = float("nan")
    feats[1, 0, 4, 4] = float("inf")
    d1, d2, label = (t.cpu() for t in run(feats, model, 6.0, 8.0, 5.0, device))
    assert torch.isnan(d1[0, 1, 2]) and label[0, 1, 2] == 1 and torch.isnan(d2[0, 1, 2])
    assert not torch.isfinite(d1[1, 4, 4]) and label[1, 4, 4] == 1
    clean = torch.isfinite(d1)
    assert clean.sum() == d1.numel() - 2  # other positions are untouched


def test_stage2_runs_exactly_on_suspicious_positions():
    _, mix, model = make_model()
    d1, d2, label = run(make_feats(mix), model, 6.0, 8.0, 5.0)
    suspicious = (label == 2) | (label == 3)
    assert torch.equal(~torch.isnan(d2), suspicious)
    assert torch.equal(suspicious, (d1 > 6.0) & (d1 < 8.0))
    assert 0 < suspicious.sum() < label.numel()


def test_conv_shaped_ct_weight_is_accepted():
    _, mix, model = make_model()
    feats = make_feats(mix)
    conv = dict(model, ct_weight=model["ct_weight"][:, :, None, None])  # a 1x1 conv's weight
    for a, b in zip(run(feats, conv, 6.0, 8.0, 5.0), run(feats, model, 6.0, 8.0, 5.0)):
        assert torch.equal(a.nan_to_num(-1), b.nan_to_num(-1))


@pytest.mark.parametrize(
    "change,exc,pattern",
    [
        (dict(mu1=torch.zeros(23)), ValueError, r"mu1 must have shape \[m\] = \[24\], got \[23\]"),
        (dict(w1=torch.zeros(24, 23)), ValueError, r"w1 must have shape \[m, m\] = \[24, 24\], got \[24, 23\]"),
        (dict(ct_weight=torch.zeros(16, 20)), ValueError, r"ct_weight must have shape \[h, m\] with m = 24.*got \[16, 20\]"),
        (dict(ct_bias=torch.zeros(15)), ValueError, r"ct_bias must have shape \[h\] = \[16\], got \[15\]"),
        (dict(mu2=torch.zeros(17)), ValueError, r"mu2 must have shape \[h\] = \[16\], got \[17\]"),
        (dict(w2=torch.zeros(16, 15)), ValueError, r"w2 must have shape \[h, h\] = \[16, 16\]"),
        (dict(w1=torch.zeros(24, 24, dtype=torch.float64)), TypeError, r"w1 must have feats' dtype Float, got Double"),
    ],
)
def test_mismatched_parameters(change, exc, pattern):
    _, mix, model = make_model()
    with pytest.raises(exc, match=pattern):
        run(make_feats(mix), dict(model, **change), 6.0, 8.0, 5.0)


PARAMS = ("mu1", "w1", "ct_weight", "ct_bias", "mu2", "w2")


def _call(raw, feats, model):
    args = [model[k] for k in PARAMS]
    if raw:
        return torch.ops.vadx.mahalanobis_cascade(feats, *args[:2], 6.0, 8.0, *args[2:], 5.0)
    return op(feats, *args[:2], 6.0, 8.0, *args[2:], 5.0)


@pytest.mark.parametrize("raw", [False, True], ids=["wrapper", "raw-op"])
@pytest.mark.parametrize("name", PARAMS)
def test_parameter_on_another_device_is_a_value_error(name, raw):
    """A device mismatch is a bad argument like any other: ValueError naming the argument, the
    expected and the actual device. Meta vs CPU here (a meta tensor sends the raw op to its fake
    kernel, which checks too); CPU vs CUDA in the CUDA test below."""
    _, mix, model = make_model(m=8, h=5)
    feats = make_feats(mix, B=1, H=2, W=3)
    odd = dict(model, **{name: model[name].to("meta")})
    with pytest.raises(ValueError, match=rf"mahalanobis_cascade: {name} must be on feats' device cpu, got meta"):
        _call(raw, feats, odd)
    with pytest.raises(ValueError, match=r"mahalanobis_cascade: mu1 must be on feats' device meta, got cpu"):
        _call(raw, feats.to("meta"), model)


def test_meta_tensors_give_output_shapes():
    _, mix, model = make_model(m=8, h=5)
    meta = {k: v.to("meta") for k, v in model.items()}
    d1, d2, label = _call(False, make_feats(mix, B=2, H=3, W=4).to("meta"), meta)
    assert d1.shape == d2.shape == label.shape == (2, 3, 4) and label.dtype == torch.uint8
    assert d1.device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("raw", [False, True], ids=["wrapper", "raw-op"])
def test_cuda_device_mismatch_is_a_value_error(raw):
    # The raw op goes to the CUDA kernel, whose C++ check raises the same ValueError.
    _, mix, model = make_model(m=8, h=5)
    feats = make_feats(mix, B=1, H=2, W=3)
    cuda = {k: v.cuda() for k, v in model.items()}
    with pytest.raises(ValueError, match=r"w2 must be on feats' device cuda:0, got cpu"):
        _call(raw, feats.cuda(), dict(cuda, w2=model["w2"]))
    with pytest.raises(ValueError, match=r"mu1 must be on feats' device cpu, got cuda:0"):
        _call(raw, feats, dict(model, mu1=cuda["mu1"]))
    if torch.cuda.device_count() > 1:
        with pytest.raises(ValueError, match=r"ct_bias must be on feats' device cuda:0, got cuda:1"):
            _call(raw, feats.cuda(), dict(cuda, ct_bias=model["ct_bias"].to("cuda:1")))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_precision(dtype):
    _, mix, model = make_model()
    feats = make_feats(mix)
    d1, _, _ = run(feats.to(dtype), {k: v.to(dtype) for k, v in model.items()}, 6.0, 8.0, 5.0, "cuda")
    e1, _, _ = ref(feats, model, 6.0, 8.0, 5.0)
    assert d1.dtype == dtype
    assert_close(d1.float().cpu(), e1, rtol=3e-2, atol=3e-2)


def test_half_precision_on_cpu_is_a_clear_error():
    _, mix, model = make_model()
    with pytest.raises(TypeError, match=r"on CPU feats must be float32 or float64, got Half"):
        run(make_feats(mix).half(), {k: v.half() for k, v in model.items()}, 6.0, 8.0, 5.0)


def test_bad_feats_and_thresholds():
    _, mix, model = make_model()
    feats = make_feats(mix)
    with pytest.raises(ValueError, match=r"need beta <= alpha, got beta=7, alpha=6"):
        run(feats, model, 7.0, 6.0, 1.0)
    with pytest.raises(ValueError, match=r"phi must not be NaN"):
        run(feats, model, 1.0, 2.0, float("nan"))
    with pytest.raises(ValueError, match=r"feats must be 4-D \[B, m, H, W\], got 3-D"):
        run(feats[0], model, 1.0, 2.0, 1.0)
    with pytest.raises(TypeError, match=r"feats must be floating point, got Long"):
        run(feats.long(), model, 1.0, 2.0, 1.0)


def test_opcheck(device):
    _, mix, model = make_model(m=8, h=5)
    feats = make_feats(mix, B=2, H=3, W=4)
    params = [model[k].to(device) for k in ("mu1", "w1", "ct_weight", "ct_bias", "mu2", "w2")]

    def args(f, beta, alpha):
        return (f.to(device), *params[:2], beta, alpha, *params[2:], 2.5)

    # opcheck's eager-vs-compiled comparison does not treat NaN as equal, so the full check runs
    # where every position reaches stage 2 (d2 has no NaN); a mixed map skips only that comparison.
    for f in (feats, feats[:0]):
        torch.library.opcheck(torch.ops.vadx.mahalanobis_cascade.default, args(f, -1.0, float("inf")))
    torch.library.opcheck(torch.ops.vadx.mahalanobis_cascade.default, args(feats, 2.0, 3.5),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


def test_torch_compile_fullgraph():
    _, mix, model = make_model()
    feats = make_feats(mix)

    def f(x):
        d1, d2, label = run(x, model, 6.0, 8.0, 5.0)
        return d1 * 2, (label > 1).sum()

    compiled = torch.compile(f, fullgraph=True)
    for a, b in zip(compiled(feats), f(feats)):
        assert_close(a, b)


# --- issue 21 B1: nothing lost, nothing crashes -------------------------------------------------


@pytest.mark.parametrize("offset", [1e3, 1e5])
def test_float32_cascade_keeps_precision_on_offset_features(device, offset):
    """float32 features with a large mean (mean/std 1e5) lost 1.6 % of d1 and flipped labels:
    W1 x - W1 mu1 cancelled catastrophically. Centring first keeps 1e-6 relative accuracy,
    against the float64 reference on the same (float32-rounded) inputs."""
    g = torch.Generator().manual_seed(0)
    m, h = 8, 4
    train = torch.randn(4096, m, generator=g, dtype=torch.float64) + offset
    mu, w = vadx.ops.fit_gaussian(train)
    feats = (torch.randn(2, m, 32, 32, generator=g, dtype=torch.float64) * 1.5 + offset).float()
    params = dict(beta=2.0, alpha=4.0, ct_weight=torch.randn(h, m, generator=g) * 1e-5,
                  ct_bias=torch.zeros(h), mu2=torch.full((h,), 0.5), w2=torch.eye(h), phi=0.1)
    mu, w = mu.float(), w.float()
    d1, _, label = op(*(t.to(device) for t in (feats, mu, w)),
                      **{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in params.items()})
    d1_ref, _, label_ref = reference.mahalanobis_cascade(
        feats.double(), mu.double(), w.double(), **{k: v.double() if isinstance(v, torch.Tensor) else v
                                                    for k, v in params.items()})
    rel = ((d1.cpu().double() - d1_ref).abs() / d1_ref).max().item()
    assert rel < 1e-6, rel
    assert torch.equal(label.cpu(), label_ref)


def test_fit_gaussian_float16_refuses_overflow_instead_of_inf():
    """float16 samples of small spread returned an inf whitening matrix (1/std > 65504)."""
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(500, 6, generator=g) * 1e-6).half()  # w ~ 1/std = 1e6 > 65504
    with pytest.raises(ValueError, match=r"fit_gaussian: the fitted mean/whitening matrix does not fit "
                                         r"x's dtype torch.float16 .*float16 max 65504.*float32"):
        vadx.ops.fit_gaussian(x)
    # a float16 fit that does fit the format is returned in float16, finite, equal to the float64 fit
    x = (torch.randn(500, 6, generator=g) * 3.0).half()
    mu, w = vadx.ops.fit_gaussian(x)
    assert mu.dtype == w.dtype == torch.float16 and torch.isfinite(w).all()
    mu64, w64 = vadx.ops.fit_gaussian(x.double())
    assert_close(w.double(), w64, rtol=1e-3, atol=1e-3)
    assert_close(mu.double(), mu64, rtol=1e-3, atol=1e-3)
