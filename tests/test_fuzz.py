"""bench/fuzz.py (issue 21's table) cannot rot: a few cases of every category, plus cases of known
outcome that prove a crash, a hang and data loss would be counted. And a regression test for each
unclean error the fuzzer found in the ops, named after it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vadx

FUZZ = Path(__file__).resolve().parents[1] / "bench" / "fuzz.py"


def test_fuzz_script_counts_every_outcome_and_finds_nothing_in_a_few_cases(tmp_path):
    out = tmp_path / "fuzz.json"
    run = subprocess.run([sys.executable, str(FUZZ), "--cases", "3", "--selftest", "--seed", "1",
                          "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    table = json.loads(out.read_text())["table"]
    harness = table.pop("harness")
    assert {k: harness[k] for k in ("ok", "clean error", "crash", "hang", "data loss")} == {
        "ok": 1, "clean error": 1, "crash": 1, "hang": 1, "data loss": 1}
    assert list(table) == ["op calls", "model files", "videos and frame folders", "plugins", "CLI output paths"]
    for category, row in table.items():
        assert row["cases"] == 3, category
        assert sum(row[k] for k in ("ok", "clean error", "other error", "crash", "hang", "wrong result",
                                    "data loss")) == 3, category
        assert row["crash"] == row["hang"] == row["data loss"] == 0, (category, row["examples"])
    assert "| op calls | 3 |" in run.stdout  # the markdown table


# --- regression tests for what the fuzzer found (unclean errors: the argument was not named) ----


def test_rollback_coverage_out_size_whose_output_overflows_is_a_value_error():
    """out_size (2^31 - 1, 2^31 - 1) passed the per-axis check, then ATen failed computing the
    storage size ("Storage size calculation overflowed"), naming no argument."""
    w = torch.ones(1, 2, 2)
    huge = (2**31 - 1, 2**31 - 1)
    pattern = r"rollback_coverage: out_size \[2147483647, 2147483647\] for 1 frames makes an output of more than 2\^63 bytes"
    with pytest.raises(ValueError, match=pattern):
        vadx.ops.rollback_coverage(w, 3, 1, 0, huge)
    with pytest.raises(ValueError, match=pattern):
        torch.ops.vadx.rollback_coverage(w, [3, 3], [1, 1], [0, 0], list(huge))
    with pytest.raises(ValueError, match=pattern):  # the fake kernel checks the same
        vadx.ops.rollback_coverage(w.to("meta"), 3, 1, 0, huge)
    assert vadx.ops.rollback_coverage(w, 3, 1, 0, (0, 2**40)).shape == (1, 0, 2**40)  # empty: fine


def test_fit_gaussian_float8_and_meta_inputs_are_clean_errors():
    """float8 reached torch.isfinite (NotImplementedError), meta reached Tensor.item()."""
    with pytest.raises(TypeError, match=r"fit_gaussian: x must be float16, bfloat16, float32 or float64, got torch.float8_e4m3fn"):
        vadx.ops.fit_gaussian(torch.randn(5, 3).to(torch.float8_e4m3fn))
    with pytest.raises(ValueError, match=r"fit_gaussian: x must hold values .* got a meta tensor"):
        vadx.ops.fit_gaussian(torch.randn(5, 3, device="meta"))


@pytest.mark.parametrize("shrinkage", [torch.tensor([0.1, 0.2]), "0.1", [0.1]])
def test_fit_gaussian_shrinkage_that_is_not_a_number_is_a_type_error(shrinkage):
    with pytest.raises(TypeError, match=r"fit_gaussian: shrinkage must be a real number, got"):
        vadx.ops.fit_gaussian(torch.randn(5, 3), shrinkage=shrinkage)
    mu, w = vadx.ops.fit_gaussian(torch.randn(5, 3, dtype=torch.float64), shrinkage=torch.tensor(0.1))
    assert w.shape == (3, 3)


@pytest.mark.parametrize("name", ["beta", "alpha", "phi"])
@pytest.mark.parametrize("value", [None, [1.0], "1", True])
def test_mahalanobis_cascade_thresholds_that_are_not_numbers_are_type_errors(name, value):
    """float(phi) raised "float() argument must be a string or a real number, not 'list'"."""
    m, h = 3, 2
    args = dict(feats=torch.randn(1, m, 2, 2), mu1=torch.zeros(m), w1=torch.eye(m), beta=1.0, alpha=2.0,
                ct_weight=torch.randn(h, m), ct_bias=torch.zeros(h), mu2=torch.zeros(h), w2=torch.eye(h), phi=1.0)
    args[name] = value
    with pytest.raises(TypeError, match=rf"mahalanobis_cascade: {name} must be a real number, got"):
        vadx.ops.mahalanobis_cascade(**args)


def test_sista_mode_that_is_not_a_string_is_a_type_error():
    """The op's schema rejected it with "Expected a value of type 'str' for argument 'mode'"."""
    with pytest.raises(TypeError, match=r"sista: mode must be 'signed' or 'nonneg', got None"):
        vadx.ops.sista(torch.randn(1, 2, 3), torch.randn(3, 4), 0.1, 0.1, 5.0, torch.ones(1, 2),
                       torch.zeros(4), 1, mode=None)


