"""mahalanobis_cascade at the paper's shapes vs the plain-PyTorch reference, scikit-learn, and its
floor (the stage-1 product alone), side by side.

Frames 240x320 -> AlexNet conv2 grid 28x38, m = 256 channels, CT h = 500; batch 8 and 64;
2 %, 10 % and 50 % of positions suspicious (thresholds set from quantiles of d1).
Run: pytest bench/test_mahalanobis_cascade.py
"""

import numpy as np
import pytest
import torch
from sklearn.covariance import EmpiricalCovariance

import vadx

M, HK, WK, H_CT = 256, 28, 38, 500
BATCHES = (8, 64)
FRACTIONS = (0.02, 0.10, 0.50)


def plain_pytorch(feats, mu1, w1, beta, alpha, ct_weight, ct_bias, mu2, w2, phi):
    """The straightforward PyTorch version at the input precision: permute, matmul, masked CT."""
    x = feats.permute(0, 2, 3, 1)
    d1 = torch.linalg.vector_norm((x - mu1) @ w1.T, dim=-1)
    label = torch.ones(d1.shape, dtype=torch.uint8)
    label[d1 <= beta] = 0
    sus = (d1 > beta) & (d1 < alpha)
    d2 = torch.full_like(d1, float("nan"))
    d2_s = torch.linalg.vector_norm((torch.sigmoid(x[sus] @ ct_weight.T + ct_bias) - mu2) @ w2.T, dim=-1)
    d2[sus] = d2_s
    label[sus] = torch.where(d2_s < phi, 3, 2).to(torch.uint8)
    return d1, d2, label


def sklearn_cascade(feats, g1, g2, beta, alpha, ct_weight, ct_bias, phi):
    """Off-the-shelf: EmpiricalCovariance.mahalanobis for both Gaussians (NumPy, float64)."""
    B, m, H, W = feats.shape
    x = feats.permute(0, 2, 3, 1).reshape(-1, m).numpy()
    d1 = np.sqrt(g1.mahalanobis(x))
    label = np.ones(len(x), dtype=np.uint8)
    label[d1 <= beta] = 0
    sus = (d1 > beta) & (d1 < alpha)
    z = 1 / (1 + np.exp(-(x[sus] @ ct_weight.T + ct_bias)))
    d2 = np.full(len(x), np.nan)
    d2[sus] = np.sqrt(g2.mahalanobis(z))
    label[sus] = np.where(d2[sus] < phi, 3, 2)
    return d1, d2, label


@pytest.fixture(scope="module")
def model():
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(M, M, generator=g) / M**0.5
    train = torch.relu(torch.randn(20_000, M, generator=g) @ mix + 0.5)  # post-ReLU like conv2
    mu1, w1 = vadx.ops.fit_gaussian(train)
    ct_weight = torch.randn(H_CT, M, generator=g) * 0.1
    ct_bias = torch.zeros(H_CT)
    z = torch.sigmoid(train @ ct_weight.T + ct_bias)
    mu2, w2 = vadx.ops.fit_gaussian(z)
    g1 = EmpiricalCovariance().fit(train.double().numpy())
    g2 = EmpiricalCovariance().fit(z.double().numpy())
    return dict(mix=mix, mu1=mu1, w1=w1, ct_weight=ct_weight, ct_bias=ct_bias, mu2=mu2, w2=w2,
                g1=g1, g2=g2)


@pytest.fixture(scope="module", params=[(b, f) for b in BATCHES for f in FRACTIONS],
                ids=lambda p: f"B{p[0]}-sus{int(p[1] * 100)}pct")
def case(request, model):
    B, fraction = request.param
    g = torch.Generator().manual_seed(B)
    x = torch.relu(torch.randn(B, HK, WK, M, generator=g) @ model["mix"] * 1.3 + 0.5)
    feats = x.permute(0, 3, 1, 2).contiguous()
    d1, _, _ = vadx.ops.mahalanobis_cascade(feats, model["mu1"], model["w1"], 0.0, 0.0,
                                            model["ct_weight"], model["ct_bias"], model["mu2"],
                                            model["w2"], 0.0)
    beta = float(d1.flatten().quantile(0.5))
    alpha = float(d1.flatten().quantile(min(0.5 + fraction, 1.0)))
    args = (feats, model["mu1"], model["w1"], beta, alpha, model["ct_weight"], model["ct_bias"],
            model["mu2"], model["w2"], 6.0)
    return f"B{B}-sus{int(fraction * 100)}pct", args


def test_op(benchmark, case):
    name, args = case
    benchmark.group = f"cascade {name}"
    d1, d2, label = benchmark(vadx.ops.mahalanobis_cascade, *args)
    _, _, expected = plain_pytorch(*args)
    assert (label == expected).float().mean() > 0.999


def test_plain_pytorch(benchmark, case):
    name, args = case
    benchmark.group = f"cascade {name}"
    benchmark(plain_pytorch, *args)


def test_floor_stage1_product(benchmark, case):
    """The floor: the stage-1 product alone, feats as [B*H*W, m] times W1^T in one torch.mm
    (feats laid out channels-last beforehand, outside the timing)."""
    name, args = case
    benchmark.group = f"cascade {name}"
    feats, w1 = args[0], args[2]
    rows = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1]).contiguous()
    benchmark(torch.mm, rows, w1.T)


def test_sklearn(benchmark, case, model):
    name, args = case
    if args[0].shape[0] > 8:
        pytest.skip("scikit-learn at batch 64: tens of seconds a round; the ratio is taken at B=8")
    benchmark.group = f"cascade {name}"
    feats, beta, alpha, phi = args[0], args[3], args[4], args[9]
    benchmark.pedantic(sklearn_cascade, (feats, model["g1"], model["g2"], beta, alpha,
                                         model["ct_weight"].double().numpy(),
                                         model["ct_bias"].double().numpy(), phi),
                       rounds=3, iterations=1)
