// Temporally-coherent sparse coding by SISTA (Luo et al., Algorithm 1): shared declarations, the
// per-element arithmetic of a step (so the CPU and CUDA kernels compute the same function), and the
// device-independent drivers. The drivers (sista.cpp) run the T x K recurrence on GEMMs and call a
// backend's fused elementwise kernel between them; cpu/ and cuda/ provide only those pieces.
//
// Notation (rows b of the batch; c = 1/gamma, beta = lambda1 c, q = S[b,t] lambda2 c, G = A^T A,
// bx_t = A^T x_t): one ISTA step maps its input a (alpha_{t-1} for the first step of frame t) to
//   pre = a + c (bx_t - a G^T) + q (alpha_{t-1} - a),   a' = soft_beta(pre),
// Algorithm 1's lines 4-5 with the terms regrouped; a is a row, so G a becomes a G^T (G is
// symmetric, but a given gram need not be exactly: this is the product the op defines).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/macros/Macros.h>
#include <c10/util/string_view.h>

#include <cstdint>
#include <optional>
#include <tuple>

namespace vadx {

// soft_b(z) = sign(z) max(|z| - b, 0) (signed, the authors' code) or max(z - b, 0) (nonneg, the
// paper's text); a NaN z stays NaN. Written as selects (no data-dependent branch: the CPU loops
// vectorise). Its derivatives are read off the output a alone, so backward stores no masks:
//   d soft / dz = [a != 0] (signed) or [a > 0] (nonneg)
//   d soft / db = -sign(a)  (signed) or -[a > 0] (nonneg)
// exactly what autograd gives for sign(z) * relu(|z| - b) and relu(z - b), for any b.
template <typename T>
C10_HOST_DEVICE inline T sista_max0(T v) {
  return T(0) > v ? T(0) : v;  // this operand order keeps NaN
}

template <typename T>
C10_HOST_DEVICE inline T sista_sign(T v) {
  return static_cast<T>(v > T(0)) - static_cast<T>(v < T(0));
}

template <bool kNonneg, typename T>
C10_HOST_DEVICE inline T sista_soft(T z, T b) {
  if (kNonneg) {
    return sista_max0(z - b);
  }
  return sista_sign(z) * sista_max0((z < T(0) ? -z : z) - b);
}

template <bool kNonneg, typename T>
C10_HOST_DEVICE inline T sista_dsoft_dz(T a) {
  return static_cast<T>(kNonneg ? a > T(0) : a != T(0));
}

// A step's pre-activation from its input a, alpha_{t-1}, a G^T and bx_t.
template <typename T>
C10_HOST_DEVICE inline T sista_pre(T a, T prev, T prod, T bx, T c, T q) {
  return a + c * (bx - prod) + q * (prev - a);
}

// dL/d(step input) from the step's dL/dpre and prod = dL/dpre G.
template <typename T>
C10_HOST_DEVICE inline T sista_grad_input(T dpre, T prod, T c, T q) {
  return (T(1) - q) * dpre - c * prod;
}

// One ISTA step's elementwise part, after the GEMM prod = in G^T. [B, n] operands have unit stride
// along n (any row stride); s is column t of S ([B], any stride). Scalars are 0-d tensors on the
// device: CUDA kernels read them there, so the T x K loop never synchronises with the host.
struct SistaForwardStep {
  at::Tensor in, prev, prod, bx, s;  // prev = alpha_{t-1}, bx = bx_t
  at::Tensor out;
  at::Tensor lambda1, lambda2, gamma;
  bool nonneg;
};

// One backward ISTA step (t, k) after the GEMM prod = dpre G, dpre = dL/dpre of the step. Per
// element, with g_in = sista_grad_input(dpre, prod) = dL/d in:
//   e += dpre (the sum over k: dL/d bx_t = c e); carry += q dpre (dL/d alpha_{t-1} through the
//   coherence term);
//   not first (k > 0): next_dpre = g_in dsoft/dz(in) (in is the output of step k - 1);
//   first (k = 0): in is alpha_{t-1}, carry += g_in; if grad_prev is defined (t > 0),
//     next_dpre = (grad_prev + carry) dsoft/dz(in) (the last step of frame t - 1) and carry = 0,
//     else carry is dL/d alpha0.
// Without dpre (the seed before the loop, first = true) only the last part runs.
// Optional sums for the scalars' gradients, read only by kernels with SistaKernels::fused_sums
// (the CPU's; the others leave them undefined and the driver reduces whole tensors instead), both
// float64 with one element per row b:
//   dq[b] (column t of a [B, T] tensor) += sum_j dpre (prev - in), prev = alpha_{t-1};
//   dbeta[b] += sum_j next_dpre sign(in) (signed) or next_dpre (nonneg): the written next_dpre is
//     the dL/dpre of the step whose output is in, so over the whole loop this is -dL/dbeta.
struct SistaBackwardStep {
  at::Tensor dpre, prod, in, s;
  at::Tensor carry, e, grad_prev, next_dpre;
  at::Tensor lambda2, gamma;
  bool nonneg, first;
  at::Tensor prev = {}, dq = {}, dbeta = {};
};

// Row-major [B, n] view (or [B] with n = 1) as a pointer and a row stride; null when undefined.
template <typename T>
struct SistaRows {
  T* data;
  int64_t stride;
  C10_HOST_DEVICE T* row(int64_t b) const { return data == nullptr ? nullptr : data + b * stride; }
};

template <typename T>
SistaRows<const T> sista_rows(const at::Tensor& t) {
  return t.defined() ? SistaRows<const T>{t.const_data_ptr<T>(), t.stride(0)}
                     : SistaRows<const T>{nullptr, 0};
}

template <typename T>
SistaRows<T> sista_mut_rows(const at::Tensor& t) {
  return t.defined() ? SistaRows<T>{t.mutable_data_ptr<T>(), t.stride(0)} : SistaRows<T>{nullptr, 0};
}

// The steps' operands as raw pointers, for kernels.
template <typename scalar_t>
struct SistaForwardArgs {
  SistaRows<const scalar_t> in, prev, prod, bx, s;
  SistaRows<scalar_t> out;
  const scalar_t *lambda1, *lambda2, *gamma;
  int64_t B, n;

