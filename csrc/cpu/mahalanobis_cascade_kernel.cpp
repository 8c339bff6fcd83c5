// mahalanobis_cascade, CPU.
// Stage 1 works on tiles of positions taken straight from each frame's [m, H*W] view of the NCHW
// map (no permuted copy): the tile is centred (X[:, tile] - mu1 into a tile-sized, L2-resident
// buffer, so that features with a large offset keep their precision: W1 x - W1 mu1 would cancel
// catastrophically in float32), one BLAS GEMM W1 · (X[:, tile] - mu1), then each column is
// reduced to d1 while the tile is still in cache, and the suspicious columns are gathered there too. Stage 2 (the CT
// transform and G2) is two GEMMs over the gathered suspicious positions only, so its cost is
// proportional to their number.
#include "../mahalanobis_cascade.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/mv.h>
#include <ATen/ops/neg.h>
#include <ATen/ops/sub.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace vadx {
namespace {

// A tile of whitened features (m x tile values): large enough that per-GEMM overhead is small at
// small batches, small enough to stay in a core's L2 (1 MiB here).
constexpr int64_t kTileBytes = 1024 * 1024;

template <typename scalar_t>
void cascade(const at::Tensor& x3, const at::Tensor& w1, const at::Tensor& mu1, double beta,
             double alpha, const at::Tensor& ct_weight, const at::Tensor& ct_bias,
             const at::Tensor& mu2, const at::Tensor& w2, double phi, at::Tensor& d1,
             at::Tensor& d2, at::Tensor& label) {
  const int64_t B = x3.size(0), m = x3.size(1), HW = x3.size(2);
  const int64_t tile = std::max<int64_t>(16, kTileBytes / (std::max<int64_t>(m, 1) * sizeof(scalar_t)));
  const int64_t tiles_per_frame = (HW + tile - 1) / tile;
  const int64_t ntiles = B * tiles_per_frame;
  const scalar_t* x = x3.const_data_ptr<scalar_t>();
  const int64_t sb = x3.stride(0), sm = x3.stride(1), sp = x3.stride(2);
  const at::Tensor mu1_col = mu1.reshape({m, 1});
  scalar_t* d1p = d1.mutable_data_ptr<scalar_t>();
  uint8_t* lp = label.mutable_data_ptr<uint8_t>();

  // Per tile: the flat positions of its suspicious columns and their features, row by row.
  std::vector<std::vector<int64_t>> sus_pos(ntiles);
  std::vector<std::vector<scalar_t>> sus_x(ntiles);
  at::parallel_for(0, ntiles, 1, [&](int64_t t0, int64_t t1) {
    std::vector<double> acc;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / tiles_per_frame;
      const int64_t p0 = (t - b * tiles_per_frame) * tile;
      const int64_t len = std::min(tile, HW - p0);
      // Centring reads the strided [m, len] view in place into a contiguous tile; the GEMM then
      // runs on this thread (BLAS in a parallel region).
      const at::Tensor y = at::mm(w1, at::sub(x3.select(0, b).narrow(1, p0, len), mu1_col));
      const scalar_t* yp = y.const_data_ptr<scalar_t>();
      acc.assign(len, 0.0);
      for (int64_t i = 0; i < m; ++i) {  // row by row: unit-stride, vectorisable
        const scalar_t* row = yp + i * len;
        for (int64_t p = 0; p < len; ++p) {
          const double v = static_cast<double>(row[p]);
          acc[p] += v * v;
        }
      }
      for (int64_t p = 0; p < len; ++p) {
        const double dist = std::sqrt(acc[p]);
        const int64_t q = b * HW + p0 + p;
        d1p[q] = static_cast<scalar_t>(dist);
        lp[q] = stage1_label(dist, beta, alpha);
        if (lp[q] == kPending) {
          sus_pos[t].push_back(q);
        }
      }
      // Gather the suspicious columns while the tile is still in cache, channel-major so that
      // each pass over a channel row reads it forward.
      const int64_t ns = static_cast<int64_t>(sus_pos[t].size());
      sus_x[t].resize(ns * m);
      for (int64_t i = 0; i < m; ++i) {
        const scalar_t* row = x + b * sb + i * sm;
        for (int64_t k = 0; k < ns; ++k) {
          sus_x[t][k * m + i] = row[(sus_pos[t][k] - b * HW) * sp];
        }
      }
    }
  });

