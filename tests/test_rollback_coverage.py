"""rollback_coverage and receptive_field (DESIGN.md op 2) against the naive painting reference."""

import pytest
import torch
from torch.testing import assert_close

import vadx
from vadx.ops import reference

op = vadx.ops.rollback_coverage
receptive_field = vadx.ops.receptive_field

ALEXNET_CONV2 = [(11, 4, 2), (3, 2, 0), (5, 1, 2)]  # torchvision: conv1, max-pool 1, conv2

# (size, jump, offset, out_size) as (h, w) pairs
GEOMETRIES = {
    "alexnet-like": ((11, 11), (4, 4), (5, 5), (33, 41)),
    "non-square": ((5, 7), (2, 3), (1, 4), (13, 25)),
    "field-larger-than-frame": ((40, 60), (1, 2), (3, 4), (10, 12)),
    "gaps-between-fields": ((3, 2), (5, 4), (0, 1), (31, 30)),
    "negative-offset": ((4, 3), (3, 2), (-2, -1), (25, 19)),
    "frame-beyond-the-grid": ((3, 3), (2, 2), (0, 0), (40, 50)),
}


def _weights(B, Hk, Wk, dtype=torch.float32, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, Hk, Wk, generator=g, dtype=torch.float64) * 4 - 1).to(dtype).to(device)


def _check(weights, geometry, exact=False):
    cov = op(weights, *geometry)
    ref = reference.rollback_coverage(weights.cpu(), *geometry)
    assert cov.dtype == ref.dtype and cov.shape == ref.shape and cov.is_contiguous()
    if exact:
        assert torch.equal(cov.cpu(), ref)
    else:
        assert_close(cov.cpu(), ref, equal_nan=True)
    return cov


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_matches_reference_random(device, dtype, name):
    _check(_weights(3, 7, 9, dtype, device=device), GEOMETRIES[name])


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_flags_give_exact_integer_counts(device, name):
    flags = torch.rand(2, 8, 10, generator=torch.Generator().manual_seed(1)) < 0.3
    for f in (flags, flags.to(torch.uint8), flags.float(), flags.double()):
        cov = _check(f.to(device), GEOMETRIES[name], exact=True)
        assert cov.dtype == (torch.float64 if f.dtype == torch.float64 else torch.float32)
        assert torch.equal(cov, cov.round())


def test_single_cell_paints_its_clipped_field(device):
    flags = torch.zeros(1, 4, 5, device=device)
    flags[0, 0, 4] = 1  # top-right cell: rows -2..4, cols 6..12 with R=7, J=2, P=2, clipped
    cov = op(flags, (7, 7), (2, 2), (2, 2), (10, 11))
    expected = torch.zeros(1, 10, 11, device=device)
    expected[0, 0:5, 6:11] = 1
    assert torch.equal(cov, expected)


def test_empty_flags_give_zero_coverage(device):
    cov = op(torch.zeros(2, 6, 7, dtype=torch.bool, device=device), 5, 2, 1, (12, 14))
    assert cov.shape == (2, 12, 14) and cov.dtype == torch.float32 and not cov.any()


def test_uniform_flags_count_overlapping_fields(device):
    # Away from the borders, where J divides R, every pixel lies in exactly (R / J)^2 fields.
    cov = op(torch.ones(1, 20, 20, device=device), 6, 2, 0, (30, 30))
    assert torch.all(cov[0, 6:30, 6:30] == 9)


@pytest.mark.parametrize(
    "shape,out_size",
    [((0, 4, 5), (8, 9)), ((2, 0, 5), (8, 9)), ((2, 4, 0), (8, 9)), ((2, 4, 5), (0, 9)),
     ((2, 4, 5), (8, 0)), ((0, 0, 0), (0, 0))],
)
def test_zero_sizes(device, shape, out_size):
    w = torch.rand(shape, device=device)
    cov = op(w, 3, 2, 1, out_size)
    assert cov.shape == (shape[0], *out_size) and cov.dtype == w.dtype
    assert not cov.any()
    assert op(w.double(), 3, 2, 1, out_size).dtype == torch.float64


