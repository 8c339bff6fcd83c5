// mahalanobis_cascade, CUDA.
// Stage 1: cuBLAS GEMMs W1 · (X_b - mu1) over chunks of frames (bounded [chunk, m, H*W] buffers
// for the centred and the whitened chunk, never a copy of the whole batch; no permuted copy;
// centring before the product keeps features with a large offset precise, where W1 x - W1 mu1
// would cancel catastrophically in float32), then one kernel reduces each position's
// column to d1 and labels it. Stage 2: the suspicious positions are compacted (one device-to-host
// count per call, not per frame), gathered and sent through the CT and G2 GEMMs, so its cost is
// proportional to their number.
#include "../mahalanobis_cascade.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/mv.h>
#include <ATen/ops/nonzero.h>
#include <ATen/ops/sub.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>

namespace vadx {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kChunkElems = int64_t(1) << 25;  // whitened values per stage-1 chunk

int blocks_for(int64_t n) {
  return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8));
}

// One thread per position; consecutive threads read consecutive positions of each channel row.
template <typename scalar_t>
__global__ void stage1_kernel(const scalar_t* __restrict__ y, int64_t m, int64_t hw, int64_t npos, double beta, double alpha,
                              scalar_t* __restrict__ d1, uint8_t* __restrict__ label) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < npos;
       q += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = q / hw, p = q - b * hw;
    const scalar_t* col = y + b * m * hw + p;
    acc_t acc = 0;
    for (int64_t i = 0; i < m; ++i) {
      const acc_t v = static_cast<acc_t>(col[i * hw]);
      acc += v * v;
    }
    const double dist = ::sqrt(static_cast<double>(acc));
    d1[q] = static_cast<scalar_t>(dist);
    label[q] = stage1_label(dist, beta, alpha);
  }
}

// xs[k, i] = feats[b, i, p] for the k-th suspicious flat position b * hw + p.
template <typename scalar_t>
__global__ void gather_kernel(const scalar_t* __restrict__ x, int64_t sb, int64_t sm, int64_t sp,
                              const int64_t* __restrict__ pos, int64_t S, int64_t m, int64_t hw,
                              scalar_t* __restrict__ xs) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < S * m;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = e / m, i = e - k * m;
    const int64_t b = pos[k] / hw, p = pos[k] - b * hw;
    xs[e] = x[b * sb + i * sm + p * sp];
  }
}

// One warp per suspicious position: d2 = ||row k of dz||, then its G2 label.
template <typename scalar_t>
__global__ void stage2_kernel(const scalar_t* __restrict__ dz, const int64_t* __restrict__ pos,
                              int64_t S, int64_t h, double phi, scalar_t* __restrict__ d2,
                              uint8_t* __restrict__ label) {
  using acc_t = at::opmath_type<scalar_t>;
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t k = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32; k < S; k += warps) {
    acc_t acc = 0;
    for (int64_t j = lane; j < h; j += 32) {
      const acc_t v = static_cast<acc_t>(dz[k * h + j]);
      acc += v * v;
    }
    for (int offset = 16; offset > 0; offset /= 2) {
      acc += __shfl_down_sync(0xffffffffu, acc, offset);
    }
    if (lane == 0) {
      const double dist = ::sqrt(static_cast<double>(acc));
      d2[pos[k]] = static_cast<scalar_t>(dist);
      label[pos[k]] = stage2_label(dist, phi);
    }
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> mahalanobis_cascade_cuda(
    const at::Tensor& feats, const at::Tensor& mu1, const at::Tensor& w1, double beta,
    double alpha, const at::Tensor& ct_weight, const at::Tensor& ct_bias, const at::Tensor& mu2,
    const at::Tensor& w2, double phi) {
  check_mahalanobis_cascade_args(feats, mu1, w1, beta, alpha, ct_weight, ct_bias, mu2, w2, phi);
  const c10::cuda::CUDAGuard device_guard(feats.device());
  const int64_t B = feats.size(0), m = feats.size(1), H = feats.size(2), W = feats.size(3);
  const int64_t hw = H * W;
  at::Tensor d1 = at::empty({B, H, W}, feats.options());
  at::Tensor d2 = at::full({B, H, W}, std::numeric_limits<double>::quiet_NaN(), feats.options());
  at::Tensor label = at::empty({B, H, W}, feats.options().dtype(at::kByte));
  if (d1.numel() == 0) {
    return {d1, d2, label};
  }
  const at::Tensor x3 = feats.reshape({B, m, hw});
  const at::Tensor mu1_col = mu1.reshape({1, m, 1});
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t chunk = std::max<int64_t>(1, kChunkElems / std::max<int64_t>(1, m * hw));

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feats.scalar_type(),
                                  "mahalanobis_cascade_cuda", [&] {
    for (int64_t b0 = 0; b0 < B; b0 += chunk) {
      const int64_t nb = std::min(chunk, B - b0);
      const at::Tensor y =
          at::matmul(w1, at::sub(x3.narrow(0, b0, nb), mu1_col)).contiguous();  // [nb, m, hw]
      const int64_t npos = nb * hw;
      stage1_kernel<scalar_t><<<blocks_for(npos), kThreads, 0, stream>>>(
          y.const_data_ptr<scalar_t>(), m, hw, npos, beta, alpha,
          d1.mutable_data_ptr<scalar_t>() + b0 * hw, label.mutable_data_ptr<uint8_t>() + b0 * hw);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    const at::Tensor pos = at::nonzero(label.reshape({-1}).eq(kPending)).reshape({-1});
    const int64_t S = pos.size(0);  // the one synchronisation of the call
    if (S == 0) {
      return;
    }
    at::Tensor xs = at::empty({S, m}, feats.options());
    gather_kernel<scalar_t><<<blocks_for(S * m), kThreads, 0, stream>>>(
        x3.const_data_ptr<scalar_t>(), x3.stride(0), x3.stride(1), x3.stride(2),
        pos.const_data_ptr<int64_t>(), S, m, hw, xs.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    at::Tensor z = at::addmm(ct_bias, xs, ct_weight.t());
    z.sigmoid_();
    const at::Tensor dz = at::addmm(at::mv(w2, mu2).neg_(), z, w2.t()).contiguous();
    stage2_kernel<scalar_t><<<blocks_for(S * 32), kThreads, 0, stream>>>(
        dz.const_data_ptr<scalar_t>(), pos.const_data_ptr<int64_t>(), S, dz.size(1), phi,
        d2.mutable_data_ptr<scalar_t>(), label.mutable_data_ptr<uint8_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {d1, d2, label};
}

TORCH_LIBRARY_IMPL(vadx, CUDA, m) { m.impl("mahalanobis_cascade", &mahalanobis_cascade_cuda); }

}  // namespace vadx
