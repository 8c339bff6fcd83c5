// Receptive-field roll-back coverage (Sabokrou et al. §3.3): shared declarations and the per-pixel
// arithmetic, so the CPU and CUDA kernels compute bit-for-bit the same coverage.
//
// Coverage of a pixel is a sum of weights over a rectangle of cells (those whose fields cover it),
// so both kernels build one summed-area table (SAT) per frame and answer every pixel with four
// lookups: O(cells + pixels) per frame, whatever the field size — for frames whose SAT is exact
// in float64 (see SatExactness: 0/1 flags, integer counts, scores of similar magnitude); other
// frames are summed directly over each pixel's covering cells (O(pixels x cells per pixel)).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <c10/macros/Macros.h>
#include <c10/core/SymIntArrayRef.h>
#include <c10/util/ArrayRef.h>

#include <cmath>
#include <cstdint>

namespace vadx {

// One axis of the layer-k grid: cell i covers input pixels i * jump - offset ... + size - 1.
struct FieldAxis {
  int64_t size, jump, offset;
};

struct CoverageGeometry {
  FieldAxis h, w;
  int64_t B, Hk, Wk, H0, W0;
};

// Validates every argument (names the argument, the expected and the actual value) and returns
// the geometry. Called by both kernels before any work.
//
// The schema takes the geometry as SymInt[2] (out_size is typically a frame's shape, symbolic
// under torch.compile(dynamic=True)); symbolic values exist only while tracing, where the Python
// fake kernel runs, so a backend kernel always receives concrete ints and converts them here.
CoverageGeometry check_rollback_coverage_args(const at::Tensor& weights, c10::SymIntArrayRef size,
                                              c10::SymIntArrayRef jump, c10::SymIntArrayRef offset,
                                              c10::SymIntArrayRef out_size);

// The largest output [B, H0, W0] the checks accept, in bytes: 1 TiB, orders of magnitude above a
// real batch of frames. Absurd out_sizes are refused with a ValueError naming out_size and the
// bytes, on every device, before the allocator fails with a message that names no argument.
// vadx.ops.rollback_coverage.MAX_OUTPUT_BYTES (and the fake kernel) hold the same bound.
constexpr int64_t kMaxOutputBytes = int64_t{1} << 40;

// at::empty for a tensor whose size out_size decides (the output, the cell ranges of its rows and
// columns). A size under the bound that this machine or GPU cannot hold still fails: the
// allocator's error becomes the same ValueError on CPU and CUDA, naming out_size and the bytes.
at::Tensor empty_for_out_size(const CoverageGeometry& g, c10::IntArrayRef shape,
                              const at::TensorOptions& options);

C10_HOST_DEVICE inline int64_t floor_div(int64_t a, int64_t d) {  // d > 0; C++ truncates to zero
  const int64_t q = a / d;
  return (a % d != 0 && a < 0) ? q - 1 : q;
}

C10_HOST_DEVICE inline int64_t ceil_div(int64_t a, int64_t d) {  // d > 0
  const int64_t q = a / d;
  return (a % d != 0 && a > 0) ? q + 1 : q;
}

C10_HOST_DEVICE inline int64_t clamp_index(int64_t v, int64_t lo, int64_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// The cells [lo, hi) along one axis whose fields cover pixel y: i * jump - offset <= y <=
// i * jump - offset + size - 1, within [0, cells). An empty set comes back as lo == hi, so the
// SAT differences below give exactly 0 without a branch. No overflow: the checks bound size, jump
// and |offset| by 2^31 and y is an index into an allocated tensor.
struct CellRange {
  int64_t lo, hi;
};
static_assert(sizeof(CellRange) == 2 * sizeof(int64_t), "CellRange is stored as 2 int64");

C10_HOST_DEVICE inline CellRange covering_cells(int64_t y, FieldAxis a, int64_t cells) {
  const int64_t lo = clamp_index(ceil_div(y + a.offset - a.size + 1, a.jump), 0, cells);
  return {lo, clamp_index(floor_div(y + a.offset, a.jump) + 1, lo, cells)};
}

// Non-finite weights are kept out of the float64 SAT (NaN or inf there would poison every later
// entry, hence pixels that the cell does not cover, and inf - inf is NaN). They are counted per
// class in integer SATs instead, and a pixel's coverage is what summing its covering weights
// gives in IEEE arithmetic.
enum NonFinite : int { kFinite = -1, kNaN = 0, kPosInf = 1, kNegInf = 2 };
constexpr int kNonFiniteClasses = 3;

C10_HOST_DEVICE inline int nonfinite_class(double v) {
  if (v != v) {
    return kNaN;
  }
  if (v == HUGE_VAL) {  // HUGE_VAL: usable in device code (numeric_limits is not)
    return kPosInf;
  }
  return v == -HUGE_VAL ? kNegInf : kFinite;
}

C10_HOST_DEVICE inline double with_nonfinite(double finite_sum, int64_t nans, int64_t pos_infs,
                                             int64_t neg_infs) {
  if (nans > 0 || (pos_infs > 0 && neg_infs > 0)) {
    return HUGE_VAL - HUGE_VAL;  // NaN, spelled so that host and device code both accept it
  }
  if (pos_infs > 0) {
    return HUGE_VAL;
  }
  return neg_infs > 0 ? -HUGE_VAL : finite_sum;
}

// Exactness of a frame's SAT. Every SAT entry, and every intermediate of rectangle_sum, is the sum
// of some subset of the frame's finite weights, so it is bounded by M = sum |w|; if every weight
// is a multiple of 2^g (g = the lowest set bit's exponent over the weights), all of them are exact
// in float64 as long as M < 2^(53 + g). Then the four-lookup difference is the exact coverage.
// Otherwise (float scores spanning many orders of magnitude, 1e17 next to 1.0, weights near
// DBL_MAX whose running sums overflow) the differences of large running sums would cancel
// (1e17 + 1 - 1e17 = 0) or overflow (inf - inf = NaN) onto pixels the large weights do not
// cover, so such a frame is summed directly instead: per pixel, over its covering cells only.
//
// The exponent of v's lowest set bit (v finite, nonzero): v = m 2^e with m in [0.5, 1) of 53 bits.
C10_HOST_DEVICE inline int lowest_bit_exponent(double v) {
  int e = 0;
  const double m = ::frexp(v < 0 ? -v : v, &e);
  const unsigned long long bits = static_cast<unsigned long long>(::ldexp(m, 53));
#ifdef __CUDA_ARCH__
  const int tz = __ffsll(static_cast<long long>(bits)) - 1;
#else
  const int tz = __builtin_ctzll(bits);
#endif
  return e - 53 + tz;
}

// Running state of the exactness test over a frame's finite weights.
struct SatExactness {
  double abs_sum = 0.0;  // M, rounded (the margin below covers its rounding)
  int min_bit = 1 << 20;  // g; no nonzero weight yet: anything is exact

  C10_HOST_DEVICE void add(double v) {  // v finite
    if (v != 0.0) {
      abs_sum += v < 0 ? -v : v;
      const int b = lowest_bit_exponent(v);
      min_bit = b < min_bit ? b : min_bit;
    }
  }
  // M <= 2^(52 + g): a factor-2 margin over M < 2^(53 + g) for the rounding of abs_sum.
  C10_HOST_DEVICE bool exact() const {
    if (abs_sum == 0.0) {
      return true;
    }
    // ldexp underflows to 0 (not exact) or overflows to inf (exact) at the extremes, as it should.
    return abs_sum <= ::ldexp(1.0, (min_bit > 2000 ? 2000 : min_bit) + 52);
  }
};

// The fallback: the float64 sum of the covering cells' weights, row by row (each row's sum over
// the column range, added in row order), in IEEE arithmetic (NaN/inf included). The CPU kernel
// and the CUDA kernel use this same order, so their results stay bit-identical. When the frame's
// SAT is exact, this sum is exact too (same bound), so both paths give the same values.
template <typename scalar_t>
C10_HOST_DEVICE inline double direct_sum(const scalar_t* wb, int64_t sh, int64_t sw, CellRange r,
                                         CellRange c) {
  double acc = 0.0;
  for (int64_t i = r.lo; i < r.hi; ++i) {
    double row = 0.0;
    for (int64_t j = c.lo; j < c.hi; ++j) {
      row += static_cast<double>(wb[i * sh + j * sw]);
    }
    acc += row;
  }
  return acc;
}

// Sum over the rectangle of cells [r.lo, r.hi) x [c.lo, c.hi) from a SAT with rows
// top = S[r.lo] and bottom = S[r.hi]. Both kernels use this exact expression on the same SAT
// recurrence, so they agree bit for bit; integer weights give exact integer sums (below 2^53).
template <typename acc_t>
C10_HOST_DEVICE inline acc_t rectangle_sum(const acc_t* top, const acc_t* bottom, CellRange c) {
  return (bottom[c.hi] - top[c.hi]) - (bottom[c.lo] - top[c.lo]);
}

at::Tensor rollback_coverage_cpu(const at::Tensor& weights, c10::SymIntArrayRef size,
                                 c10::SymIntArrayRef jump, c10::SymIntArrayRef offset,
                                 c10::SymIntArrayRef out_size);

}  // namespace vadx
