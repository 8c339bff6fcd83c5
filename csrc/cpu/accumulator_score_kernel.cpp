// accumulator_score, CPU: streams in parallel, or — for few long streams — a three-phase
// parallel scan over time (per-block composition, serial carry across blocks, per-block replay).
#include "../accumulator_score.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <vector>

namespace vadx {
namespace {

// Below this many steps per block, splitting a stream costs more than it saves.
constexpr int64_t kMinScanBlock = 16384;

struct SasParams {
  double tau, nu, lb, ub;
  SasDecay decay;
};

// Replays steps [t0, t1) of one stream from state x, writing scores; returns the state after t1.
template <typename scalar_t>
double replay(const scalar_t* sigma, scalar_t* out, int64_t t0, int64_t t1, double x,
              const SasParams& p) {
  using opmath_t = at::opmath_type<scalar_t>;
  for (int64_t t = t0; t < t1; ++t) {
    const double s = static_cast<double>(sigma[t]);
    if (s != s) {  // no confidence for this frame: the accumulator holds, the score is NaN
      out[t] = std::numeric_limits<scalar_t>::quiet_NaN();
      continue;
    }
    x = apply(sas_step(s, p.tau, p.nu, p.lb, p.ub, p.decay), x);
    out[t] = static_cast<scalar_t>(logistic<opmath_t>(x));
  }
  return x;
}

template <typename scalar_t>
ClipAdd compose_range(const scalar_t* sigma, int64_t t0, int64_t t1, const SasParams& p) {
  ClipAdd f = clip_add_identity();
  for (int64_t t = t0; t < t1; ++t) {
    f = compose(f, sas_step(static_cast<double>(sigma[t]), p.tau, p.nu, p.lb, p.ub, p.decay));
  }
  return f;
}

template <typename scalar_t>
double scan_stream(const scalar_t* sigma, scalar_t* out, int64_t T, double x0, const SasParams& p,
                   int64_t nblocks) {
  const int64_t block = (T + nblocks - 1) / nblocks;
  std::vector<ClipAdd> agg(nblocks);
  at::parallel_for(0, nblocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      agg[b] = compose_range(sigma, b * block, std::min(T, (b + 1) * block), p);
    }
  });
  std::vector<double> entry(nblocks);
  double x = x0;
  for (int64_t b = 0; b < nblocks; ++b) {
    entry[b] = x;
    x = apply(agg[b], x);
  }
  std::vector<double> exit(nblocks);
  at::parallel_for(0, nblocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      exit[b] = replay(sigma, out, b * block, std::min(T, (b + 1) * block), entry[b], p);
    }
  });
  return exit[nblocks - 1];
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> accumulator_score_cpu(const at::Tensor& sigma_in, double tau,
                                                         double nu, double lb, double ub,
                                                         const at::Tensor& x0_in,
                                                         c10::string_view decay) {
  const SasParams p{tau, nu, lb, ub,
                    check_accumulator_score_args(sigma_in, tau, nu, lb, ub, x0_in, decay)};
  const at::Tensor sigma = sigma_in.contiguous();
  const at::Tensor x0 = x0_in.contiguous();
  const int64_t B = sigma.size(0);
  const int64_t T = sigma.size(1);
  at::Tensor s = at::empty({B, T}, sigma.options());
  at::Tensor x_last = at::empty({B}, x0.options());
  const double* x0_p = x0.const_data_ptr<double>();
  double* x_last_p = x_last.mutable_data_ptr<double>();

  const int64_t threads = at::in_parallel_region() ? 1 : at::get_num_threads();
  const int64_t nblocks = std::min<int64_t>(threads, T / kMinScanBlock);
  const bool scan_time = B < threads && nblocks > 1;

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, sigma.scalar_type(),
                                  "accumulator_score_cpu", [&] {
    const scalar_t* sig = sigma.const_data_ptr<scalar_t>();
    scalar_t* out = s.mutable_data_ptr<scalar_t>();
    if (scan_time) {
      for (int64_t b = 0; b < B; ++b) {
        x_last_p[b] = scan_stream(sig + b * T, out + b * T, T, x0_p[b], p, nblocks);
      }
    } else {
      const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(T, 1));
      at::parallel_for(0, B, grain, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          x_last_p[b] = replay(sig + b * T, out + b * T, 0, T, x0_p[b], p);
        }
      });
    }
  });
  return {s, x_last};
}

TORCH_LIBRARY_IMPL(vadx, CPU, m) { m.impl("accumulator_score", &accumulator_score_cpu); }

}  // namespace vadx
