// sista, CUDA: the fused elementwise part of each ISTA step. The drivers in ../sista.cpp run the
// T x K loop on cuBLAS GEMMs (through ATen) on the current stream; the kernels here read the
// scalars (lambda1, lambda2, gamma) from device memory, so nothing in the loop waits for the host.
#include "../sista.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/mm.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

namespace vadx {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8));
}

// One thread per element, grid-stride, for both kernels.
template <bool kNonneg, typename scalar_t>
__global__ void __launch_bounds__(kThreads) forward_step_kernel(SistaForwardArgs<scalar_t> p) {
  using opmath_t = at::opmath_type<scalar_t>;
  const opmath_t c = sista_c<opmath_t>(p.gamma);
  const opmath_t beta = static_cast<opmath_t>(*p.lambda1) * c;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.B * p.n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = i / p.n, j = i - b * p.n;
    const opmath_t pre = sista_pre<opmath_t>(p.in.row(b)[j], p.prev.row(b)[j], p.prod.row(b)[j],
                                             p.bx.row(b)[j], c, sista_q(p.s, b, p.lambda2, c));
    p.out.row(b)[j] = static_cast<scalar_t>(sista_soft<kNonneg>(pre, beta));
  }
}

// The same per-element rule as the CPU's backward_row (see SistaBackwardStep).
template <bool kNonneg, typename scalar_t>
__global__ void __launch_bounds__(kThreads) backward_step_kernel(SistaBackwardArgs<scalar_t> p) {
  using opmath_t = at::opmath_type<scalar_t>;
  const opmath_t c = sista_c<opmath_t>(p.gamma);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.B * p.n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = i / p.n, j = i - b * p.n;
    const opmath_t q = sista_q(p.s, b, p.lambda2, c);
    scalar_t* carry = p.carry.row(b) + j;
    opmath_t held = *carry;
    opmath_t g = 0;
    if (p.dpre.data != nullptr) {
      const opmath_t d = p.dpre.row(b)[j];
      scalar_t* e = p.e.row(b) + j;
      *e = static_cast<scalar_t>(static_cast<opmath_t>(*e) + d);
      held += q * d;
      g = sista_grad_input<opmath_t>(d, p.prod.row(b)[j], c, q);
    }
    if (p.first) {
      held += g;
      g = p.grad_prev.data != nullptr ? static_cast<opmath_t>(p.grad_prev.row(b)[j]) + held : 0;
      held = p.grad_prev.data != nullptr ? opmath_t(0) : held;
    }
    *carry = static_cast<scalar_t>(held);
    if (p.next_dpre.data != nullptr) {
      p.next_dpre.row(b)[j] =
          static_cast<scalar_t>(g * sista_dsoft_dz<kNonneg, opmath_t>(p.in.row(b)[j]));
    }
  }
}

at::Tensor linear_cuda(const at::Tensor& a, const at::Tensor& w, at::Tensor& out) {
  return at::mm_out(out, a, w.t());  // cuBLAS takes the transpose as a flag: no copy
}

template <bool kNonneg>
void forward_step_cuda_impl(const SistaForwardStep& step) {
  AT_DISPATCH_FLOATING_TYPES(step.in.scalar_type(), "sista_cuda", [&] {
    const SistaForwardArgs<scalar_t> p(step);
    forward_step_kernel<kNonneg, scalar_t>
        <<<blocks_for(p.B * p.n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

void forward_step_cuda(const SistaForwardStep& step) {
  step.nonneg ? forward_step_cuda_impl<true>(step) : forward_step_cuda_impl<false>(step);
}

template <bool kNonneg>
void backward_step_cuda_impl(const SistaBackwardStep& step) {
  AT_DISPATCH_FLOATING_TYPES(step.in.scalar_type(), "sista_backward_cuda", [&] {
    const SistaBackwardArgs<scalar_t> p(step);
    backward_step_kernel<kNonneg, scalar_t>
        <<<blocks_for(p.B * p.n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

void backward_step_cuda(const SistaBackwardStep& step) {
  step.nonneg ? backward_step_cuda_impl<true>(step) : backward_step_cuda_impl<false>(step);
}

constexpr SistaKernels kCudaKernels{&linear_cuda, &forward_step_cuda, &backward_step_cuda};

std::tuple<at::Tensor, at::Tensor> sista_cuda(const at::Tensor& x, const at::Tensor& A,
                                              const std::optional<at::Tensor>& gram,
                                              const at::Tensor& lambda1, const at::Tensor& lambda2,
                                              const at::Tensor& gamma, const at::Tensor& S,
                                              const at::Tensor& alpha0, int64_t K,
                                              c10::string_view mode, bool keep_states) {
  const c10::cuda::CUDAGuard device_guard(x.device());
  return sista_forward(kCudaKernels, x, A, gram, lambda1, lambda2, gamma, S, alpha0, K, mode,
                       keep_states);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
           at::Tensor>
sista_backward_cuda(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& A,
                    const std::optional<at::Tensor>& gram, const at::Tensor& lambda1,
                    const at::Tensor& lambda2, const at::Tensor& gamma, const at::Tensor& S,
                    const at::Tensor& codes, const at::Tensor& states, c10::string_view mode,
                    bool need_dx) {
  const c10::cuda::CUDAGuard device_guard(x.device());
  return sista_backward(kCudaKernels, grad, x, A, gram, lambda1, lambda2, gamma, S, codes, states,
                        mode, need_dx);
}

}  // namespace

TORCH_LIBRARY_IMPL(vadx, CUDA, m) {
  m.impl("sista", &sista_cuda);
  m.impl("sista_backward", &sista_backward_cuda);
}

}  // namespace vadx
