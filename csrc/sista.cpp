// sista: schema, argument checks, and the device-independent drivers of the forward and backward
// recurrences (GEMMs through ATen, elementwise work through the backend's kernels: cpu/, cuda/).
#include "sista.h"

#include "python_module.h"

#include <ATen/TensorOperators.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <cmath>
#include <string>

namespace vadx {
namespace {

bool check_mode(const char* op, c10::string_view mode) {
  TORCH_CHECK_VALUE(mode == "signed" || mode == "nonneg", op,
                    ": mode must be 'signed' or 'nonneg', got '", std::string(mode), "'");
  return mode == "nonneg";
}

void check_like(const char* op, const at::Tensor& x, const at::Tensor& t, const char* name,
                at::IntArrayRef shape, const char* shape_text) {
  TORCH_CHECK_VALUE(t.sizes() == shape, op, ": ", name, " must have shape ", shape_text, " = ",
                    shape, ", got ", t.sizes());
  TORCH_CHECK_TYPE(t.scalar_type() == x.scalar_type(), op, ": ", name, " must have x's dtype ",
                   x.scalar_type(), ", got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.device() == x.device(), op, ": ", name, " must be on x's device ",
                    x.device(), ", got ", t.device());
}

// The arguments both ops share. Scalars are 0-d tensors (learnable, and read on the device).
void check_common(const char* op, const at::Tensor& x, const at::Tensor& A,
                  const std::optional<at::Tensor>& gram, const at::Tensor& lambda1,
                  const at::Tensor& lambda2, const at::Tensor& gamma, const at::Tensor& S) {
  TORCH_CHECK_VALUE(x.dim() == 3, op, ": x must be 3-D [B, T, d], got ", x.dim(),
                    "-D with shape ", x.sizes());
  TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op,
                   ": x must be float32 or float64, got ", x.scalar_type());
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2);
  TORCH_CHECK_VALUE(A.dim() == 2 && A.size(0) == d, op,
                    ": A must have shape [d, n] with d = ", d, " (x's last dim), got ", A.sizes());
  const int64_t n = A.size(1);
  check_like(op, x, A, "A", {d, n}, "[d, n]");
  if (gram.has_value()) {
    check_like(op, x, *gram, "gram", {n, n}, "[n, n] (A^T A)");
  }
  check_like(op, x, lambda1, "lambda1", {}, "[] (a 0-d tensor)");
  check_like(op, x, lambda2, "lambda2", {}, "[] (a 0-d tensor)");
  check_like(op, x, gamma, "gamma", {}, "[] (a 0-d tensor)");
  check_like(op, x, S, "S", {B, T}, "[B, T]");
}

// The scalars' values: one read (one host synchronisation on CUDA, once per call, never inside
// the T x K loop). Each error names the argument, the expected and the actual value.
void check_scalar_values(const char* op, const at::Tensor& lambda1, const at::Tensor& lambda2,
                         const at::Tensor& gamma) {
  const at::Tensor v = at::stack({lambda1.detach(), lambda2.detach(), gamma.detach()})
                           .to(at::kCPU, at::kDouble);
  const double* p = v.const_data_ptr<double>();
  const double l1 = p[0], l2 = p[1], g = p[2];
  TORCH_CHECK_VALUE(std::isfinite(l1) && l1 >= 0.0, op,
                    ": lambda1 (sparsity weight) must be finite and >= 0, got ", l1);
  TORCH_CHECK_VALUE(std::isfinite(l2), op,
                    ": lambda2 (temporal-coherence weight) must be finite, got ", l2);
  TORCH_CHECK_VALUE(std::isfinite(g) && g > 0.0, op,
                    ": gamma (step parameter, 1/step size) must be finite and > 0, got ", g);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> sista_forward(const SistaKernels& kernels, const at::Tensor& x,
                                                 const at::Tensor& A,
                                                 const std::optional<at::Tensor>& gram,
                                                 const at::Tensor& lambda1,
                                                 const at::Tensor& lambda2, const at::Tensor& gamma,
                                                 const at::Tensor& S, const at::Tensor& alpha0,
                                                 int64_t K, c10::string_view mode,
                                                 bool keep_states) {
  // The op's own autograd formula (vadx/ops/sista.py) covers it: the ATen calls below skip the
  // autograd layers (dispatch overhead on the ~10 views and products of every step).
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const bool nonneg = check_mode("sista", mode);
  check_common("sista", x, A, gram, lambda1, lambda2, gamma, S);
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2), n = A.size(1);
  check_like("sista", x, alpha0, "alpha0", {B, n}, "[B, n]");
  TORCH_CHECK_VALUE(K >= 1 && K <= kSistaMaxK, "sista: K (ISTA steps per frame) must be in [1, ",
                    kSistaMaxK, "], got ", K);
  check_scalar_values("sista", lambda1, lambda2, gamma);

  at::Tensor codes = at::empty({B, T, n}, x.options());
  // Inference (keep_states = false): no [T, K, B, n] states, two [B, n] buffers instead.
  at::Tensor states = at::empty({T, keep_states ? K : 0, B, n}, x.options());
  if (codes.numel() == 0) {
    return {codes, states};
  }
  const at::Tensor G = gram.has_value() ? *gram : at::mm(A.t(), A);
  at::Tensor bx_buf = at::empty({B * T, n}, x.options());
  const at::Tensor bx = kernels.linear(x.reshape({B * T, d}), A.t(), bx_buf).view({B, T, n});
  at::Tensor prod = at::empty({B, n}, x.options());
  const at::Tensor work = keep_states ? at::Tensor() : at::empty({3, B, n}, x.options());
  // The input of step k of frame t: states[t][k], or (inference) work[0] for k = 0 (alpha_{t-1})
  // and work[1 + k % 2] for the intermediate steps (ping-pong: a step never writes its input).
  const auto step_in = [&](int64_t t, int64_t k) -> at::Tensor {
    return keep_states ? states[t][k] : work[k == 0 ? 0 : 1 + k % 2];
  };
  step_in(0, 0).copy_(alpha0);
  for (int64_t t = 0; t < T; ++t) {
    const at::Tensor prev = step_in(t, 0);
    for (int64_t k = 0; k < K; ++k) {
      const at::Tensor in = step_in(t, k);
      const at::Tensor in_g = kernels.linear(in, G, prod);
      at::Tensor out = k + 1 < K ? step_in(t, k + 1) : codes.select(1, t);
      kernels.forward_step({in, prev, in_g, bx.select(1, t), S.select(1, t), out, lambda1,
                            lambda2, gamma, nonneg});
    }
    if (t + 1 < T) {
      step_in(t + 1, 0).copy_(codes.select(1, t));
    }
  }
  return {codes, states};
}