def test_non_contiguous(device):
    base = _weights(4, 11, 9, device=device)
    geometry = GEOMETRIES["non-square"]
    for w in (base.transpose(1, 2), base[::2, 1::3, ::2], base[:1].expand(3, 11, 9)):
        assert not w.is_contiguous()
        cov = _check(w, geometry)
        assert torch.equal(cov, op(w.contiguous(), *geometry))


def test_half_and_bfloat16(device):
    flags = torch.rand(2, 6, 8, generator=torch.Generator().manual_seed(2)) < 0.5
    for dtype in (torch.float16, torch.bfloat16):
        _check(flags.to(dtype).to(device), GEOMETRIES["alexnet-like"], exact=True)


def test_one_frame_two_dimensional(device):
    w = _weights(1, 5, 6, device=device)
    cov = op(w[0], 4, 3, 1, (14, 17))
    assert cov.shape == (14, 17)
    assert torch.equal(cov, op(w, 4, 3, 1, (14, 17))[0])


def test_nan_and_inf_reach_only_the_pixels_they_cover(device):
    w = _weights(3, 6, 7, torch.float64)
    w[0, 1, 2] = float("nan")
    w[1, 0, 0] = float("inf")
    w[1, 5, 6] = float("-inf")
    w[2, 3, 3], w[2, 3, 4] = float("inf"), float("-inf")  # overlap: inf + -inf = NaN
    geometry = ((4, 5), (2, 2), (1, 1), (14, 16))
    cov = _check(w.to(device), geometry).cpu()
    ref = reference.rollback_coverage(w, *geometry)
    assert torch.equal(torch.isnan(cov), torch.isnan(ref)) and torch.isnan(cov).any()
    assert torch.equal(torch.isposinf(cov), torch.isposinf(ref)) and torch.isposinf(cov).any()
    assert torch.equal(torch.isneginf(cov), torch.isneginf(ref)) and torch.isneginf(cov).any()
    # Elsewhere the coverage is that of the frame without its non-finite cells.
    finite = op(w.nan_to_num(0.0, 0.0, 0.0), *geometry)
    keep = torch.isfinite(cov)
    assert_close(cov[keep], finite[keep], rtol=0, atol=1e-12)
    assert torch.equal(cov[0, :, :1], finite[0, :, :1])  # column 0 is outside the NaN's field


def test_parallel_and_single_thread_agree():
    w = _weights(5, 29, 39, seed=3)
    geometry = ((51, 51), (8, 8), (18, 18), (240, 320))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = op(w, *geometry)
        torch.set_num_threads(max(threads, 2))
        many = op(w, *geometry)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, many)


def _alexnet_conv2_grid(H0, W0):
    """The conv2 grid size of torchvision's AlexNet for an H0 x W0 frame, from real layers."""
    layers = torch.nn.Sequential(
        torch.nn.Conv2d(1, 1, 11, 4, 2), torch.nn.MaxPool2d(3, 2), torch.nn.Conv2d(1, 1, 5, 1, 2)
    )
    with torch.no_grad():
        return tuple(layers(torch.zeros(1, 1, H0, W0)).shape[2:])


def test_alexnet_conv2_end_to_end(device):
    # The paper reports a 28 x 38 conv2 grid for 240 x 320 frames (Caffe's AlexNet: conv1 without
    # padding); torchvision's conv1 pads by 2, which gives 29 x 39.
    grid = _alexnet_conv2_grid(240, 320)
    assert grid == (29, 39)
    size, jump, offset = receptive_field(ALEXNET_CONV2)
    flags = torch.rand(4, *grid, generator=torch.Generator().manual_seed(4)) < 0.1
    cov = _check(flags.to(device), (size, jump, offset, (240, 320)), exact=True)
    localized = cov > 3  # the paper's zeta
    assert localized.any() and not localized.all()
    # "a detection in the 2nd layer causes 51 x 51 overlapping receptive fields"
    one = torch.zeros(1, *grid, device=device)
    one[0, 14, 19] = 1
    cov1 = op(one, size, jump, offset, (240, 320))[0]
    rows, cols = cov1.nonzero().unbind(1)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (51, 51)
    assert cov1.sum() == 51 * 51


