// sista, CPU: the recurrence's GEMM and the fused elementwise part of each ISTA step (the drivers
// in ../sista.cpp run the T x K loop). Rows are independent, so at::parallel_for splits the batch.
#include "../sista.h"

#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/mm.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <optional>

namespace vadx {
namespace {

// The per-step products are [B, n] x [n, n] with small B (21 patches a frame when streaming).
// MKL's sgemm behind at::mm runs them at half the speed of oneDNN's matmul on AMD CPUs (this
// project's EPYC: 2.3 vs 1.2 ms at B = 21, n = 2048; 4.8 vs 3.5 ms at B = 84). ATen exposes
// oneDNN's float32 matmul as the op mkldnn::_linear_pointwise (the one Inductor emits for linear
// layers): used when this torch has it and oneDNN is enabled (torch.backends.mkldnn), at::mm
// otherwise (float64, empty operands, builds without oneDNN). Both accumulate in float32.
//
// That op is internal to ATen: found by name and used only if its schema is the one the stack
// below is built for. A torch that renames or changes it would silently halve float32 speed, so
// every product is counted by path (sista_cpu_gemm_counts(), exposed as vadx._C) and a test
// asserts that float32 products take oneDNN where this torch has it.
const std::optional<c10::OperatorHandle>& onednn_linear() {
  static const std::optional<c10::OperatorHandle> op = []() -> std::optional<c10::OperatorHandle> {
    auto found = c10::Dispatcher::singleton().findOp({"mkldnn::_linear_pointwise", ""});
    if (!found || !found->hasSchema()) return std::nullopt;
    const auto& args = found->schema().arguments();
    const char* names[] = {"X", "W", "B", "attr", "scalars", "algorithm"};
    if (args.size() != 6 || found->schema().returns().size() != 1) return std::nullopt;
    for (size_t i = 0; i < 6; ++i) {
      if (args[i].name() != names[i]) return std::nullopt;
    }
    return found;
  }();
  return op;
}

// On Intel CPUs MKL's sgemm (at::mm) is the faster one for small dictionaries: measured on this
// project's Xeon (1 thread, min of 80): [84, 512] x [512, 512] 0.35 ms vs oneDNN's 0.40 (the
// training size: 60 of them per forward + backward); even at k = 1024 (0.69/1.49 vs 0.65/1.46 ms
// at B = 21/84), and oneDNN ahead at 2048 (2.85 vs 2.31 ms at B = 21). So float32 products with
// an inner dimension up to kMklMaxK go to at::mm on Intel, all others to oneDNN as above.
constexpr int64_t kMklMaxK = 512;

bool cpu_is_intel() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool intel = [] {
    unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return false;
    return ebx == 0x756e6547u && edx == 0x49656e69u && ecx == 0x6c65746eu;  // "GenuineIntel"
  }();
  return intel;
#else
  return false;
#endif
}

// The largest inner dimension whose float32 products take at::mm although oneDNN is available.
int64_t mkl_max_k() { return cpu_is_intel() ? kMklMaxK : 0; }

// Products per path since the library loaded (relaxed: counters, not synchronisation; one
// increment per GEMM of at least [B, n] x [n, n] costs nothing measurable).
std::atomic<int64_t> onednn_products{0};
std::atomic<int64_t> mm_products{0};

at::Tensor linear_cpu(const at::Tensor& a, const at::Tensor& w, at::Tensor& out) {
  const auto& onednn = onednn_linear();
  if (onednn && a.scalar_type() == at::kFloat && a.numel() > 0 && w.numel() > 0 &&
      w.size(1) > mkl_max_k() && at::globalContext().userEnabledMkldnn()) {
    torch::jit::Stack stack{a.contiguous(), w, c10::IValue(), "none",
                            c10::List<std::optional<at::Scalar>>(), c10::IValue()};
    onednn->callBoxed(&stack);
    onednn_products.fetch_add(1, std::memory_order_relaxed);
    return stack[0].toTensor();
  }
  mm_products.fetch_add(1, std::memory_order_relaxed);
  return at::mm_out(out, a, w.t());
}

// Rows per task: a task should outweigh its scheduling (a step's work per row is only O(n)).
int64_t row_grain(int64_t n) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)); }

// The row loops take restrict pointers so that they vectorise (in and prev alias at k = 0, but
// both are only read).
template <bool kNonneg, typename scalar_t, typename opmath_t>
void forward_row(const scalar_t* __restrict in, const scalar_t* __restrict prev,
                 const scalar_t* __restrict prod, const scalar_t* __restrict bx,
                 scalar_t* __restrict out, int64_t n, opmath_t c, opmath_t q, opmath_t beta) {
  for (int64_t j = 0; j < n; ++j) {
    const opmath_t pre = sista_pre<opmath_t>(in[j], prev[j], prod[j], bx[j], c, q);
    out[j] = static_cast<scalar_t>(sista_soft<kNonneg>(pre, beta));
  }
}

