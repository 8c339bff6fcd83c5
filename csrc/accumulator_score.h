// Sigmoidal Anomaly Score (Petrocchi et al. §3.5): shared declarations and the per-step
// arithmetic of the CUDA kernel and the CPU scan's carry. The vectorised CPU kernel
// (cpu/accumulator_score_kernel_isa.cpp) restates it with at::vec (see its notes on rounding).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/macros/Macros.h>
#include <c10/util/string_view.h>

#include <cmath>
#include <tuple>

namespace vadx {

enum class SasDecay : int { Symmetric = 0, Paper = 1 };

// f(x) = min(max(x + a, l), u): one accumulator step, or the composition of many. Functions of this
// form are closed under composition, which makes the recurrence an associative scan.
struct ClipAdd {
  double a, l, u;
};

C10_HOST_DEVICE inline ClipAdd clip_add_identity() {
  return {0.0, -HUGE_VAL, HUGE_VAL};  // HUGE_VAL: usable in device code (numeric_limits is not)
}

C10_HOST_DEVICE inline double clip(double x, double l, double u) {
  // Two selects in this operand order: a NaN x stays NaN (fmin/fmax would drop it), and each maps
  // to one branch-free max/min instruction; the state hits its bounds too unpredictably to branch.
  const double y = l > x ? l : x;
  return u < y ? u : y;
}

// A composed shift saturates at +-2^1000 (about 1.07e301). Each step's increment is finite
// (|a| <= nu <= DBL_MAX), but summed over a stream huge increments (nu = 1e308) overflow to inf,
// and a later +inf + -inf would be NaN. Saturating is exact for every x with |x| <= 2^999 once
// l and u are finite (|lb|, |ub| <= 2^999): a shift beyond 2^1000 takes any such x past the
// bounds, where the clip gives the same result as the true shift; and a sum of two saturated
// shifts (<= 2^1001) cannot overflow. Accumulator states are in [lb, ub] after the first valid
// frame, so only an x0 beyond 2^999 combined with such increments could see the difference.
constexpr double kSasMaxShift = 1.0715086071862673e301;  // 2^1000

C10_HOST_DEVICE inline double saturate_shift(double a) {
  return clip(a, -kSasMaxShift, kSasMaxShift);
}

// later ∘ earlier: clip(clip(x + a1, l1, u1) + a2, l2, u2) = clip(x + a1 + a2, L, U) with
// L = clip(l1 + a2, l2, u2), U = clip(u1 + a2, l2, u2). Requires finite a (guaranteed below), and
// keeps it finite: the sum is saturated (see kSasMaxShift), so no composition makes NaN.
C10_HOST_DEVICE inline ClipAdd compose(const ClipAdd& earlier, const ClipAdd& later) {
  return {saturate_shift(earlier.a + later.a), clip(earlier.l + later.a, later.l, later.u),
          clip(earlier.u + later.a, later.l, later.u)};
}

C10_HOST_DEVICE inline double apply(const ClipAdd& f, double x) { return clip(x + f.a, f.l, f.u); }

// The SAS rule with its divisions done once, so one frame costs a few multiplies and selects.
struct SasRule {
  double tau, nu, lb, ub;
  double inv_rise;  // 1 / (1 - tau)
  double inv_fall;  // symmetric rule: 1 / tau; 0 when tau == 0, where no frame falls
  SasDecay decay;
  bool divide_fall;  // 0 < tau < 1 / DBL_MAX: 1 / tau overflows, so divide (per rule, not frame)
};

// Validates every argument (names the argument, the expected and the actual value) and returns
// the rule. Called by both kernels before any work.
SasRule check_accumulator_score_args(const at::Tensor& sigma, double tau, double nu, double lb,
                                     double ub, const at::Tensor& x0, c10::string_view decay);

C10_HOST_DEVICE inline double max0(double v) { return v > 0.0 ? v : 0.0; }
C10_HOST_DEVICE inline double min0(double v) { return v < 0.0 ? v : 0.0; }

// Accumulator increment for one (non-NaN) confidence. sigma is clipped to [0, 1] (confidences by
// contract), which keeps every increment finite (|a| <= nu) and the scan free of inf - inf.
// Written without a data-dependent branch: whether a frame rises or falls is unpredictable, and a
// mispredicted branch per frame costs more than computing both sides.
C10_HOST_DEVICE inline double sas_increment(double sigma, const SasRule& r) {
  const double s = clip(sigma, 0.0, 1.0);
  const double d = s - r.tau;
  const double rise = max0(d) * r.inv_rise;  // Delta+ where s >= tau, else 0
  if (r.decay == SasDecay::Symmetric) {
    if (r.divide_fall) {
      return r.nu * (rise + min0(d) / r.tau);
    }
    return r.nu * (rise + min0(d) * r.inv_fall);  // min0(d) * inv_fall = -Delta- where s < tau
  }
  const double falls = static_cast<double>(d < 0.0);
  return r.nu * (rise - falls * clip((1.0 - s - r.tau) * r.inv_rise, 0.0, 1.0));
}

// One frame as a step function: the identity for NaN sigma (the accumulator holds).
C10_HOST_DEVICE inline ClipAdd sas_step(double sigma, const SasRule& r) {
  if (sigma != sigma) {
    return clip_add_identity();
  }
  return {sas_increment(sigma, r), r.lb, r.ub};
}

// Logistic in the output's precision (float for float32/half/bfloat16, double for float64).
C10_HOST_DEVICE inline float exp_of(float v) { return ::expf(v); }
C10_HOST_DEVICE inline double exp_of(double v) { return ::exp(v); }

template <typename opmath_t>
C10_HOST_DEVICE inline opmath_t logistic(double x) {
  const opmath_t xo = static_cast<opmath_t>(x);
  return opmath_t(1) / (opmath_t(1) + exp_of(-xo));
}

std::tuple<at::Tensor, at::Tensor> accumulator_score_cpu(const at::Tensor& sigma, double tau,
                                                         double nu, double lb, double ub,
                                                         const at::Tensor& x0,
                                                         c10::string_view decay);

}  // namespace vadx