@pytest.mark.parametrize("cell", [(0, 0), (14, 19), (28, 38), (0, 38), (27, 1)])
def test_fields_match_the_gradient_support_of_real_layers(cell):
    """Where a cell of a real conv/pool stack looks: the input pixels its gradient reaches (all
    weights positive, average pooling so that every pixel of a window counts)."""
    layers = torch.nn.Sequential(
        torch.nn.Conv2d(1, 1, 11, 4, 2), torch.nn.AvgPool2d(3, 2), torch.nn.Conv2d(1, 1, 5, 1, 2)
    ).double()
    for p in layers.parameters():
        torch.nn.init.constant_(p, 1.0)
    frame = torch.zeros(1, 1, 240, 320, dtype=torch.float64, requires_grad=True)
    layers(frame)[0, 0, cell[0], cell[1]].backward()
    support = frame.grad[0, 0] != 0
    flags = torch.zeros(1, 29, 39, dtype=torch.float64)
    flags[0, cell[0], cell[1]] = 1
    cov = op(flags, *receptive_field(ALEXNET_CONV2), (240, 320))[0]
    assert torch.equal(cov != 0, support)


def test_conv_transpose_baseline_matches_reference():
    # bench/ times this alternative; it must compute the same thing.
    w = _weights(2, 7, 9, torch.float64)
    for geometry in GEOMETRIES.values():
        assert_close(
            reference.rollback_coverage_conv_transpose(w, *geometry),
            reference.rollback_coverage(w, *geometry),
        )


def test_receptive_field_alexnet_by_hand():
    assert receptive_field([]) == ((1, 1), (1, 1), (0, 0))
    assert receptive_field(ALEXNET_CONV2[:1]) == ((11, 11), (4, 4), (2, 2))
    assert receptive_field(ALEXNET_CONV2[:2]) == ((19, 19), (8, 8), (2, 2))
    assert receptive_field(ALEXNET_CONV2) == ((51, 51), (8, 8), (18, 18))


def test_receptive_field_dilation_and_pairs():
    # axis h: k=3,s=2,p=1 -> R=3,J=2,P=1; k_eff=2*(3-1)+1=5,s=1,p=2 -> R=3+4*2=11,J=2,P=1+2*2=5
    # axis w: k=5,s=1,p=(0) -> R=5,J=1,P=0; k=3,d=3 -> k_eff=7, s=2, p=3 -> R=5+6=11,J=2,P=3
    layers = [((3, 5), (2, 1), (1, 0)), (3, (1, 2), (2, 3), (2, 3))]
    assert receptive_field(layers) == ((11, 11), (2, 2), (5, 3))
    assert receptive_field([(3, 1, 0, 1)]) == receptive_field([(3, 1, 0)])


@pytest.mark.parametrize(
    "layers,exc,pattern",
    [
        ([(3, 0, 1)], ValueError, r"layer 0 stride must be >= 1, got 0"),
        ([(3, 1, 1), (0, 1, 1)], ValueError, r"layer 1 kernel must be >= 1, got 0"),
        ([(3, 1, (1, -1))], ValueError, r"layer 0 padding must be >= 0, got \(1, -1\)"),
        ([(3, 1, 0, 0)], ValueError, r"layer 0 dilation must be >= 1, got 0"),
        ([(3, 1)], ValueError, r"layer 0 must be \(kernel, stride, padding\).*got \(3, 1\)"),
        ([(3, 1.5, 0)], TypeError, r"layer 0 stride must be an int or an \(h, w\) pair"),
        ([(3, True, 0)], TypeError, r"layer 0 stride must be an int or an \(h, w\) pair"),
        ([((3, 3, 3), 1, 0)], TypeError, r"layer 0 kernel must be an int or an \(h, w\) pair"),
        (5, TypeError, r"layers must be a sequence of layers, got int"),
    ],
)
def test_receptive_field_bad_layers(layers, exc, pattern):
    with pytest.raises(exc, match=pattern):
        receptive_field(layers)


