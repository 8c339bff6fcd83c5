"""rollback_coverage vs the naive painting reference and a conv_transpose2d composition, side by side.

Paper shapes (Sabokrou et al.): 240 x 320 frames, flags (~10 % set) on torchvision AlexNet's conv2
grid (29 x 39), receptive field R = 51, J = 8, P = 18.

Run: pytest bench/test_rollback_coverage.py   (ratios: the parenthesised columns per group)
"""

import pytest
import torch

import vadx
from vadx.ops import reference

FRAME = (240, 320)
GRID = (29, 39)
GEOMETRY = vadx.ops.receptive_field([(11, 4, 2), (3, 2, 0), (5, 1, 2)])  # ((51,51), (8,8), (18,18))
BATCHES = [8, 64]


@pytest.fixture(scope="module", params=BATCHES, ids=[f"B{b}" for b in BATCHES])
def case(request):
    B = request.param
    flags = (torch.rand(B, *GRID, generator=torch.Generator().manual_seed(0)) < 0.1).float()
    args = (flags, *GEOMETRY, FRAME)
    expected = vadx.ops.rollback_coverage(*args)
    # The op is tested against the reference; here, check it on a few frames per shape too.
    torch.testing.assert_close(expected[:2], reference.rollback_coverage(flags[:2], *GEOMETRY, FRAME))
    return f"rollback_coverage {B}x{GRID[0]}x{GRID[1]} -> {FRAME[0]}x{FRAME[1]} R51", args, expected


def test_op(benchmark, case):
    name, args, expected = case
    benchmark.group = name
    assert torch.equal(benchmark(vadx.ops.rollback_coverage, *args), expected)


def test_op_one_thread(benchmark, case):
    name, args, expected = case
    benchmark.group = name
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert torch.equal(benchmark(vadx.ops.rollback_coverage, *args), expected)
    finally:
        torch.set_num_threads(threads)


def test_conv_transpose2d(benchmark, case):
    name, args, expected = case
    benchmark.group = name
    out = benchmark.pedantic(reference.rollback_coverage_conv_transpose, args, rounds=5, iterations=1)
    torch.testing.assert_close(out, expected)


def test_reference_paint(benchmark, case):
    name, args, expected = case
    benchmark.group = name
    rounds = 1 if args[0].shape[0] > 8 else 3
    out = benchmark.pedantic(reference.rollback_coverage, args, rounds=rounds, iterations=1)
    torch.testing.assert_close(out, expected)