  explicit SistaForwardArgs(const SistaForwardStep& a)
      : in(sista_rows<scalar_t>(a.in)), prev(sista_rows<scalar_t>(a.prev)),
        prod(sista_rows<scalar_t>(a.prod)), bx(sista_rows<scalar_t>(a.bx)),
        s(sista_rows<scalar_t>(a.s)), out(sista_mut_rows<scalar_t>(a.out)),
        lambda1(a.lambda1.const_data_ptr<scalar_t>()),
        lambda2(a.lambda2.const_data_ptr<scalar_t>()), gamma(a.gamma.const_data_ptr<scalar_t>()),
        B(a.in.size(0)), n(a.in.size(1)) {}
};

template <typename scalar_t>
struct SistaBackwardArgs {
  SistaRows<const scalar_t> dpre, prod, in, s, grad_prev;
  SistaRows<scalar_t> carry, e, next_dpre;
  const scalar_t *lambda2, *gamma;
  int64_t B, n;
  bool first;

  explicit SistaBackwardArgs(const SistaBackwardStep& a)
      : dpre(sista_rows<scalar_t>(a.dpre)), prod(sista_rows<scalar_t>(a.prod)),
        in(sista_rows<scalar_t>(a.in)), s(sista_rows<scalar_t>(a.s)),
        grad_prev(sista_rows<scalar_t>(a.grad_prev)), carry(sista_mut_rows<scalar_t>(a.carry)),
        e(sista_mut_rows<scalar_t>(a.e)), next_dpre(sista_mut_rows<scalar_t>(a.next_dpre)),
        lambda2(a.lambda2.const_data_ptr<scalar_t>()), gamma(a.gamma.const_data_ptr<scalar_t>()),
        B(a.in.size(0)), n(a.in.size(1)), first(a.first) {}
};

// c = 1/gamma and q = S[b,t] lambda2 c, in the step's arithmetic precision.
template <typename opmath_t, typename scalar_t>
C10_HOST_DEVICE inline opmath_t sista_c(const scalar_t* gamma) {
  return opmath_t(1) / static_cast<opmath_t>(*gamma);
}

template <typename opmath_t, typename scalar_t>
C10_HOST_DEVICE inline opmath_t sista_q(const SistaRows<const scalar_t>& s, int64_t b,
                                        const scalar_t* lambda2, opmath_t c) {
  return static_cast<opmath_t>(s.row(b)[0]) * static_cast<opmath_t>(*lambda2) * c;
}

struct SistaKernels {
  // a w^T, a [M, k] and w [n, k]: the recurrence's products (w is the fixed matrix, a one step's
  // rows). Returns out, or a new tensor where the backend's GEMM cannot write into out.
  at::Tensor (*linear)(const at::Tensor& a, const at::Tensor& w, at::Tensor& out);
  void (*forward_step)(const SistaForwardStep&);
  void (*backward_step)(const SistaBackwardStep&);
  // Whether backward_step accumulates SistaBackwardStep's dq and dbeta (one pass over data the
  // step reads anyway) instead of the driver reducing [T, K, B, n] tensors after the loop.
  bool fused_sums = false;
};

// The largest K (ISTA steps per frame) the op accepts: the paper uses 3 (sRNN) to 30 (TSC); the
// T x K loop cannot be interrupted from Python, so an absurd K (a typo, 1e6) is refused instead of
// running for minutes. K = 10000 on one [21, 2048] frame takes about a second on a CPU core.
constexpr int64_t kSistaMaxK = 10000;

// codes [B, T, n] and states [T, K, B, n]: states[t, k] is the input of ISTA step k + 1 at time t
// (states[t, 0] = alpha_{t-1}), what backward needs besides codes. keep_states = false (inference:
// no gradient will be asked for) returns states as [T, 0, B, n] and allocates none of them.
std::tuple<at::Tensor, at::Tensor> sista_forward(const SistaKernels& kernels, const at::Tensor& x,
                                                 const at::Tensor& A,
                                                 const std::optional<at::Tensor>& gram,
                                                 const at::Tensor& lambda1,
                                                 const at::Tensor& lambda2, const at::Tensor& gamma,
                                                 const at::Tensor& S, const at::Tensor& alpha0,
                                                 int64_t K, c10::string_view mode,
                                                 bool keep_states);

// Which GEMM the CPU kernels' products took (cpu/sista_kernel.cpp): whether this torch has the
// oneDNN matmul op they use for float32, and the products run on it and on at::mm since the
// library loaded, and up to which inner dimension float32 products prefer at::mm on this CPU
// (MKL's sgemm, faster there on Intel CPUs). Exposed as vadx._C.sista_cpu_gemm_counts() so that
// a test catches a silent fallback (e.g. a torch whose internal oneDNN op changed).
struct SistaCpuGemmCounts {
  bool onednn_available;
  int64_t onednn, mm;
  int64_t mkl_max_k;  // float32 products with inner dimension <= this take at::mm (Intel CPUs)
};
SistaCpuGemmCounts sista_cpu_gemm_counts();

// Gradients (x, A, gram, lambda1, lambda2, gamma, S, alpha0) of sum(grad * codes). Without gram,
// A's gradient includes the path through G = A^T A and the third output (dL/dG) is not needed.
// need_dx = false skips dL/dx (one [B T, n] x [n, d] GEMM) and returns zeros (expanded, no memory).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
           at::Tensor>
sista_backward(const SistaKernels& kernels, const at::Tensor& grad, const at::Tensor& x,
               const at::Tensor& A, const std::optional<at::Tensor>& gram,
               const at::Tensor& lambda1, const at::Tensor& lambda2, const at::Tensor& gamma,
               const at::Tensor& S, const at::Tensor& codes, const at::Tensor& states,
               c10::string_view mode, bool need_dx);

}  // namespace vadx