@pytest.mark.parametrize(
    "kwargs,exc,pattern",
    [
        ({"size": (0, 5)}, ValueError, r"size must be in \[1, 2147483647\] per axis \(h, w\), got \[0, 5\]"),
        ({"jump": (2, 0)}, ValueError, r"jump must be in \[1, 2147483647\] .*got \[2, 0\]"),
        ({"offset": (0, 2**31)}, ValueError, r"offset must be in \[-2147483648, 2147483647\] .*got \[0, 2147483648\]"),
        ({"out_size": (-1, 4)}, ValueError, r"out_size must be >= 0 per axis \(h, w\), got \[-1, 4\]"),
        ({"size": (1, 2, 3)}, TypeError, r"size must be an int or an \(h, w\) pair of ints, got \(1, 2, 3\)"),
        ({"jump": 2.0}, TypeError, r"jump must be an int or an \(h, w\) pair of ints, got 2.0"),
    ],
)
def test_bad_arguments(kwargs, exc, pattern):
    args = {"size": 3, "jump": 2, "offset": 1, "out_size": (8, 8)} | kwargs
    with pytest.raises(exc, match=pattern):
        op(torch.rand(2, 4, 4), **args)


def test_bad_weights():
    with pytest.raises(ValueError, match=r"weights must be \[Hk, Wk\] or \[B, Hk, Wk\], got 4-D with shape \(1, 2, 3, 4\)"):
        op(torch.rand(1, 2, 3, 4), 3, 2, 1, (8, 8))
    with pytest.raises(TypeError, match=r"weights must be floating-point, bool or uint8, got torch.int64"):
        op(torch.ones(2, 3, 4, dtype=torch.long), 3, 2, 1, (8, 8))
    with pytest.raises(TypeError, match=r"weights must be a torch.Tensor, got list"):
        op([[1.0]], 3, 2, 1, (8, 8))
    # The raw op checks too (nothing reaches a kernel unchecked).
    raw = torch.ops.vadx.rollback_coverage
    with pytest.raises(ValueError, match=r"weights must be 3-D \[B, Hk, Wk\], got 2-D with shape \[3, 4\]"):
        raw(torch.rand(3, 4), [3, 3], [2, 2], [1, 1], [8, 8])
    with pytest.raises(TypeError, match=r"weights must be a floating-point tensor, got Long"):
        raw(torch.ones(2, 3, 4, dtype=torch.long), [3, 3], [2, 2], [1, 1], [8, 8])
    with pytest.raises(ValueError, match=r"size must be 2 ints \(h, w\), got 3 values \[3, 3, 3\]"):
        raw(torch.rand(2, 3, 4), [3, 3, 3], [2, 2], [1, 1], [8, 8])


def test_weights_gradient_is_not_tracked():
    assert not op(torch.rand(1, 3, 3, requires_grad=True), 3, 2, 1, (6, 6)).requires_grad


def test_opcheck(device):
    cases = [
        (torch.rand(2, 5, 6), [7, 5], [2, 3], [1, -2], [13, 15]),
        (torch.rand(1, 4, 4, dtype=torch.float64), [3, 3], [2, 2], [0, 0], [9, 9]),
        (torch.rand(0, 4, 4), [3, 3], [2, 2], [1, 1], [8, 8]),
        (torch.rand(3, 6, 5).transpose(1, 2), [4, 4], [3, 3], [1, 1], [12, 16]),
        (torch.rand(2, 3, 4), [3, 3], [2, 2], [1, 1], [0, 7]),
        (torch.rand(2, 3, 4, dtype=torch.float16), [51, 51], [8, 8], [18, 18], [20, 30]),
    ]
    for w, *geometry in cases:
        torch.library.opcheck(torch.ops.vadx.rollback_coverage.default, (w.to(device), *geometry))


def test_geometry_is_symint_so_frame_sizes_stay_symbolic():
    # SymInt[2], not int[2]: a size taken from a tensor's shape reaches the op as a symbol instead
    # of being specialised to its value (one graph for every frame size).
    schema = str(torch.ops.vadx.rollback_coverage.default._schema)
    for name in ("size", "jump", "offset", "out_size"):
        assert f"SymInt[2] {name}" in schema
    from torch.fx.experimental.proxy_tensor import make_fx

    def localize(flags, frame):
        return op(flags, 5, 2, 1, frame.shape[-2:]) > 3

    gm = make_fx(localize, tracing_mode="symbolic")(torch.rand(2, 9, 9) < 0.4, torch.zeros(60, 80))
    (node,) = [n for n in gm.graph.nodes if n.target is torch.ops.vadx.rollback_coverage.default]
    out_size = node.args[4]
    assert all(isinstance(v, torch.fx.Node) for v in out_size), f"out_size was specialised: {out_size}"


