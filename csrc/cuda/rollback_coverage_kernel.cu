// rollback_coverage, CUDA: three launches on the current stream, no host synchronisation:
//   1. cell_ranges_kernel: the covering cells of every output row and column (once per call);
//   2. sat_kernel: one block per frame builds its float64 summed-area table (SAT), tests whether
//      it is exact (SatExactness in the header), and, only for frames that hold NaN/inf weights,
//      builds the integer SATs that count them;
//   3. coverage_kernel: one thread per pixel, four SAT lookups (or, in frames whose SAT is not
//      exact, the direct sum over the pixel's covering cells, in the CPU kernel's order); warps
//      run along output rows, so the stores (all the memory traffic that grows with the frame
//      size) are coalesced.
// Same SAT recurrence and per-pixel expression as the CPU kernel: the results are bit-identical.
#include "../rollback_coverage.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

namespace vadx {
namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = 8;       // coverage_kernel blocks: 32 columns x 8 output rows
constexpr int64_t kMaxBlocks = 65535;  // per grid dimension; the kernels loop over the rest

__global__ void __launch_bounds__(kThreads)
    cell_ranges_kernel(CoverageGeometry g, CellRange* __restrict__ rows,
                       CellRange* __restrict__ cols) {
  const int64_t n = g.H0 + g.W0;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < n;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (k < g.H0) {
      rows[k] = covering_cells(k, g.h, g.Hk);
    } else {
      cols[k - g.H0] = covering_cells(k - g.H0, g.w, g.Wk);
    }
  }
}

