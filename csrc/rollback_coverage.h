// Receptive-field roll-back coverage (Sabokrou et al. §3.3): shared declarations and the per-pixel
// arithmetic, so the CPU and CUDA kernels compute bit-for-bit the same coverage.
//
// Coverage of a pixel is a sum of weights over a rectangle of cells (those whose fields cover it),
// so both kernels build one summed-area table (SAT) per frame and answer every pixel with four
// lookups: O(cells + pixels) per frame, whatever the field size.
#pragma once

#include <ATen/core/Tensor.h>
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