// Backpropagation through the T x K unrolled recurrence, last step first: per step one GEMM
// (dpre G) and one fused elementwise kernel. dL/dpre of every step is kept ([T, K, B, n], the size
// of states) so that everything that is a sum over steps is computed once at the end, on whole
// tensors: dL/dG as one GEMM, dL/dx and dL/dA from e = sum_k dpre ([B, T, n]). The scalars'
// gradients are sums over steps too: kernels with fused_sums (CPU) accumulate them per row inside
// the step kernel, on data it reads anyway; otherwise (CUDA) they are reductions of whole tensors
// after the loop (ATen ops: no host synchronisation).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
           at::Tensor>
sista_backward(const SistaKernels& kernels, const at::Tensor& grad_in, const at::Tensor& x,
               const at::Tensor& A, const std::optional<at::Tensor>& gram,
               const at::Tensor& lambda1, const at::Tensor& lambda2, const at::Tensor& gamma,
               const at::Tensor& S, const at::Tensor& codes_in, const at::Tensor& states_in,
               c10::string_view mode, bool need_dx) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // see sista_forward
  const bool nonneg = check_mode("sista_backward", mode);
  check_common("sista_backward", x, A, gram, lambda1, lambda2, gamma, S);
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2), n = A.size(1);
  check_like("sista_backward", x, grad_in, "grad", {B, T, n}, "[B, T, n]");
  check_like("sista_backward", x, codes_in, "codes", {B, T, n}, "[B, T, n]");
  const int64_t K = states_in.dim() == 4 ? states_in.size(1) : 0;
  TORCH_CHECK_VALUE(K >= 1, "sista_backward: states must be [T, K, B, n] with K >= 1 (a forward "
                    "call with keep_states=true), got ", states_in.sizes());
  check_like("sista_backward", x, states_in, "states", {T, K, B, n}, "[T, K, B, n]");

  // Gradients of sums (e.g. codes.sum()) arrive expanded, with zero strides.
  const at::Tensor grad = grad_in.contiguous();
  const at::Tensor codes = codes_in.contiguous();
  const at::Tensor states = states_in.contiguous();
  const at::TensorOptions opts = x.options();
  at::Tensor dpre = at::empty({T, K, B, n}, opts);
  at::Tensor e = at::zeros({B, T, n}, opts);
  at::Tensor carry = at::zeros({B, n}, opts);  // dL/d alpha_{t-1}; after the loop dL/d alpha0
  const at::Tensor G = gram.has_value() ? *gram : at::mm(A.t(), A);  // recomputed, not stored
  // Fused sums (see SistaBackwardStep): dq [B, T] and -dL/dbeta per row, in float64.
  const bool fused = kernels.fused_sums;
  const at::TensorOptions opts64 = opts.dtype(at::kDouble);
  const at::Tensor dq_rows = fused ? at::zeros({B, T}, opts64) : at::Tensor();
  const at::Tensor dbeta_rows = fused ? at::zeros({B}, opts64) : at::Tensor();

  if (T > 0 && B > 0 && n > 0) {
    // The seed: dL/dpre of the last step of the last frame.
    kernels.backward_step({at::Tensor(), at::Tensor(), codes.select(1, T - 1), S.select(1, T - 1),
                           carry, at::Tensor(), grad.select(1, T - 1), dpre[T - 1][K - 1],
                           lambda2, gamma, nonneg, true, at::Tensor(), at::Tensor(), dbeta_rows});
    at::Tensor prod = at::empty({B, n}, opts);
    const at::Tensor Gt = G.t().contiguous();  // linear(., Gt) = . G
    for (int64_t t = T - 1; t >= 0; --t) {
      const at::Tensor states_t = states.select(0, t), dpre_t = dpre.select(0, t);
      const at::Tensor prev = fused ? states_t.select(0, 0) : at::Tensor();
      const at::Tensor dq_t = fused ? dq_rows.select(1, t) : at::Tensor();
      for (int64_t k = K - 1; k >= 0; --k) {
        const at::Tensor dpre_tk = dpre_t.select(0, k);
        const at::Tensor dpre_g = kernels.linear(dpre_tk, Gt, prod);
        const at::Tensor grad_prev = k == 0 && t > 0 ? grad.select(1, t - 1) : at::Tensor();
        const at::Tensor next =
            k > 0 ? dpre_t.select(0, k - 1) : (t > 0 ? dpre[t - 1][K - 1] : at::Tensor());
        kernels.backward_step({dpre_tk, dpre_g, states_t.select(0, k), S.select(1, t), carry,
                               e.select(1, t), grad_prev, next, lambda2, gamma, nonneg, k == 0,
                               prev, dq_t, dbeta_rows});
      }
    }
  }

  const at::Tensor c = gamma.to(at::kDouble).reciprocal();
  const at::Tensor c_x = c.to(x.scalar_type());
  const at::Tensor x2 = x.reshape({B * T, d});
  const at::Tensor e2 = e.view({B * T, n});
  // m = sum over steps of dpre^T in: dL/dG = -c m, and sum over steps of dpre . (in G^T) = <m, G>.
  at::Tensor m = at::mm(dpre.view({T * K * B, n}).t(), states.view({T * K * B, n}));
  // xe = x^T e: dL/dA through bx = c xe, and <e A^T, x> = <xe, A>.
  at::Tensor xe = at::mm(x2.t(), e2);
  // dL/dc = sum over steps of dpre . (bx_t - in G^T) = <xe, A> - <m, G>: bx is not kept.
  const at::Tensor dc = ((xe * A).sum() - (m * G).sum()).to(at::kDouble);
  at::Tensor dq, dbeta;
  if (fused) {
    dq = dq_rows;
    dbeta = -dbeta_rows.sum();
  } else {
    // dL/dq[b, t] = sum over k of dpre . (alpha_{t-1} - in), from the saved step inputs.
    dq = (dpre * (states.narrow(1, 0, 1) - states))
             .sum(at::IntArrayRef{1, 3})
             .t()
             .to(at::kDouble)
             .contiguous();
    // dL/dbeta = sum over steps of g dsoft/db = -sum dpre sign(out) (signed) or -sum dpre
    // (nonneg), out being each step's output: states[:, k + 1], and the codes for the last step.
    dbeta = (nonneg ? -dpre.sum()
                    : -((dpre.narrow(1, 0, K - 1) * states.narrow(1, 1, K - 1).sign()).sum() +
                        (dpre.select(1, K - 1) * codes.transpose(0, 1).sign()).sum()))
                .to(at::kDouble);
  }
  const at::Tensor dx = need_dx ? at::mm(e2, A.t()).mul_(c_x).view({B, T, d})
                                : at::zeros({}, opts).expand({B, T, d});
  at::Tensor dG = m.mul_(-c_x);
  at::Tensor dA = xe.mul_(c_x);  // dL/dA through bx
  if (!gram.has_value()) {
    dA.addmm_(A, dG + dG.t());  // and through G = A^T A
  }

  const at::Tensor l1 = lambda1.to(at::kDouble), l2 = lambda2.to(at::kDouble);
  const at::Tensor dq_s = (dq * S.to(at::kDouble)).sum();  // dL/d(lambda2 c)
  const at::ScalarType dtype = x.scalar_type();
  return {dx,
          dA,
          dG,
          (dbeta * c).to(dtype),
          (dq_s * c).to(dtype),
          ((dc + dbeta * l1 + dq_s * l2) * -c * c).to(dtype),
          (dq * (l2 * c)).to(dtype),
          carry};
}

TORCH_LIBRARY_FRAGMENT(vadx, m) {
  m.set_python_module(kFakeKernelModule, kFakeKernelContext);
  m.def(
      "sista(Tensor x, Tensor A, Tensor? gram, Tensor lambda1, Tensor lambda2, Tensor gamma, "
      "Tensor S, Tensor alpha0, int K, str mode, bool keep_states=True) -> (Tensor, Tensor)");
  m.def(
      "sista_backward(Tensor grad, Tensor x, Tensor A, Tensor? gram, Tensor lambda1, "
      "Tensor lambda2, Tensor gamma, Tensor S, Tensor codes, Tensor states, str mode, "
      "bool need_dx=True) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
}

}  // namespace vadx
