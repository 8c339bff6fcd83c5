// Sigmoidal Anomaly Score (Petrocchi et al. §3.5): shared declarations and the per-step
// arithmetic, so the CPU and CUDA kernels compute bit-for-bit the same increments.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/macros/Macros.h>
#include <c10/util/string_view.h>

#include <cmath>
#include <limits>
#include <tuple>

namespace vadx {

enum class SasDecay : int { Symmetric = 0, Paper = 1 };

// Validates every argument (names the argument, the expected and the actual value) and returns
// the decay rule. Called by both kernels before any work.
SasDecay check_accumulator_score_args(const at::Tensor& sigma, double tau, double nu, double lb,
                                      double ub, const at::Tensor& x0, c10::string_view decay);

// f(x) = min(max(x + a, l), u): one accumulator step, or the composition of many. Functions of this
// form are closed under composition, which makes the recurrence an associative scan.
struct ClipAdd {
  double a, l, u;
};

C10_HOST_DEVICE inline ClipAdd clip_add_identity() {
  return {0.0, -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()};
}

C10_HOST_DEVICE inline double clip(double x, double l, double u) {
  // Written with comparisons (not fmin/fmax) so a NaN x stays NaN.
  return x < l ? l : (x > u ? u : x);
}

// later ∘ earlier: clip(clip(x + a1, l1, u1) + a2, l2, u2) = clip(x + a1 + a2, L, U) with
// L = clip(l1 + a2, l2, u2), U = clip(u1 + a2, l2, u2). Requires finite a (guaranteed below).
C10_HOST_DEVICE inline ClipAdd compose(const ClipAdd& earlier, const ClipAdd& later) {
  return {earlier.a + later.a, clip(earlier.l + later.a, later.l, later.u),
          clip(earlier.u + later.a, later.l, later.u)};
}

C10_HOST_DEVICE inline double apply(const ClipAdd& f, double x) { return clip(x + f.a, f.l, f.u); }

// Accumulator increment for one confidence. sigma is clipped to [0, 1] (confidences by contract),
// which keeps every increment finite (|a| <= nu) and the scan free of inf - inf. The caller treats
// NaN sigma as "no confidence for this frame" before calling this.
C10_HOST_DEVICE inline double sas_increment(double sigma, double tau, double nu, SasDecay decay) {
  const double s = sigma < 0.0 ? 0.0 : (sigma > 1.0 ? 1.0 : sigma);
  if (s >= tau) {
    return nu * (s - tau) / (1.0 - tau);  // Delta+; tau < 1 is checked
  }
  // Here s < tau, so tau > 0 and the symmetric rule's division is safe.
  const double delta_minus =
      decay == SasDecay::Paper ? clip((1.0 - s - tau) / (1.0 - tau), 0.0, 1.0) : (tau - s) / tau;
  return -(nu * delta_minus);
}

// One frame as a step function: the identity for NaN sigma (the accumulator holds).
C10_HOST_DEVICE inline ClipAdd sas_step(double sigma, double tau, double nu, double lb, double ub,
                                        SasDecay decay) {
  if (sigma != sigma) {
    return clip_add_identity();
  }
  return {sas_increment(sigma, tau, nu, decay), lb, ub};
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
