// mahalanobis_cascade: schema and argument checks (kernels: cpu/, cuda/).
#include "mahalanobis_cascade.h"

#include "python_module.h"

#include <torch/library.h>

#include <cmath>

namespace vadx {

namespace {

void check_param(const at::Tensor& feats, const at::Tensor& t, const char* name,
                 at::IntArrayRef shape, const char* shape_text) {
  TORCH_CHECK_VALUE(t.sizes() == shape, "mahalanobis_cascade: ", name, " must have shape ",
                    shape_text, " = ", shape, ", got ", t.sizes());
  TORCH_CHECK_TYPE(t.scalar_type() == feats.scalar_type(), "mahalanobis_cascade: ", name,
                   " must have feats' dtype ", feats.scalar_type(), ", got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.device() == feats.device(), "mahalanobis_cascade: ", name,
                    " must be on feats' device ", feats.device(), ", got ", t.device());
}

}  // namespace

void check_mahalanobis_cascade_args(const at::Tensor& feats, const at::Tensor& mu1,
                                    const at::Tensor& w1, double beta, double alpha,
                                    const at::Tensor& ct_weight, const at::Tensor& ct_bias,
                                    const at::Tensor& mu2, const at::Tensor& w2, double phi) {
  TORCH_CHECK_VALUE(feats.dim() == 4, "mahalanobis_cascade: feats must be 4-D [B, m, H, W], got ",
                    feats.dim(), "-D with shape ", feats.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(feats.scalar_type()),
                   "mahalanobis_cascade: feats must be floating point, got ", feats.scalar_type());
  const int64_t m = feats.size(1);
  const int64_t h = ct_weight.dim() == 2 ? ct_weight.size(0) : -1;
  TORCH_CHECK_VALUE(ct_weight.dim() == 2 && ct_weight.size(1) == m,
                    "mahalanobis_cascade: ct_weight must have shape [h, m] with m = ", m,
                    " (feats' channels), got ", ct_weight.sizes());
  check_param(feats, mu1, "mu1", {m}, "[m]");
  check_param(feats, w1, "w1", {m, m}, "[m, m]");
  check_param(feats, ct_weight, "ct_weight", {h, m}, "[h, m]");
  check_param(feats, ct_bias, "ct_bias", {h}, "[h]");
  check_param(feats, mu2, "mu2", {h}, "[h]");
  check_param(feats, w2, "w2", {h, h}, "[h, h]");
  TORCH_CHECK_VALUE(!std::isnan(beta) && !std::isnan(alpha) && beta <= alpha,
                    "mahalanobis_cascade: need beta <= alpha, got beta=", beta, ", alpha=", alpha);
  TORCH_CHECK_VALUE(!std::isnan(phi), "mahalanobis_cascade: phi must not be NaN");
}

TORCH_LIBRARY_FRAGMENT(vadx, m) {
  m.set_python_module(kFakeKernelModule, kFakeKernelContext);
  m.def(
      "mahalanobis_cascade(Tensor feats, Tensor mu1, Tensor w1, float beta, float alpha, "
      "Tensor ct_weight, Tensor ct_bias, Tensor mu2, Tensor w2, float phi) "
      "-> (Tensor, Tensor, Tensor)");
}

}  // namespace vadx