@pytest.mark.parametrize("x", [[[-10988.760747608392], [-41668.45166823787]],  # m = 1 (the finding)
                               [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])
def test_fit_gaussian_in_one_dimension_no_longer_fails(x):
    """Found by bench/fuzz.py on valid input: with one dimension the Ledoit-Wolf target equals the
    covariance (delta = 0), rounding left beta < 0, the shrinkage became -inf and the fit raised
    "covariance is not positive definite". The shrinkage is 0 there, as scikit-learn's."""
    from sklearn.covariance import LedoitWolf

    x = torch.tensor(x, dtype=torch.float64)
    mu, w = vadx.ops.fit_gaussian(x)
    expected = vadx.ops.fit_gaussian(x, shrinkage=LedoitWolf().fit(x.numpy()).shrinkage_)
    torch.testing.assert_close((mu, w), expected)


def test_rollback_coverage_negative_out_size_on_meta_is_a_value_error():
    """Found by bench/fuzz.py: the fake kernel had no range check ("Trying to create tensor with
    negative dimension -1"); it now says what the C++ check says."""
    with pytest.raises(ValueError, match=r"rollback_coverage: out_size must be >= 0 per axis \(h, w\), got \[-1, 2\]"):
        vadx.ops.rollback_coverage(torch.ones(1, 2, 2, device="meta"), 3, 1, 0, (-1, 2))
    with pytest.raises(ValueError, match=r"rollback_coverage: out_size must be >= 0 per axis \(h, w\), got \[-1, 2\]"):
        vadx.ops.rollback_coverage(torch.ones(1, 2, 2), 3, 1, 0, (-1, 2))


def test_rollback_coverage_float8_weights_are_a_type_error():
    """Found by bench/fuzz.py: float8 passed the floating-point check and reached the dispatch
    ("rollback_coverage_cpu" not implemented for 'Float8_e4m3fn')."""
    with pytest.raises(TypeError, match=r"rollback_coverage: weights must be float32, float64, float16 or bfloat16, got Float8_e4m3fn"):
        vadx.ops.rollback_coverage(torch.ones(1, 2, 2).to(torch.float8_e4m3fn), 3, 1, 0, (4, 4))


def test_fit_gaussian_whose_covariance_overflows_is_a_value_error():
    """Found by bench/fuzz.py: finite samples near 1e308 made an infinite covariance, reported as
    RuntimeError "covariance is not positive definite", naming no argument."""
    x = torch.randn(10, 3, dtype=torch.float64)
    x[0, 0] = 1e308
    with pytest.raises(ValueError, match=r"fit_gaussian: x's covariance overflows float64 \(largest \|x - mean\| 9"):
        vadx.ops.fit_gaussian(x)
