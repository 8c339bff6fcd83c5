// Two-stage Gaussian cascade (Sabokrou et al. §3.2): shared declarations and the label rule.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/macros/Macros.h>

#include <cstdint>
#include <tuple>

namespace vadx {

// label values: 0 normal by G1, 1 anomalous by G1, 2 suspicious and anomalous by G2,
// 3 suspicious and normal by G2. kPending marks a suspicious position between the stages.
constexpr uint8_t kNormal = 0, kAnomalous = 1, kAnomalousG2 = 2, kNormalG2 = 3, kPending = 255;

// d1 <= beta: normal; beta < d1 < alpha: suspicious; otherwise (d1 >= alpha, NaN): anomalous.
C10_HOST_DEVICE inline uint8_t stage1_label(double d1, double beta, double alpha) {
  if (d1 <= beta) return kNormal;
  return d1 < alpha ? kPending : kAnomalous;
}

// d2 < phi: normal by G2; otherwise (d2 >= phi, NaN): anomalous by G2.
C10_HOST_DEVICE inline uint8_t stage2_label(double d2, double phi) {
  return d2 < phi ? kNormalG2 : kAnomalousG2;
}

// Validates every argument (names it, the expected and the actual value). Called by both kernels.
void check_mahalanobis_cascade_args(const at::Tensor& feats, const at::Tensor& mu1,
                                    const at::Tensor& w1, double beta, double alpha,
                                    const at::Tensor& ct_weight, const at::Tensor& ct_bias,
                                    const at::Tensor& mu2, const at::Tensor& w2, double phi);

}  // namespace vadx
