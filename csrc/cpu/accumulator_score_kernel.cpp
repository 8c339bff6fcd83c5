// accumulator_score, CPU: picks the vectorised kernel for this CPU (accumulator_score_kernel_isa.cpp,
// compiled per capability) and splits the work across threads: groups of W streams in parallel,
// or, for streams too few to fill a quarter of the lanes, an exact parallel scan over time.
//
// Each frame's clip-add depends on the previous frame's result (~12 cycles of latency for the add,
// max and min), so the kernels advance W sequences in lockstep, one per vector lane. With few
// streams the lanes (and threads) are filled by cutting each stream into blocks:
//   1. compose: each block's frames composed into one step clip(x + A, L, U) (parallel, vectorised);
//   2. carry: each block's entry state from the composed steps (serial, one step per block);
//   3. replay: every block from its entry state (parallel, vectorised), scores written;
//   4. check: composing rounds the state differently from stepping frame by frame, so a block
//      whose entry differs (bitwise) from the replayed end of the block before it is replayed again
//      from that end (serial). Block 0 starts from x0, so by induction every score and the final
//      state equal the frame-by-frame evaluation bit for bit: the scan path, the stream path and
//      any chunking of a stream give identical results. Re-replays are rare when streams hit their
//      bounds (clipping makes the composed and stepped states equal); a stream that drifts without
//      ever clipping falls back to serial speed, never to a different result.
#include "accumulator_score_kernel_isa.h"

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace vadx {
namespace {

// Blocks shorter than this are not worth a scan (each costs a serial carry step and a check).
constexpr int64_t kMinScanBlock = 1024;
// Values per parallel task on the stream path, so small inputs do not pay for waking threads.
constexpr int64_t kGrainValues = 1 << 15;

// The variant for the capability ATen itself runs (at::get_cpu_capability(): the CPU's best,
// or ATEN_CPU_CAPABILITY), chosen once.
const SasCpuKernels& sas_kernels() {
  static const SasCpuKernels& kernels = []() -> const SasCpuKernels& {
    const std::string capability = at::get_cpu_capability();
#ifdef VADX_HAVE_CPU_CAPABILITY_AVX512
    if (capability == "AVX512") {
      return AVX512::sas_cpu_kernels();
    }
#endif
#ifdef VADX_HAVE_CPU_CAPABILITY_AVX2
    if (capability == "AVX2" || capability == "AVX512") {
      return AVX2::sas_cpu_kernels();
    }
#endif
    return DEFAULT::sas_cpu_kernels();
  }();
  return kernels;
}

void replay(const SasCpuKernels& k, const SasRows<float>& rows, float* out, double* x,
            const SasRule& p) {
  k.replay_f32(rows, out, x, p);
}
void replay(const SasCpuKernels& k, const SasRows<double>& rows, double* out, double* x,
            const SasRule& p) {
  k.replay_f64(rows, out, x, p);
}
void compose(const SasCpuKernels& k, const SasRows<float>& rows, ClipAdd* f, const SasRule& p) {
  k.compose_f32(rows, f, p);
}
void compose(const SasCpuKernels& k, const SasRows<double>& rows, ClipAdd* f, const SasRule& p) {
  k.compose_f64(rows, f, p);
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

// fn(k) for every task k in [0, ntasks), in one parallel region. Threads take the next task from
// a shared counter rather than a fixed share, so a thread slowed by another process on its core
// (a shared machine) does not hold the others up at the end.
template <typename Fn>
void parallel_tasks(int64_t ntasks, const Fn& fn) {
  const int64_t threads = at::in_parallel_region() ? 1 : at::get_num_threads();
  if (ntasks <= 1 || threads <= 1) {
    for (int64_t k = 0; k < ntasks; ++k) {
      fn(k);
    }
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min(threads, ntasks), 1, [&](int64_t, int64_t) {
    for (int64_t k = next++; k < ntasks; k = next++) {
      fn(k);
    }
  });
}

// B streams of T frames, each cut into nblocks blocks of L = T / nblocks frames (+ a tail of
// fewer than nblocks frames); see the top of this file. Each phase is one parallel region over
// all streams' blocks (W blocks of one stream per task). x: the states, advanced in place.
template <typename scalar_t>
void scan_streams(const SasCpuKernels& k, const scalar_t* sigma, scalar_t* out, int64_t B,
                  int64_t T, double* x, const SasRule& p, int64_t nblocks, int64_t W) {
  const int64_t L = T / nblocks;
  const int64_t groups = (nblocks + W - 1) / W;  // per stream
  // Task t: blocks [k0, k1) of stream b.
  const auto blocks = [&](int64_t t, int64_t& b, int64_t& k0, int64_t& k1) {
    b = t / groups;
    k0 = (t % groups) * W;
    k1 = std::min(k0 + W, nblocks);
    return SasRows<scalar_t>{sigma + b * T + k0 * L, k1 - k0, L, L};
  };
  std::vector<ClipAdd> agg(B * nblocks);
  parallel_tasks(B * groups, [&](int64_t t) {
    int64_t b, k0, k1;
    const SasRows<scalar_t> rows = blocks(t, b, k0, k1);
    compose(k, rows, agg.data() + b * nblocks + k0, p);
  });
  std::vector<double> entry(B * nblocks);
  for (int64_t b = 0; b < B; ++b) {  // the carry: each block's entry state
    double* e = entry.data() + b * nblocks;
    e[0] = x[b];
    for (int64_t j = 1; j < nblocks; ++j) {
      e[j] = apply(agg[b * nblocks + j - 1], e[j - 1]);
    }
  }
  std::vector<double> end = entry;
  parallel_tasks(B * groups, [&](int64_t t) {
    int64_t b, k0, k1;
    const SasRows<scalar_t> rows = blocks(t, b, k0, k1);
    replay(k, rows, out + b * T + k0 * L, end.data() + b * nblocks + k0, p);
  });
  for (int64_t b = 0; b < B; ++b) {  // the check, then the tail
    double* e = end.data() + b * nblocks;
    for (int64_t j = 1; j < nblocks; ++j) {
      if (!same_bits(entry[b * nblocks + j], e[j - 1])) {
        e[j] = e[j - 1];
        const int64_t begin = b * T + j * L;
        replay(k, SasRows<scalar_t>{sigma + begin, 1, L, L}, out + begin, e + j, p);
      }
    }
    x[b] = e[nblocks - 1];
    if (nblocks * L < T) {
      const int64_t begin = b * T + nblocks * L;
      const int64_t n = T - nblocks * L;
      replay(k, SasRows<scalar_t>{sigma + begin, 1, n, n}, out + begin, x + b, p);
    }
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> accumulator_score_cpu(const at::Tensor& sigma_in, double tau,
                                                         double nu, double lb, double ub,
                                                         const at::Tensor& x0_in,
                                                         c10::string_view decay) {
  const SasRule p = check_accumulator_score_args(sigma_in, tau, nu, lb, ub, x0_in, decay);
  // float16/bfloat16 run as float32: the same values (both widen exactly), and the score rounded
  // once from the float32 logistic, as the opmath type prescribes.
  const bool reduced = sigma_in.scalar_type() == at::kHalf || sigma_in.scalar_type() == at::kBFloat16;
  const at::Tensor sigma = reduced ? sigma_in.to(at::kFloat).contiguous() : sigma_in.contiguous();
  const int64_t B = sigma.size(0);
  const int64_t T = sigma.size(1);
  at::Tensor s = at::empty({B, T}, sigma.options());
  at::Tensor x_last = x0_in.clone(at::MemoryFormat::Contiguous);  // the state, advanced in place
  double* x = x_last.mutable_data_ptr<double>();

  if (B > 0 && T > 0) {
    const SasCpuKernels& k = sas_kernels();
    const int64_t threads = at::in_parallel_region() ? 1 : at::get_num_threads();
    const auto run = [&](auto* sig, auto* out, int64_t W) {
      using scalar_t = std::remove_const_t<std::remove_pointer_t<decltype(sig)>>;
      // Few streams leave lanes (and threads) idle: cut each into blocks, whole groups of W
      // blocks, enough groups for every thread. The scan reads sigma twice and composes (~1.5x
      // the work of one pass), so it pays where at most a quarter of the lanes would be busy.
      const int64_t want = W * ((threads + B - 1) / B);
      const int64_t nblocks = std::min(want, T / kMinScanBlock);
      if (4 * B <= threads * W && nblocks >= 4) {
        scan_streams<scalar_t>(k, sig, out, B, T, x, p, nblocks, W);
        return;
      }
      const int64_t groups = (B + W - 1) / W;
      const int64_t per_task = std::max<int64_t>(1, kGrainValues / (W * T));  // groups per task
      parallel_tasks((groups + per_task - 1) / per_task, [&](int64_t t) {
        const int64_t r0 = t * per_task * W;
        const int64_t r1 = std::min(r0 + per_task * W, B);
        replay(k, SasRows<scalar_t>{sig + r0 * T, r1 - r0, T, T}, out + r0 * T, x + r0, p);
      });
    };
    if (sigma.scalar_type() == at::kDouble) {
      run(sigma.const_data_ptr<double>(), s.mutable_data_ptr<double>(), k.lanes_f64);
    } else {
      run(sigma.const_data_ptr<float>(), s.mutable_data_ptr<float>(), k.lanes_f32);
    }
  }
  if (reduced) {
    s = s.to(sigma_in.scalar_type());
  }
  return {s, x_last};
}

TORCH_LIBRARY_IMPL(vadx, CPU, m) { m.impl("accumulator_score", &accumulator_score_cpu); }

}  // namespace vadx