template <bool kNonneg>
void forward_step_cpu_impl(const SistaForwardStep& step) {
  AT_DISPATCH_FLOATING_TYPES(step.in.scalar_type(), "sista_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const SistaForwardArgs<scalar_t> p(step);
    const opmath_t c = sista_c<opmath_t>(p.gamma);
    const opmath_t beta = static_cast<opmath_t>(*p.lambda1) * c;
    at::parallel_for(0, p.B, row_grain(p.n), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        forward_row<kNonneg>(p.in.row(b), p.prev.row(b), p.prod.row(b), p.bx.row(b), p.out.row(b),
                             p.n, c, sista_q(p.s, b, p.lambda2, c), beta);
      }
    });
  });
}

void forward_step_cpu(const SistaForwardStep& step) {
  step.nonneg ? forward_step_cpu_impl<true>(step) : forward_step_cpu_impl<false>(step);
}

// Row loops with sums: blocks of kLanes independent partial sums, so that the loops still
// vectorise (a single float accumulator would need reassociation, which -O3 does not allow).
constexpr int64_t kLanes = 16;

// body(j, l) for j in [0, n): l = j's lane, for sums kept in kLanes partial sums.
template <typename Body>
C10_ALWAYS_INLINE void lane_loop(int64_t n, const Body& body) {
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) {
      body(j + l, l);
    }
  }
  for (; j < n; ++j) {
    body(j, 0);
  }
}

template <typename opmath_t>
double lane_sum(const opmath_t* acc) {
  double s = 0.0;
  for (int64_t l = 0; l < kLanes; ++l) s += static_cast<double>(acc[l]);
  return s;
}

// dL/dbeta's term of a written next_dpre (see SistaBackwardStep::dbeta): in is that step's output.
template <bool kNonneg, typename opmath_t>
C10_ALWAYS_INLINE opmath_t dbeta_term(opmath_t next_dpre, opmath_t in) {
  return kNonneg ? next_dpre : next_dpre * sista_sign(in);
}

// One row of a backward step (see SistaBackwardStep). kSums: also the scalars' sums, dq (needs
// prev = alpha_{t-1}) and dbeta, added to *dq and *dbeta.
template <bool kNonneg, bool kSums, typename scalar_t, typename opmath_t>
void backward_row(const scalar_t* __restrict dpre, const scalar_t* __restrict prod,
                  const scalar_t* __restrict in, const scalar_t* __restrict prev,
                  const scalar_t* __restrict grad_prev, scalar_t* __restrict carry,
                  scalar_t* __restrict e, scalar_t* __restrict next_dpre, int64_t n, opmath_t c,
                  opmath_t q, bool first, double* dq, double* dbeta) {
  opmath_t sq[kLanes] = {}, sb[kLanes] = {};
  if (dpre != nullptr && !first) {
    lane_loop(n, [&](int64_t j, int64_t l) {
      const opmath_t d = dpre[j];
      e[j] = static_cast<scalar_t>(static_cast<opmath_t>(e[j]) + d);
      carry[j] = static_cast<scalar_t>(static_cast<opmath_t>(carry[j]) + q * d);
      const opmath_t g = sista_grad_input<opmath_t>(d, prod[j], c, q);
      const opmath_t a = in[j];
      const scalar_t nd = static_cast<scalar_t>(g * sista_dsoft_dz<kNonneg, opmath_t>(a));
      next_dpre[j] = nd;
      if constexpr (kSums) {
        sq[l] += d * (static_cast<opmath_t>(prev[j]) - a);
        sb[l] += dbeta_term<kNonneg, opmath_t>(nd, a);
      }
    });
    if constexpr (kSums) {
      *dq += lane_sum(sq);
      *dbeta += lane_sum(sb);
    }
    return;
  }
  if (dpre != nullptr) {  // first step: dL/d in and the coherence term both go to alpha_{t-1}
    for (int64_t j = 0; j < n; ++j) {
      const opmath_t d = dpre[j];
      e[j] = static_cast<scalar_t>(static_cast<opmath_t>(e[j]) + d);
      carry[j] = static_cast<scalar_t>(static_cast<opmath_t>(carry[j]) + q * d +
                                       sista_grad_input<opmath_t>(d, prod[j], c, q));
    }
  }
  if (grad_prev != nullptr) {  // alpha_{t-1} is complete: into the last step of frame t - 1
    lane_loop(n, [&](int64_t j, int64_t l) {
      const opmath_t g = static_cast<opmath_t>(grad_prev[j]) + static_cast<opmath_t>(carry[j]);
      const opmath_t a = in[j];
      carry[j] = scalar_t(0);
      const scalar_t nd = static_cast<scalar_t>(g * sista_dsoft_dz<kNonneg, opmath_t>(a));
      next_dpre[j] = nd;
      if constexpr (kSums) {
        sb[l] += dbeta_term<kNonneg, opmath_t>(nd, a);
      }
    });
    if constexpr (kSums) {
      *dbeta += lane_sum(sb);
    }
  }
}