def test_meta_weights_give_the_output_shape():
    cov = op(torch.rand(2, 3, 4, device="meta"), 3, 2, 1, (8, 9))
    assert cov.shape == (2, 8, 9) and cov.device.type == "meta"


def test_torch_compile_dynamic_shapes_one_graph_for_every_frame_size():
    from torch._dynamo.testing import CompileCounterWithBackend

    size, jump, offset = receptive_field(ALEXNET_CONV2)

    def localize(flags, frame):
        return op(flags, size, jump, offset, frame.shape[-2:]) > 3

    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(localize, fullgraph=True, dynamic=True, backend=counter)
    g = torch.Generator().manual_seed(6)
    for H, W in ((60, 80), (72, 96), (45, 50)):
        frame = torch.zeros(H, W)
        flags = torch.rand(2, (H + 7) // 8, (W + 7) // 8, generator=g) < 0.4
        assert torch.equal(compiled(flags, frame), localize(flags, frame))
    assert counter.frame_count == 1


def test_torch_compile_fullgraph():
    size, jump, offset = receptive_field(ALEXNET_CONV2)

    def localize(flags):
        return op(flags, size, jump, offset, (60, 80)) > 3

    flags = torch.rand(2, 7, 10, generator=torch.Generator().manual_seed(5)) < 0.4
    compiled = torch.compile(localize, fullgraph=True)
    assert torch.equal(compiled(flags), localize(flags))


# --- issue 21 B1: nothing lost, nothing crashes -------------------------------------------------


def _paint_f64(w, size, jump, offset, out_size):
    """The reference painting, each pixel's covering weights summed in float64."""
    return reference.rollback_coverage(w.double(), size, jump, offset, out_size)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rollback_coverage_large_weight_does_not_zero_its_neighbours(device, dtype):
    """A 1e17 weight zeroed the 1.0s of its neighbours' pixels (summed-area-table cancellation:
    1e17 + 1 - 1e17 = 0); such frames are now summed over each pixel's covering cells only."""
    geometry = ((3, 3), (2, 2), (1, 1), (12, 12))
    w = torch.ones(2, 6, 6, dtype=dtype)
    w[0, 2, 2] = 1e17
    got = op(w.to(device), *geometry).cpu()
    expected = _paint_f64(w, *geometry).to(dtype)
    assert torch.equal(got, expected)
    assert got[0, 0, 0] == 1.0 and got[0, 11, 11] == 1.0  # far from the large cell: exact counts
    assert torch.equal(got[1], op(w[1:], *geometry)[0].cpu())  # the other frame is unaffected


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rollback_coverage_huge_finite_weights_do_not_spill(device, dtype):
    """1e308 weights (float64; 3e38 in float32) made inf/NaN on pixels they do not cover
    (running sums overflow, inf - inf = NaN); now each pixel is the IEEE sum of its own cells."""
    big = torch.finfo(dtype).max / 2
    geometry = ((3, 3), (2, 2), (1, 1), (12, 12))
    w = torch.ones(1, 6, 6, dtype=dtype)
    w[0, 1, 1], w[0, 4, 4], w[0, 1, 4] = big, big, -big
    got = op(w.to(device), *geometry).cpu()
    expected = _paint_f64(w, *geometry).to(dtype)
    assert torch.equal(got, expected)
    assert torch.isfinite(got).all()
    # pixels no large cell covers keep their exact integer coverage
    assert got[0, 11, 0] == expected[0, 11, 0] and got[0, 11, 0] in (1.0, 2.0, 4.0)


def test_rollback_coverage_mixed_magnitudes_match_float64_painting(device):
    """Scores spanning many orders of magnitude (tiny, large, negative) against the float64
    painting: as accurate as summing each pixel's covering weights, never cancellation noise."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 7, 9, generator=g, dtype=torch.float64)
    w = w * 10.0 ** torch.randint(-30, 30, w.shape, generator=g)
    geometry = ((5, 4), (2, 3), (2, 1), (17, 29))
    got = op(w.to(device), *geometry).cpu()
    expected = _paint_f64(w, *geometry)
    mass = _paint_f64(w.abs(), *geometry)  # sum of |w| over each pixel's covering cells
    assert ((got - expected).abs() <= 1e-14 * mass).all()
    assert torch.equal(got == 0, mass == 0)  # uncovered pixels exactly 0


def test_rollback_coverage_flags_keep_the_summed_area_table_path(device):
    """0/1 flags, integer counts and same-magnitude scores stay on the O(cells + pixels) path and
    are exact there; the exactness test is per frame."""
    g = torch.Generator().manual_seed(1)
    flags = (torch.rand(4, 9, 11, generator=g) > 0.5).float()
    geometry = ((11, 11), (4, 4), (5, 5), (41, 49))
    assert torch.equal(op(flags.to(device), *geometry).cpu(), _paint_f64(flags, *geometry).float())
    scores = torch.rand(4, 9, 11, generator=g, dtype=torch.float64)
    got = op(scores.to(device), *geometry).cpu()
    assert_close(got, _paint_f64(scores, *geometry), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rollback_coverage_absurd_out_size_is_refused_naming_out_size_and_bytes(device, dtype):
    """out_size (2^40, 1) reached the allocator, whose RuntimeError ("DefaultCPUAllocator: can't
    allocate memory") named no argument (fuzz: 41 cases); the checks bound the output by
    MAX_OUTPUT_BYTES on every device and in the fake kernel."""
    from vadx.ops.rollback_coverage import MAX_OUTPUT_BYTES

    assert MAX_OUTPUT_BYTES == 2**40
    w = torch.ones(2, 3, 4, dtype=dtype, device=device)
    item = w.element_size()
    side = 2**19
    rows = MAX_OUTPUT_BYTES // (2 * side * item)  # 2 frames of rows x side: exactly the bound
    over = rows + 1
    for out_size, shown in [((1 << 40, 1), f"{2 * item << 40}"),
                            ((2**31 - 1, 2**31 - 1), r"more than 2\^63"),
                            ((over, side), f"{2 * over * side * item}")]:
        pattern = (rf"rollback_coverage: out_size \[{out_size[0]}, {out_size[1]}\] for 2 frames "
                   rf"makes an output of {shown} bytes; it must be at most 2\^40 bytes \(1 TiB, "
                   rf"vadx.ops.rollback_coverage.MAX_OUTPUT_BYTES\)")
        with pytest.raises(ValueError, match=pattern):
            op(w, 3, 2, 1, out_size)
        with pytest.raises(ValueError, match=pattern):  # the fake kernel: the same bound and text
            op(w.to("meta"), 3, 2, 1, out_size)
    # at the bound: accepted by the checks (meta tensors allocate nothing)
    assert op(w.to("meta"), 3, 2, 1, (rows, side)).shape == (2, rows, side)
    assert op(w[:0], 3, 2, 1, (1 << 40, 1)).shape == (0, 1 << 40, 1)  # no frames: no bytes


def _memory_bytes() -> int | None:
    """RAM + swap where Linux refuses any single allocation beyond it (overcommit mode 0 or 2)."""
    try:
        mode = open("/proc/sys/vm/overcommit_memory").read().strip()
        info = dict(line.split(":", 1) for line in open("/proc/meminfo"))
    except OSError:
        return None
    if mode not in ("0", "2"):
        return None
    return sum(int(info[k].split()[0]) * 1024 for k in ("MemTotal", "SwapTotal"))


def test_rollback_coverage_output_that_cannot_be_allocated_names_out_size(device):
    """Under the bound but beyond the machine: the allocator's error becomes a ValueError naming
    out_size and the bytes, the same on CPU and CUDA."""
    side = 2**18  # 1 x side x side float64 = 2^39 bytes (512 GiB), under MAX_OUTPUT_BYTES
    if device == "cpu":
        memory = _memory_bytes()
        if memory is None or memory >= 2**39:
            pytest.skip("this machine may allocate 512 GiB (or overcommits), so the op would run")
    elif torch.cuda.get_device_properties(0).total_memory >= 2**39:
        pytest.skip("this GPU holds 512 GiB")
    w = torch.ones(1, 3, 4, dtype=torch.float64, device=device)
    with pytest.raises(ValueError, match=rf"rollback_coverage: out_size \[{side}, {side}\] for 1 "
                                         rf"frames needs {2**39} bytes \(a tensor of shape \[1, "
                                         rf"{side}, {side}\]\), which cannot be allocated on "
                                         rf"{device}.*; pass a smaller out_size or fewer frames"):
        op(w, 3, 2, 1, (side, side))
