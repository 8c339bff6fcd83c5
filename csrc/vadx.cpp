// The extension module vadx._C. Importing it (after `import torch`) registers the ops through the
// static TORCH_LIBRARY initialisers of the other translation units; this file only exposes build
// metadata, which vadx/__init__.py checks against the running torch, and the kernels' debug
// counters that tests read.
#include "sista.h"

#include <ATen/Parallel.h>
#include <pybind11/pybind11.h>

#include <mutex>
#include <set>

#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef VADX_TORCH_VERSION
#error "VADX_TORCH_VERSION must be defined by the build (the torch.__version__ built against)"
#endif

namespace {

// How many distinct threads at::parallel_for actually used over n items: proves that OpenMP is
// really on in this extension (without -fopenmp ATen's parallel_for silently runs on one thread).
int parallel_for_threads_used(int64_t n) {
  std::mutex mu;
  std::set<int> ids;
  at::parallel_for(0, n, 1, [&](int64_t, int64_t) {
    std::lock_guard<std::mutex> lock(mu);
    ids.insert(at::get_thread_num());
  });
  return static_cast<int>(ids.size());
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "vadx compiled ops (registered as torch.ops.vadx.*) and build metadata";
  m.attr("torch_version") = VADX_TORCH_VERSION;
#ifdef VADX_WITH_CUDA
  m.attr("cuda") = true;
#else
  m.attr("cuda") = false;
#endif
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
  m.def("parallel_for_threads_used", &parallel_for_threads_used, pybind11::arg("n"),
        "Distinct threads that at::parallel_for used over n unit items.");
  m.def(
      "sista_cpu_gemm_counts",
      [] {
        const vadx::SistaCpuGemmCounts c = vadx::sista_cpu_gemm_counts();
        pybind11::dict d;
        d["onednn_available"] = c.onednn_available;
        d["onednn"] = c.onednn;
        d["mm"] = c.mm;
        d["mkl_max_k"] = c.mkl_max_k;
        return d;
      },
      "The sista CPU kernels' GEMMs by path since the library loaded: {'onednn_available': whether "
      "this torch has the oneDNN matmul op (mkldnn::_linear_pointwise) with the expected schema, "
      "'onednn': products run on it (float32), 'mm': products run on at::mm (float64, empty "
      "operands, oneDNN off or missing, float32 with inner dimension <= mkl_max_k)}, 'mkl_max_k': "
      "up to which inner dimension float32 products take at::mm (MKL's sgemm: Intel CPUs, where it "
      "is the faster one for small dictionaries; 0 elsewhere).");
}
