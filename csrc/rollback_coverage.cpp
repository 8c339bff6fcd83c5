// rollback_coverage: schema and argument checks (kernels: cpu/, cuda/).
#include "rollback_coverage.h"

#include "python_module.h"

#include <ATen/ops/empty.h>
#include <c10/util/accumulate.h>
#include <c10/util/safe_numerics.h>
#include <torch/library.h>

#include <cstdint>
#include <limits>
#include <string>

namespace vadx {
namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();

void check_pair(const char* name, c10::IntArrayRef v, int64_t lo, int64_t hi) {
  TORCH_CHECK_VALUE(v.size() == 2, "rollback_coverage: ", name, " must be 2 ints (h, w), got ",
                    v.size(), " values ", v);
  const bool bounded = hi < std::numeric_limits<int64_t>::max();
  TORCH_CHECK_VALUE(v[0] >= lo && v[0] <= hi && v[1] >= lo && v[1] <= hi, "rollback_coverage: ",
                    name, " must be ",
                    bounded ? c10::str("in [", lo, ", ", hi, "]") : c10::str(">= ", lo),
                    " per axis (h, w), got ", v);
}

}  // namespace

CoverageGeometry check_rollback_coverage_args(const at::Tensor& weights,
                                              c10::SymIntArrayRef sym_size,
                                              c10::SymIntArrayRef sym_jump,
                                              c10::SymIntArrayRef sym_offset,
                                              c10::SymIntArrayRef sym_out_size) {
  // Concrete by now (see the header); a symbolic value here is an internal error, and says so.
  const c10::IntArrayRef size = C10_AS_INTARRAYREF_SLOW(sym_size);
  const c10::IntArrayRef jump = C10_AS_INTARRAYREF_SLOW(sym_jump);
  const c10::IntArrayRef offset = C10_AS_INTARRAYREF_SLOW(sym_offset);
  const c10::IntArrayRef out_size = C10_AS_INTARRAYREF_SLOW(sym_out_size);
  TORCH_CHECK_VALUE(weights.dim() == 3, "rollback_coverage: weights must be 3-D [B, Hk, Wk], got ",
                    weights.dim(), "-D with shape ", weights.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(weights.scalar_type()),
                   "rollback_coverage: weights must be a floating-point tensor, got ",
                   weights.scalar_type());
  const at::ScalarType st = weights.scalar_type();  // not float8: no kernel is built for it
  TORCH_CHECK_TYPE(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16,
                   "rollback_coverage: weights must be float32, float64, float16 or bfloat16, got ",
                   st);
  // 32-bit bounds on the geometry keep the index arithmetic of covering_cells() free of overflow;
  // real networks are many orders of magnitude below them. A negative offset (a field that starts
  // after the frame's first pixel, e.g. for a frame cropped before the network) is allowed.
  check_pair("size", size, 1, kInt32Max);
  check_pair("jump", jump, 1, kInt32Max);
  check_pair("offset", offset, kInt32Min, kInt32Max);
  check_pair("out_size", out_size, 0, std::numeric_limits<int64_t>::max());
  // The output [B, H0, W0] is bounded (see kMaxOutputBytes); the product is computed without
  // overflow, so out_size near 2^63 is refused by the same message.
  int64_t bytes = 0;
  const bool overflows =
      c10::mul_overflows(weights.size(0), out_size[0], &bytes) ||
      c10::mul_overflows(bytes, out_size[1], &bytes) ||
      c10::mul_overflows(bytes, static_cast<int64_t>(weights.element_size()), &bytes);
  TORCH_CHECK_VALUE(!overflows && bytes <= kMaxOutputBytes, "rollback_coverage: out_size ",
                    out_size, " for ", weights.size(0), " frames makes an output of ",
                    overflows ? std::string("more than 2^63") : std::to_string(bytes),
                    " bytes; it must be at most 2^40 bytes (1 TiB, "
                    "vadx.ops.rollback_coverage.MAX_OUTPUT_BYTES)");
  return {{size[0], jump[0], offset[0]},
          {size[1], jump[1], offset[1]},
          weights.size(0),
          weights.size(1),
          weights.size(2),
          out_size[0],
          out_size[1]};
}

at::Tensor empty_for_out_size(const CoverageGeometry& g, c10::IntArrayRef shape,
                              const at::TensorOptions& options) {
  try {
    return at::empty(shape, options);
  } catch (const c10::Error& e) {  // the sizes are checked: only the allocation can fail
    // no overflow: every tensor allocated here is at most a few times the bounded output
    const int64_t bytes =
        c10::multiply_integers(shape) * static_cast<int64_t>(options.dtype().itemsize());
    TORCH_CHECK_VALUE(false, "rollback_coverage: out_size [", g.H0, ", ", g.W0, "] for ", g.B,
                      " frames needs ", bytes, " bytes (a tensor of shape ", shape,
                      "), which cannot be allocated on ", options.device(),
                      "; pass a smaller out_size or fewer frames (",
                      e.what_without_backtrace(), ")");
  }
}

// The geometry is SymInt[2]: out_size is usually a frame's (H0, W0), symbolic under
// torch.compile(dynamic=True), and size/jump/offset may be computed from shapes too; an int[2]
// schema would make the compiler specialise (and recompile) on every frame size.
TORCH_LIBRARY_FRAGMENT(vadx, m) {
  m.set_python_module(kFakeKernelModule, kFakeKernelContext);
  m.def(
      "rollback_coverage(Tensor weights, SymInt[2] size, SymInt[2] jump, SymInt[2] offset, "
      "SymInt[2] out_size) -> Tensor");
}

}  // namespace vadx
