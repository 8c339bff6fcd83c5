"""vadx.precision: what "auto" means, and that autocast is on only for bf16."""

import pytest
import torch

from vadx import precision


def test_resolve():
    cpu = torch.device("cpu")
    assert precision.resolve("fp32", cpu) == "fp32" and precision.resolve("bf16", cpu) == "bf16"
    assert precision.resolve("auto", cpu) == ("bf16" if precision.native_cpu_bf16() else "fp32")
    with pytest.raises(ValueError, match=r"precision must be one of \('auto', 'bf16', 'fp32'\), got 'half'"):
        precision.resolve("half", cpu)


def test_native_bf16_follows_the_cpu_flags(monkeypatch):
    flags = open("/proc/cpuinfo").read() if __import__("os").path.exists("/proc/cpuinfo") else ""
    expected = torch.ops.mkldnn._is_mkldnn_bf16_supported() and (" avx512_bf16" in flags or " amx_bf16" in flags)
    assert precision.native_cpu_bf16() == expected


@pytest.mark.parametrize("mode, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_autocast(mode, dtype):
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with precision.autocast(mode, torch.device("cpu")):
        assert (a @ b).dtype == dtype
    assert (a @ b).dtype == torch.float32