// S (Hk + 1 rows of pitch Wk + 1) = the SAT of value(i, j), by the CPU kernel's recurrence: a
// running sum along each row (a thread per row), then each entry added to the finished one above
// it (a thread per column, top to bottom). The grids are small (cells, not pixels), so the
// uncoalesced reads of the row pass cost little next to the per-pixel pass.
template <typename acc_t, typename F>
__device__ void block_sat(int64_t Hk, int64_t Wk, acc_t* S, const F& value) {
  const int64_t pitch = Wk + 1;
  for (int64_t i = threadIdx.x; i <= Hk; i += blockDim.x) {
    acc_t* row = S + i * pitch;
    acc_t run = 0;
    row[0] = 0;
    for (int64_t j = 0; j < Wk; ++j) {
      if (i > 0) {
        run += value(i - 1, j);
      }
      row[j + 1] = run;
    }
  }
  __syncthreads();
  for (int64_t j = threadIdx.x + 1; j <= Wk; j += blockDim.x) {  // row 0 and column 0 stay 0
    acc_t above = 0;
    for (int64_t i = 1; i <= Hk; ++i) {
      above = above + S[i * pitch + j];
      S[i * pitch + j] = above;
    }
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    sat_kernel(const scalar_t* __restrict__ w, int64_t sb, int64_t sh, int64_t sw,
               CoverageGeometry g, double* __restrict__ sat, int64_t* __restrict__ counts,
               bool* __restrict__ has_nonfinite, bool* __restrict__ direct) {
  const int64_t plane = (g.Hk + 1) * (g.Wk + 1);
  __shared__ double abs_sum;
  __shared__ int min_bit;
  for (int64_t b = blockIdx.x; b < g.B; b += gridDim.x) {
    const scalar_t* wb = w + b * sb;  // read through the strides: no contiguous copy
    if (threadIdx.x == 0) {
      const SatExactness empty;
      abs_sum = empty.abs_sum;
      min_bit = empty.min_bit;
    }
    __syncthreads();
    int any = 0;
    SatExactness mine;
    block_sat(g.Hk, g.Wk, sat + b * plane, [&](int64_t i, int64_t j) {
      const double v = static_cast<double>(wb[i * sh + j * sw]);
      const bool finite = nonfinite_class(v) == kFinite;
      any |= !finite;
      if (finite) {
        mine.add(v);
      }
      return finite ? v : 0.0;
    });
    atomicAdd(&abs_sum, mine.abs_sum);  // the test's factor-2 margin absorbs the sum's order
    atomicMin(&min_bit, mine.min_bit);
    // Frames write disjoint planes, so this is the only barrier needed between them.
    const bool special = __syncthreads_or(any);
    SatExactness frame;
    frame.abs_sum = abs_sum;
    frame.min_bit = min_bit;
    const bool sum_directly = !frame.exact();  // uniform across the block
    if (threadIdx.x == 0) {
      has_nonfinite[b] = special;
      direct[b] = sum_directly;
    }
    __syncthreads();  // abs_sum and min_bit are read before the next frame resets them
    if (special && !sum_directly) {  // uniform across the block
      for (int k = 0; k < kNonFiniteClasses; ++k) {
        block_sat(g.Hk, g.Wk, counts + (b * kNonFiniteClasses + k) * plane,
                  [&](int64_t i, int64_t j) -> int64_t {
                    return nonfinite_class(static_cast<double>(wb[i * sh + j * sw])) == k;
                  });
      }
    }
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(32 * kRowsPerBlock)
    coverage_kernel(const double* __restrict__ sat, const int64_t* __restrict__ counts,
                    const bool* __restrict__ has_nonfinite, const bool* __restrict__ direct,
                    const scalar_t* __restrict__ w, int64_t sb, int64_t sh, int64_t sw,
                    const CellRange* __restrict__ rows, const CellRange* __restrict__ cols,
                    CoverageGeometry g, scalar_t* __restrict__ out) {
  const int64_t pitch = g.Wk + 1;
  const int64_t plane = (g.Hk + 1) * pitch;
  for (int64_t t = blockIdx.y * static_cast<int64_t>(kRowsPerBlock) + threadIdx.y;
       t < g.B * g.H0; t += static_cast<int64_t>(gridDim.y) * kRowsPerBlock) {
    const int64_t b = t / g.H0;  // output row t is row y of frame b
    const CellRange r = rows[t - b * g.H0];
    const double* S = sat + b * plane;
    const bool special = has_nonfinite[b];
    const bool sum_directly = direct[b];
    for (int64_t x = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; x < g.W0;
         x += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const CellRange c = cols[x];
      if (sum_directly) {
        out[t * g.W0 + x] = static_cast<scalar_t>(direct_sum(w + b * sb, sh, sw, r, c));
        continue;
      }
      double v = rectangle_sum(S + r.lo * pitch, S + r.hi * pitch, c);
      if (special) {
        const int64_t* C = counts + b * kNonFiniteClasses * plane;
        int64_t n[kNonFiniteClasses];
#pragma unroll
        for (int k = 0; k < kNonFiniteClasses; ++k) {
          n[k] = rectangle_sum(C + k * plane + r.lo * pitch, C + k * plane + r.hi * pitch, c);
        }
        v = with_nonfinite(v, n[kNaN], n[kPosInf], n[kNegInf]);
      }
      out[t * g.W0 + x] = static_cast<scalar_t>(v);
    }
  }
}

unsigned blocks_for(int64_t n, int64_t per_block) {
  return static_cast<unsigned>(std::min((n + per_block - 1) / per_block, kMaxBlocks));
}

}  // namespace

at::Tensor rollback_coverage_cuda(const at::Tensor& weights, c10::SymIntArrayRef size,
                                  c10::SymIntArrayRef jump, c10::SymIntArrayRef offset,
                                  c10::SymIntArrayRef out_size) {
  const CoverageGeometry g = check_rollback_coverage_args(weights, size, jump, offset, out_size);
  const c10::cuda::CUDAGuard device_guard(weights.device());
  at::Tensor out = empty_for_out_size(g, {g.B, g.H0, g.W0}, weights.options());
  if (out.numel() == 0) {
    return out;
  }
  const int64_t plane = (g.Hk + 1) * (g.Wk + 1);
  const at::Tensor ranges =
      empty_for_out_size(g, {g.H0 + g.W0, 2}, weights.options().dtype(at::kLong));
  const at::Tensor sat = at::empty({g.B, plane}, weights.options().dtype(at::kDouble));
  // Written only for frames with NaN/inf weights, which the host cannot know without a sync.
  const at::Tensor counts =
      at::empty({g.B, kNonFiniteClasses, plane}, weights.options().dtype(at::kLong));
  const at::Tensor has_nonfinite = at::empty({g.B}, weights.options().dtype(at::kBool));
  const at::Tensor direct = at::empty({g.B}, weights.options().dtype(at::kBool));
  CellRange* rows = reinterpret_cast<CellRange*>(ranges.mutable_data_ptr<int64_t>());
  CellRange* cols = rows + g.H0;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  cell_ranges_kernel<<<blocks_for(g.H0 + g.W0, kThreads), kThreads, 0, stream>>>(g, rows, cols);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, weights.scalar_type(),
                                  "rollback_coverage_cuda", [&] {
    sat_kernel<scalar_t><<<blocks_for(g.B, 1), kThreads, 0, stream>>>(
        weights.const_data_ptr<scalar_t>(), weights.stride(0), weights.stride(1),
        weights.stride(2), g, sat.mutable_data_ptr<double>(), counts.mutable_data_ptr<int64_t>(),
        has_nonfinite.mutable_data_ptr<bool>(), direct.mutable_data_ptr<bool>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const dim3 grid(blocks_for(g.W0, 32), blocks_for(g.B * g.H0, kRowsPerBlock));
    coverage_kernel<scalar_t><<<grid, dim3(32, kRowsPerBlock), 0, stream>>>(
        sat.const_data_ptr<double>(), counts.const_data_ptr<int64_t>(),
        has_nonfinite.const_data_ptr<bool>(), direct.const_data_ptr<bool>(),
        weights.const_data_ptr<scalar_t>(), weights.stride(0), weights.stride(1),
        weights.stride(2), rows, cols, g, out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

TORCH_LIBRARY_IMPL(vadx, CUDA, m) { m.impl("rollback_coverage", &rollback_coverage_cuda); }

}  // namespace vadx
