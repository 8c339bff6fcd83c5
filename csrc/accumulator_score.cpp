// accumulator_score: schema and argument checks (kernels: cpu/, cuda/).
#include "accumulator_score.h"

#include "python_module.h"

#include <torch/library.h>

#include <cmath>

namespace vadx {

SasRule check_accumulator_score_args(const at::Tensor& sigma, double tau, double nu, double lb,
                                     double ub, const at::Tensor& x0, c10::string_view decay) {
  TORCH_CHECK_VALUE(sigma.dim() == 2, "accumulator_score: sigma must be 2-D [B, T], got ",
                    sigma.dim(), "-D with shape ", sigma.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(sigma.scalar_type()),
                   "accumulator_score: sigma must be a floating-point tensor, got ",
                   sigma.scalar_type());
  const at::ScalarType st = sigma.scalar_type();
  TORCH_CHECK_TYPE(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16,
                   "accumulator_score: sigma must be float32, float64, float16 or bfloat16, got ",
                   st);
  TORCH_CHECK_VALUE(tau >= 0.0 && tau < 1.0, "accumulator_score: tau must be in [0, 1), got ", tau);
  TORCH_CHECK_VALUE(std::isfinite(nu) && nu > 0.0,
                    "accumulator_score: nu must be finite and > 0, got ", nu);
  TORCH_CHECK_VALUE(std::isfinite(lb) && std::isfinite(ub) && lb < ub,
                    "accumulator_score: need finite lb < ub, got lb=", lb, ", ub=", ub);
  TORCH_CHECK_VALUE(x0.dim() == 1 && x0.size(0) == sigma.size(0),
                    "accumulator_score: x0 must have shape [B] = [", sigma.size(0),
                    "] (one accumulator per stream), got ", x0.sizes());
  // The accumulator state is float64 whatever sigma's dtype, so a stream continued chunk by chunk
  // from x_last reproduces the one-shot result.
  TORCH_CHECK_TYPE(x0.scalar_type() == at::kDouble,
                   "accumulator_score: x0 must be float64 (the accumulator state), got ",
                   x0.scalar_type());
  TORCH_CHECK_VALUE(x0.device() == sigma.device(),
                    "accumulator_score: x0 must be on sigma's device ", sigma.device(), ", got ",
                    x0.device());
  TORCH_CHECK_VALUE(decay == "symmetric" || decay == "paper",
                    "accumulator_score: decay must be 'symmetric' or 'paper', got '",
                    std::string(decay), "'");
  const SasDecay rule = decay == "paper" ? SasDecay::Paper : SasDecay::Symmetric;
  const double inv_fall = tau > 0.0 ? 1.0 / tau : 0.0;
  return {tau, nu, lb, ub, 1.0 / (1.0 - tau), inv_fall, rule, std::isinf(inv_fall)};
}

TORCH_LIBRARY_FRAGMENT(vadx, m) {
  m.set_python_module(kFakeKernelModule, kFakeKernelContext);
  m.def(
      "accumulator_score(Tensor sigma, float tau, float nu, float lb, float ub, Tensor x0, "
      "str decay) -> (Tensor, Tensor)");
}

}  // namespace vadx
