// accumulator_score, CPU: streams in parallel, or — for fewer streams than threads — a three-phase
// parallel scan over time (per-block composition, serial carry across blocks, per-block replay).
//
// Each frame's clip-add depends on the previous frame's result (~12 cycles of latency for the add,
// max and min), so one sequence alone leaves a core mostly idle: every thread advances kLanes
// independent sequences (streams, or blocks of one stream) in lockstep.
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

constexpr int kLanes = 4;
// Below this many frames per block, splitting a stream costs more than it saves.
constexpr int64_t kMinScanBlock = 8192;

// frames [begin, begin + length) of the flattened [B * T] input, and the state before them.
struct Seq {
  int64_t begin, length;
  double x;
};

template <typename scalar_t>
inline void replay_frame(const scalar_t* sigma, scalar_t* out, int64_t t, double& x,
                         const SasRule p) {
  using opmath_t = at::opmath_type<scalar_t>;
  const double s = static_cast<double>(sigma[t]);
  if (s != s) {  // no confidence for this frame: the accumulator holds, the score is NaN
    out[t] = std::numeric_limits<scalar_t>::quiet_NaN();
    return;
  }
  x = apply(sas_step(s, p), x);
  // The logistic is computed here, per frame, rather than by ATen's vectorised sigmoid afterwards:
  // that one takes a scalar path for the tail of each call, so chunked streaming would no longer
  // reproduce the one-shot scores bit for bit.
  out[t] = static_cast<scalar_t>(logistic<opmath_t>(x));
}

// Replays every Seq in seqs, writing scores; each Seq's x becomes its state after its last frame.
template <typename scalar_t>
void replay(const scalar_t* sigma, scalar_t* out, Seq* seqs, int64_t n, const SasRule p) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    Seq* lane = seqs + i;
    int64_t common = lane[0].length;
    double x[kLanes];
    for (int j = 0; j < kLanes; ++j) {
      common = std::min(common, lane[j].length);
      x[j] = lane[j].x;
    }
    for (int64_t t = 0; t < common; ++t) {
      for (int j = 0; j < kLanes; ++j) {
        replay_frame(sigma + lane[j].begin, out + lane[j].begin, t, x[j], p);
      }
    }
    for (int j = 0; j < kLanes; ++j) {  // unequal tails, one lane at a time
      for (int64_t t = common; t < lane[j].length; ++t) {
        replay_frame(sigma + lane[j].begin, out + lane[j].begin, t, x[j], p);
      }
      lane[j].x = x[j];
    }
  }
  for (; i < n; ++i) {
    for (int64_t t = 0; t < seqs[i].length; ++t) {
      replay_frame(sigma + seqs[i].begin, out + seqs[i].begin, t, seqs[i].x, p);
    }
  }
}

template <typename scalar_t>
inline void compose_frame(const scalar_t* sigma, int64_t t, ClipAdd& f, const SasRule p) {
  f = compose(f, sas_step(static_cast<double>(sigma[t]), p));
}

// agg[i] = the frames of seqs[i] composed in time order.
template <typename scalar_t>
void compose_seqs(const scalar_t* sigma, const Seq* seqs, ClipAdd* agg, int64_t n,
                  const SasRule p) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const Seq* lane = seqs + i;
    int64_t common = lane[0].length;
    ClipAdd f[kLanes];
    for (int j = 0; j < kLanes; ++j) {
      common = std::min(common, lane[j].length);
      f[j] = clip_add_identity();
    }
    for (int64_t t = 0; t < common; ++t) {
      for (int j = 0; j < kLanes; ++j) {
        compose_frame(sigma + lane[j].begin, t, f[j], p);
      }
    }
    for (int j = 0; j < kLanes; ++j) {
      for (int64_t t = common; t < lane[j].length; ++t) {
        compose_frame(sigma + lane[j].begin, t, f[j], p);
      }
      agg[i + j] = f[j];
    }
  }
  for (; i < n; ++i) {
    agg[i] = clip_add_identity();
    for (int64_t t = 0; t < seqs[i].length; ++t) {
      compose_frame(sigma + seqs[i].begin, t, agg[i], p);
    }
  }
}

// One stream of T frames split into nblocks blocks; returns the state after the last frame.
template <typename scalar_t>
double scan_stream(const scalar_t* sigma, scalar_t* out, int64_t T, double x0, const SasRule p,
                   int64_t nblocks) {
  const int64_t block = (T + nblocks - 1) / nblocks;
  std::vector<Seq> seqs;
  for (int64_t begin = 0; begin < T; begin += block) {
    seqs.push_back({begin, std::min(block, T - begin), 0.0});
  }
  const int64_t n = static_cast<int64_t>(seqs.size());
  std::vector<ClipAdd> agg(n);
  at::parallel_for(0, n, kLanes, [&](int64_t b0, int64_t b1) {
    compose_seqs(sigma, seqs.data() + b0, agg.data() + b0, b1 - b0, p);
  });
  double x = x0;  // serial carry: each block's entry state
  for (int64_t b = 0; b < n; ++b) {
    seqs[b].x = x;
    x = apply(agg[b], x);
  }
  at::parallel_for(0, n, kLanes, [&](int64_t b0, int64_t b1) {
    replay(sigma, out, seqs.data() + b0, b1 - b0, p);
  });
  return seqs[n - 1].x;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> accumulator_score_cpu(const at::Tensor& sigma_in, double tau,
                                                         double nu, double lb, double ub,
                                                         const at::Tensor& x0_in,
                                                         c10::string_view decay) {
  const SasRule p = check_accumulator_score_args(sigma_in, tau, nu, lb, ub, x0_in, decay);
  const at::Tensor sigma = sigma_in.contiguous();
  const at::Tensor x0 = x0_in.contiguous();
  const int64_t B = sigma.size(0);
  const int64_t T = sigma.size(1);
  at::Tensor s = at::empty({B, T}, sigma.options());
  at::Tensor x_last = at::empty({B}, x0.options());
  const double* x0_p = x0.const_data_ptr<double>();
  double* x_last_p = x_last.mutable_data_ptr<double>();

  const int64_t threads = at::in_parallel_region() ? 1 : at::get_num_threads();
  const int64_t nblocks = std::min<int64_t>(threads * kLanes, T / kMinScanBlock);
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
      const int64_t grain = std::max<int64_t>(kLanes, 65536 / std::max<int64_t>(T, 1));
      at::parallel_for(0, B, grain, [&](int64_t b0, int64_t b1) {
        std::vector<Seq> seqs;
        for (int64_t b = b0; b < b1; ++b) {
          seqs.push_back({b * T, T, x0_p[b]});
        }
        replay(sig, out, seqs.data(), b1 - b0, p);
        for (int64_t b = b0; b < b1; ++b) {
          x_last_p[b] = seqs[b - b0].x;
        }
      });
    }
  });
  return {s, x_last};
}

TORCH_LIBRARY_IMPL(vadx, CPU, m) { m.impl("accumulator_score", &accumulator_score_cpu); }

}  // namespace vadx