template <bool kNonneg, bool kSums>
void backward_step_cpu_impl(const SistaBackwardStep& step) {
  AT_DISPATCH_FLOATING_TYPES(step.in.scalar_type(), "sista_backward_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const SistaBackwardArgs<scalar_t> p(step);
    const opmath_t c = sista_c<opmath_t>(p.gamma);
    const SistaRows<const scalar_t> prev = sista_rows<scalar_t>(step.prev);
    // The sums' rows: dq is column t of a [B, T] tensor, dbeta a [B] tensor (float64).
    double* dq = kSums && step.dq.defined() ? step.dq.mutable_data_ptr<double>() : nullptr;
    const int64_t dq_stride = kSums && step.dq.defined() ? step.dq.stride(0) : 0;
    double* dbeta = kSums ? step.dbeta.mutable_data_ptr<double>() : nullptr;
    const int64_t dbeta_stride = kSums ? step.dbeta.stride(0) : 0;
    at::parallel_for(0, p.B, row_grain(p.n), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        backward_row<kNonneg, kSums>(
            p.dpre.row(b), p.prod.row(b), p.in.row(b), prev.row(b), p.grad_prev.row(b),
            p.carry.row(b), p.e.row(b), p.next_dpre.row(b), p.n, c,
            sista_q(p.s, b, p.lambda2, c), p.first, dq == nullptr ? nullptr : dq + b * dq_stride,
            dbeta == nullptr ? nullptr : dbeta + b * dbeta_stride);
      }
    });
  });
}

// With SistaBackwardStep's dbeta defined (the driver's fused_sums), the sums too; dq and prev are
// then defined for every step of the loop (dpre defined, not first), undefined for the seed.
void backward_step_cpu(const SistaBackwardStep& step) {
  if (step.dbeta.defined()) {
    TORCH_INTERNAL_ASSERT(step.dbeta.scalar_type() == at::kDouble);
    TORCH_INTERNAL_ASSERT(step.dpre.defined() == step.dq.defined() &&
                          step.dq.defined() == step.prev.defined());
    step.nonneg ? backward_step_cpu_impl<true, true>(step)
                : backward_step_cpu_impl<false, true>(step);
  } else {
    step.nonneg ? backward_step_cpu_impl<true, false>(step)
                : backward_step_cpu_impl<false, false>(step);
  }
}

constexpr SistaKernels kCpuKernels{&linear_cpu, &forward_step_cpu, &backward_step_cpu, true};

std::tuple<at::Tensor, at::Tensor> sista_cpu(const at::Tensor& x, const at::Tensor& A,
                                             const std::optional<at::Tensor>& gram,
                                             const at::Tensor& lambda1, const at::Tensor& lambda2,
                                             const at::Tensor& gamma, const at::Tensor& S,
                                             const at::Tensor& alpha0, int64_t K,
                                             c10::string_view mode, bool keep_states) {
  return sista_forward(kCpuKernels, x, A, gram, lambda1, lambda2, gamma, S, alpha0, K, mode,
                       keep_states);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
           at::Tensor>
sista_backward_cpu(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& A,
                   const std::optional<at::Tensor>& gram, const at::Tensor& lambda1,
                   const at::Tensor& lambda2, const at::Tensor& gamma, const at::Tensor& S,
                   const at::Tensor& codes, const at::Tensor& states, c10::string_view mode,
                   bool need_dx) {
  return sista_backward(kCpuKernels, grad, x, A, gram, lambda1, lambda2, gamma, S, codes, states,
                        mode, need_dx);
}

}  // namespace

SistaCpuGemmCounts sista_cpu_gemm_counts() {
  return {onednn_linear().has_value(), onednn_products.load(std::memory_order_relaxed),
          mm_products.load(std::memory_order_relaxed), mkl_max_k()};
}

TORCH_LIBRARY_IMPL(vadx, CPU, m) {
  m.impl("sista", &sista_cpu);
  m.impl("sista_backward", &sista_backward_cpu);
}

}  // namespace vadx
