// rollback_coverage, CPU: a float64 summed-area table (SAT) per frame, in parallel over frames,
// then the output rows in parallel over frames x rows, four SAT lookups per pixel; frames whose
// SAT would not be exact are summed directly over each pixel's covering cells (see the header).
//
// Output rows whose covering cell rows are the same are identical (with jump J, runs of up to J
// rows), so a row equal to the one before it in the same frame is copied instead of recomputed.
#include "../rollback_coverage.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

namespace vadx {
namespace {

constexpr int64_t kGrainElements = 32768;  // per parallel task: enough work to amortise a task

// S[i][j] = sum of value(r, c) over r < i, c < j, for S of Hk + 1 rows of pitch Wk + 1.
// The recurrence of the CUDA kernel: each row's running sum added to the SAT entry above.
template <typename acc_t, typename F>
void build_sat(int64_t Hk, int64_t Wk, acc_t* S, const F& value) {
  const int64_t pitch = Wk + 1;
  std::fill(S, S + pitch, acc_t(0));
  for (int64_t i = 0; i < Hk; ++i) {
    const acc_t* above = S + i * pitch;
    acc_t* row = S + (i + 1) * pitch;
    acc_t run = 0;
    row[0] = 0;
    for (int64_t j = 0; j < Wk; ++j) {
      run += value(i, j);
      row[j + 1] = above[j + 1] + run;
    }
  }
}

template <typename scalar_t>
void coverage(const at::Tensor& weights, const CoverageGeometry& g, CellRange* rows,
              CellRange* cols, scalar_t* out) {
  const int64_t B = g.B, H0 = g.H0, W0 = g.W0;
  const int64_t pitch = g.Wk + 1;
  const int64_t plane = (g.Hk + 1) * pitch;
  // Non-contiguous weights are read through their strides: the SAT pass is the only reader.
  const scalar_t* w = weights.const_data_ptr<scalar_t>();
  const int64_t sb = weights.stride(0), sh = weights.stride(1), sw = weights.stride(2);

  for (int64_t y = 0; y < H0; ++y) {
    rows[y] = covering_cells(y, g.h, g.Hk);
  }
  for (int64_t x = 0; x < W0; ++x) {
    cols[x] = covering_cells(x, g.w, g.Wk);
  }

  std::vector<double> sat(B * plane);
  std::vector<char> has_nonfinite(B);
  std::vector<char> direct(B);  // the frame's SAT is not exact: sum directly (see the header)
  const int64_t sat_grain = std::max<int64_t>(1, kGrainElements / plane);
  at::parallel_for(0, B, sat_grain, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const scalar_t* wb = w + b * sb;
      bool any = false;
      SatExactness exactness;
      build_sat(g.Hk, g.Wk, sat.data() + b * plane, [&](int64_t i, int64_t j) {
        const double v = static_cast<double>(wb[i * sh + j * sw]);
        const bool finite = nonfinite_class(v) == kFinite;
        any |= !finite;
        if (finite) {
          exactness.add(v);
        }
        return finite ? v : 0.0;
      });
      has_nonfinite[b] = any;
      direct[b] = !exactness.exact();
    }
  });

  // Frames with NaN/inf weights also get integer SATs counting each class (see the header),
  // unless they are summed directly (IEEE sums need no counts).
  std::vector<int64_t> slot(B, -1);
  int64_t flagged = 0;
  for (int64_t b = 0; b < B; ++b) {
    if (has_nonfinite[b] && !direct[b]) {
      slot[b] = flagged++;
    }
  }
  std::vector<int64_t> counts(flagged * kNonFiniteClasses * plane);
  if (flagged > 0) {
    at::parallel_for(0, B, sat_grain, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        if (slot[b] < 0) {
          continue;
        }
        const scalar_t* wb = w + b * sb;
        for (int k = 0; k < kNonFiniteClasses; ++k) {
          int64_t* C = counts.data() + (slot[b] * kNonFiniteClasses + k) * plane;
          build_sat(g.Hk, g.Wk, C, [&](int64_t i, int64_t j) -> int64_t {
            return nonfinite_class(static_cast<double>(wb[i * sh + j * sw])) == k;
          });
        }
      }
    });
  }

  const int64_t row_grain = std::max<int64_t>(1, kGrainElements / W0);
  at::parallel_for(0, B * H0, row_grain, [&](int64_t t0, int64_t t1) {
    const scalar_t* prev = nullptr;  // the last row this task computed, and its frame and cells
    int64_t prev_b = -1;
    CellRange prev_r{0, 0};
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / H0;
      const CellRange r = rows[t - b * H0];
      scalar_t* dst = out + t * W0;
      if (prev != nullptr && b == prev_b && r.lo == prev_r.lo && r.hi == prev_r.hi) {
        std::copy(prev, prev + W0, dst);
        continue;
      }
      const double* S = sat.data() + b * plane;
      const double* top = S + r.lo * pitch;
      const double* bottom = S + r.hi * pitch;
      if (direct[b]) {
        const scalar_t* wb = w + b * sb;
        for (int64_t x = 0; x < W0; ++x) {  // equal column ranges (runs of up to J) are copied
          dst[x] = x > 0 && cols[x].lo == cols[x - 1].lo && cols[x].hi == cols[x - 1].hi
                       ? dst[x - 1]
                       : static_cast<scalar_t>(direct_sum(wb, sh, sw, r, cols[x]));
        }
      } else if (slot[b] < 0) {
        for (int64_t x = 0; x < W0; ++x) {
          dst[x] = static_cast<scalar_t>(rectangle_sum(top, bottom, cols[x]));
        }
      } else {
        const int64_t* C = counts.data() + slot[b] * kNonFiniteClasses * plane;
        int64_t n[kNonFiniteClasses];
        for (int64_t x = 0; x < W0; ++x) {
          for (int k = 0; k < kNonFiniteClasses; ++k) {
            const int64_t* Ck = C + k * plane;
            n[k] = rectangle_sum(Ck + r.lo * pitch, Ck + r.hi * pitch, cols[x]);
          }
          const double v = rectangle_sum(top, bottom, cols[x]);
          dst[x] = static_cast<scalar_t>(with_nonfinite(v, n[kNaN], n[kPosInf], n[kNegInf]));
        }
      }
      prev = dst;
      prev_b = b;
      prev_r = r;
    }
  });
}

}  // namespace

at::Tensor rollback_coverage_cpu(const at::Tensor& weights, c10::SymIntArrayRef size,
                                 c10::SymIntArrayRef jump, c10::SymIntArrayRef offset,
                                 c10::SymIntArrayRef out_size) {
  const CoverageGeometry g = check_rollback_coverage_args(weights, size, jump, offset, out_size);
  at::Tensor out = empty_for_out_size(g, {g.B, g.H0, g.W0}, weights.options());
  if (out.numel() == 0) {
    return out;
  }
  // a tensor, not a std::vector: as on CUDA, a failure to allocate it names out_size
  const at::Tensor ranges =
      empty_for_out_size(g, {g.H0 + g.W0, 2}, weights.options().dtype(at::kLong));
  CellRange* rows = reinterpret_cast<CellRange*>(ranges.mutable_data_ptr<int64_t>());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, weights.scalar_type(),
                                  "rollback_coverage_cpu", [&] {
    coverage<scalar_t>(weights, g, rows, rows + g.H0, out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

TORCH_LIBRARY_IMPL(vadx, CPU, m) { m.impl("rollback_coverage", &rollback_coverage_cpu); }

}  // namespace vadx
