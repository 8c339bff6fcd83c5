// accumulator_score, CPU: the interface between the dispatching kernel (accumulator_score_kernel.cpp)
// and the vectorised kernels (accumulator_score_kernel_isa.cpp), which CMakeLists.txt compiles once
// per CPU capability (DEFAULT, and AVX2 and AVX512 on x86-64) into namespaces vadx::<capability>.
//
// The vectorised kernels advance one lane per sequence ("row"): W rows in lockstep, W = the
// capability's Vectorized<scalar_t>::size() (16 float32 / 8 float64 streams with AVX-512). Rows are
// streams (the [B, T] input's rows) or equal blocks of one stream (the scan over time). Every row's
// arithmetic is the same whichever lane it takes, how many rows share its group and which path
// called it, so a frame's score depends only on its stream's state and confidence: that is what
// keeps chunked streaming bit-for-bit equal to one-shot scoring.
#pragma once

#include "../accumulator_score.h"

#include <cstdint>

namespace vadx {

// rows sequences of len frames; row i starts at in + i * ld (and out + i * ld).
template <typename scalar_t>
struct SasRows {
  const scalar_t* in;
  int64_t rows, ld, len;
};

struct SasCpuKernels {
  // Scores rows into out (same layout as in) from the states x[rows]; leaves the states after the
  // last frame in x. NaN confidences score NaN and hold the state.
  void (*replay_f32)(const SasRows<float>&, float* out, double* x, const SasRule&);
  void (*replay_f64)(const SasRows<double>&, double* out, double* x, const SasRule&);
  // f[i] = row i's frames composed in time order (NaN frames are the identity).
  void (*compose_f32)(const SasRows<float>&, ClipAdd* f, const SasRule&);
  void (*compose_f64)(const SasRows<double>&, ClipAdd* f, const SasRule&);
  int lanes_f32, lanes_f64;  // rows advanced together (W)
  const char* capability;
};

// One per compiled capability; accumulator_score_kernel.cpp picks by at::get_cpu_capability().
namespace DEFAULT {
const SasCpuKernels& sas_cpu_kernels();
}
namespace AVX2 {
const SasCpuKernels& sas_cpu_kernels();
}
namespace AVX512 {
const SasCpuKernels& sas_cpu_kernels();
}

}  // namespace vadx