  std::vector<int64_t> offset(ntiles + 1, 0);
  for (int64_t t = 0; t < ntiles; ++t) {
    offset[t + 1] = offset[t] + static_cast<int64_t>(sus_pos[t].size());
  }
  const int64_t S = offset[ntiles];
  if (S == 0) {
    return;
  }
  at::Tensor xs = at::empty({S, m}, x3.options());
  scalar_t* xsp = xs.mutable_data_ptr<scalar_t>();
  at::parallel_for(0, ntiles, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      std::copy(sus_x[t].begin(), sus_x[t].end(), xsp + offset[t] * m);
    }
  });
  at::Tensor z = at::addmm(ct_bias, xs, ct_weight.t());  // the CT layer, [S, h]
  z.sigmoid_();
  // W2 (z - mu2) = W2 z - W2 mu2: the centring rides on the GEMM as a bias, no extra pass.
  const at::Tensor dz = at::addmm(at::mv(w2, mu2).neg_(), z, w2.t());  // whitened by G2, [S, h]
  const int64_t h = dz.size(1);
  const scalar_t* dzp = dz.const_data_ptr<scalar_t>();
  scalar_t* d2p = d2.mutable_data_ptr<scalar_t>();
  at::parallel_for(0, ntiles, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t k = offset[t]; k < offset[t + 1]; ++k) {
        double acc = 0.0;
        for (int64_t j = 0; j < h; ++j) {
          const double v = dzp[k * h + j];
          acc += v * v;
        }
        const double dist = std::sqrt(acc);
        const int64_t q = sus_pos[t][k - offset[t]];
        d2p[q] = static_cast<scalar_t>(dist);
        lp[q] = stage2_label(dist, phi);
      }
    }
  });
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> mahalanobis_cascade_cpu(
    const at::Tensor& feats, const at::Tensor& mu1, const at::Tensor& w1, double beta,
    double alpha, const at::Tensor& ct_weight, const at::Tensor& ct_bias, const at::Tensor& mu2,
    const at::Tensor& w2, double phi) {
  check_mahalanobis_cascade_args(feats, mu1, w1, beta, alpha, ct_weight, ct_bias, mu2, w2, phi);
  TORCH_CHECK_TYPE(feats.scalar_type() == at::kFloat || feats.scalar_type() == at::kDouble,
                   "mahalanobis_cascade: on CPU feats must be float32 or float64, got ",
                   feats.scalar_type(), " (float16/bfloat16 run on CUDA)");
  const int64_t B = feats.size(0), m = feats.size(1), H = feats.size(2), W = feats.size(3);
  at::Tensor d1 = at::empty({B, H, W}, feats.options());
  at::Tensor d2 = at::full({B, H, W}, std::numeric_limits<double>::quiet_NaN(), feats.options());
  at::Tensor label = at::empty({B, H, W}, feats.options().dtype(at::kByte));
  if (d1.numel() == 0) {
    return {d1, d2, label};
  }
  // A view for contiguous maps and channel slices of them; other layouts are copied once.
  const at::Tensor x3 = feats.reshape({B, m, H * W});
  AT_DISPATCH_FLOATING_TYPES(feats.scalar_type(), "mahalanobis_cascade_cpu", [&] {
    cascade<scalar_t>(x3, w1, mu1, beta, alpha, ct_weight, ct_bias, mu2, w2, phi, d1,
                      d2, label);
  });
  return {d1, d2, label};
}

TORCH_LIBRARY_IMPL(vadx, CPU, m) { m.impl("mahalanobis_cascade", &mahalanobis_cascade_cpu); }

}  // namespace vadx
