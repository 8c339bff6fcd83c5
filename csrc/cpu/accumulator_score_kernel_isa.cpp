// accumulator_score, CPU: the per-frame rule vectorised across sequences with ATen's
// at::vec::Vectorized (its Sleef exp for the logistic). See accumulator_score_kernel_isa.h.
//
// Runtime ISA dispatch, the way ATen does it for its own native/cpu kernels: CMakeLists.txt compiles
// this file once per CPU capability (-DCPU_CAPABILITY=DEFAULT|AVX2|AVX512 -DCPU_CAPABILITY_<cap> and
// ATen's flags for it), and accumulator_score_kernel.cpp picks the variant matching
// at::get_cpu_capability(), so the op follows ATen's choice (and ATEN_CPU_CAPABILITY) and one build
// runs on any x86-64. (ATen's DispatchStub itself is not usable from an extension: its
// choose_cpu_impl takes one pointer per HAVE_<cap>_CPU_DEFINITION of torch's own build.)
// Everything here lives in vadx::<capability> or has internal linkage, and the header's inline
// helpers are not called: an inline function compiled with -mavx512f could otherwise be the copy
// the linker keeps for the baseline code.
//
// Layout: sigma is [B, T] row-major, so one frame of W streams is W floats T apart. The kernel moves
// tiles of W rows x kTile frames through an L1 buffer with ATen's transpose_mxn (AVX-512: 16 x 16
// in registers), runs the rule on one frame of W rows per vector, and transposes the scores back.
//
// Rounding: the rule is the header's (csrc/accumulator_score.h) in float64, compiled with
// -ffp-contract=off (no FMA contraction), except that the symmetric increment is one product
// d * nu / (1 - tau) or d * nu / tau (see Rule), an ulp from the header's nu * (d / (1 - tau)).
// Every frame goes through the same instructions whatever lane, group, tile or path computes it
// (a tile's NaN-free fast path gives the same bits as the general one), so scores and states are
// bit-for-bit the same however a stream is batched or chunked; across capabilities (Sleef's exp
// vs the C library's in DEFAULT) scores may differ in the last bit.
#include "accumulator_score_kernel_isa.h"

// GCC 12 reports its own intrinsics' _mm512_undefined_*() arguments as maybe uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#ifndef CPU_CAPABILITY
#error "compiled once per CPU capability by CMakeLists.txt (-DCPU_CAPABILITY=...), never directly"
#endif

namespace vadx {
namespace CPU_CAPABILITY {
namespace {

using at::vec::Vectorized;
using dvec = Vectorized<double>;

// Frames per tile: W x kTile values (2 KiB for 16 float32 rows) stay in L1 between the rule's
// two loops; 32 measured faster than 16, 64 or 128 at 1024 x 10,000 and in cache.
constexpr int kTile = 32;

// The header's clip(x, l, u) = min(max(x, l), u) with its exact select semantics (NaN x stays NaN;
// which zero is kept): ATen's clamp_min(a, lo) is maxpd(lo, a) = lo > a ? lo : a, and
// clamp_max(a, hi) is minpd(hi, a) = hi < a ? hi : a (the generic versions select the same way).
inline dvec clip(const dvec& x, const dvec& l, const dvec& u) {
  return at::vec::clamp_max(at::vec::clamp_min(x, l), u);
}
// max0(v) = v > 0 ? v : 0 and min0(v) = v < 0 ? v : 0 as the header's, zeros' signs included:
// clamp_min(0, v) = maxpd(v, 0), which returns 0 unless v > 0.
inline dvec max0(const dvec& v, const dvec& zero) { return at::vec::clamp_min(zero, v); }
inline dvec min0(const dvec& v, const dvec& zero) { return at::vec::clamp_max(zero, v); }

// A lane vector of scalar_t in memory <-> its lanes as float64 vectors (round to nearest, as
// static_cast). Converting straight from and to memory saves the 512-bit extract and insert.
template <typename scalar_t>
struct Widen;

template <>
struct Widen<double> {
  static constexpr int kHalves = 1;
  static void load(const double* p, dvec* out) { out[0] = dvec::loadu(p); }
  static void store(const dvec* in, double* p) { in[0].store(p); }
};

template <>
struct Widen<float> {
  static constexpr int kHalves = Vectorized<float>::size() / dvec::size();
  static_assert(kHalves == 2, "a float vector holds twice the lanes of a double vector");
  static constexpr int DW = dvec::size();
#if defined(CPU_CAPABILITY_AVX512)
  static void load(const float* p, dvec* out) {
    out[0] = _mm512_cvtps_pd(_mm256_loadu_ps(p));
    out[1] = _mm512_cvtps_pd(_mm256_loadu_ps(p + DW));
  }
  static void store(const dvec* in, float* p) {
    _mm256_storeu_ps(p, _mm512_cvtpd_ps(in[0]));
    _mm256_storeu_ps(p + DW, _mm512_cvtpd_ps(in[1]));
  }
#elif defined(CPU_CAPABILITY_AVX2)
  static void load(const float* p, dvec* out) {
    out[0] = _mm256_cvtps_pd(_mm_loadu_ps(p));
    out[1] = _mm256_cvtps_pd(_mm_loadu_ps(p + DW));
  }
  static void store(const dvec* in, float* p) {
    _mm_storeu_ps(p, _mm256_cvtpd_ps(in[0]));
    _mm_storeu_ps(p + DW, _mm256_cvtpd_ps(in[1]));
  }
#else
  static void load(const float* p, dvec* out) {
    alignas(64) double d[2 * DW];
    for (int i = 0; i < 2 * DW; ++i) {
      d[i] = static_cast<double>(p[i]);
    }
    out[0] = dvec::loadu(d);
    out[1] = dvec::loadu(d + DW);
  }
  static void store(const dvec* in, float* p) {
    alignas(64) double d[2 * DW];
    in[0].store(d);
    in[1].store(d + DW);
    for (int i = 0; i < 2 * DW; ++i) {
      p[i] = static_cast<float>(d[i]);
    }
  }
#endif
};

// dst (n x m, leading dimension ld_dst) = src (m x n, leading dimension ld_src) transposed.
template <typename scalar_t>
inline void transpose(const scalar_t* src, int64_t ld_src, scalar_t* dst, int64_t ld_dst, int m,
                      int n) {
#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
  if constexpr (std::is_same_v<scalar_t, float>) {
    // Whole W x W blocks in registers with ATen's transpose_block at its compile-time size (its
    // runtime-size transpose_mxn keeps the block in memory between stages).
    constexpr int W = Vectorized<float>::size();
    if (m % W == 0 && n % W == 0) {
      for (int i = 0; i < m; i += W) {
        for (int j = 0; j < n; j += W) {
          at::vec::VectorizedN<float, W> block;
          for (int r = 0; r < W; ++r) {
            block[r] = Vectorized<float>::loadu(src + (i + r) * ld_src + j);
          }
          at::vec::transpose_block(block);
          for (int r = 0; r < W; ++r) {
            block[r].store(dst + (j + r) * ld_dst + i);
          }
        }
      }
      return;
    }
  }
#endif
  // Edges (AVX-512 float: masked 16 x 16 blocks), float64, and the DEFAULT build: ATen's
  // transpose_mxn.
  at::vec::transpose_mxn<scalar_t>(src, ld_src, dst, ld_dst, m, n);
}

// The rule's constants, broadcast.
struct Rule {
  // How the increment is computed: the symmetric rule is d * (d > 0 ? rise : fall) with
  // d = clip(sigma, 0, 1) - tau and per-unit slopes rise = nu / (1 - tau), fall = nu / tau, and
  // since both slopes are >= 0 the right product is the larger of d * rise and d * fall when
  // rise >= fall, else the smaller: two products and a max or min, no select. Where a slope is
  // not finite (1 / tau overflows, or nu / (1 - tau) does) that would make 0 * inf, so the
  // header's form nu * (max0(d) / (1 - tau) + min0(d) / tau) is used, as for the paper rule's.
  enum class Form { SymmetricMax, SymmetricMin, Symmetric, Paper };
  dvec zero, one, tau, nu, inv_rise, inv_fall, rise, fall, lb, ub, max_shift;
  Form form;
  bool divide_fall;
  explicit Rule(const SasRule& r)
      : zero(0.0), one(1.0), tau(r.tau), nu(r.nu), inv_rise(r.inv_rise), inv_fall(r.inv_fall),
        rise(r.nu * r.inv_rise), fall(r.nu * r.inv_fall), lb(r.lb), ub(r.ub),
        max_shift(kSasMaxShift), divide_fall(r.divide_fall) {
    const double k_rise = r.nu * r.inv_rise, k_fall = r.nu * r.inv_fall;
    if (r.decay == SasDecay::Paper) {
      form = Form::Paper;
    } else if (r.divide_fall || !std::isfinite(k_rise) || !std::isfinite(k_fall)) {
      form = Form::Symmetric;
    } else {
      form = k_rise >= k_fall ? Form::SymmetricMax : Form::SymmetricMin;
    }
  }
};

// One frame of one double vector of lanes as the step f(x) = clip(x + a, l, u), the header's
// sas_step: increment a within [lb, ub], or the identity for a NaN sigma. Branch- and blend-free:
// a NaN confidence makes q = NaN (else q = +-0), so its bounds are NaN, which clip() ignores
// (maxpd/minpd return their second operand, x + a, when the first is NaN: the identity's
// clip(x + 0, -inf, inf)); and its increment is made 0. Tiles without a
// NaN skip q (kMayBeNaN = false): lb + q and ub + q are then lb and ub, or a zero of the other
// sign, which clip() treats alike, so both forms give the same bits.
struct Step {
  dvec a, l, u, q;
};

template <bool kMayBeNaN>
inline Step sas_step(const dvec& sigma, const Rule& R) {
  const dvec c = clip(sigma, R.zero, R.one);  // NaN stays NaN; +-inf are confidences 1 and 0
  const dvec d = c - R.tau;
  dvec a;
  if (R.form == Rule::Form::SymmetricMax) {
    a = at::vec::clamp_min(d * R.rise, d * R.fall);  // maxpd: the larger product
  } else if (R.form == Rule::Form::SymmetricMin) {
    a = at::vec::clamp_max(d * R.rise, d * R.fall);  // minpd: the smaller product
  } else if (R.form == Rule::Form::Symmetric) {
    const dvec rise = max0(d, R.zero) * R.inv_rise;
    a = R.divide_fall ? R.nu * (rise + min0(d, R.zero) / R.tau)
                      : R.nu * (rise + min0(d, R.zero) * R.inv_fall);
  } else {
    const dvec rise = max0(d, R.zero) * R.inv_rise;
    const dvec falls = d.lt(R.zero);  // 1.0 where d < 0, else 0.0: static_cast<double>(d < 0)
    // The header's clip(v, 0, 1) as min(max0(v), 1): the same product below (only the sign of a
    // zero factor differs, which rise - falls * y never shows), and NaN-free.
    const dvec fall = at::vec::clamp_max(max0((R.one - c - R.tau) * R.inv_rise, R.zero), R.one);
    a = R.nu * (rise - falls * fall);
  }
  if constexpr (kMayBeNaN) {
    const dvec q = c * R.zero;
    if (R.form == Rule::Form::SymmetricMax || R.form == Rule::Form::SymmetricMin) {
      a = a & (c == c);  // the products keep a NaN; the max0/min0 forms already made it 0
    }
    return {a, R.lb + q, R.ub + q, q};
  } else {
    return {a, R.lb, R.ub, R.zero};
  }
}

template <typename scalar_t>
struct Kernel {
  using svec = Vectorized<scalar_t>;
  using W2 = Widen<scalar_t>;
  static constexpr int W = svec::size();
  static constexpr int H = W2::kHalves;  // double vectors per lane vector
  static constexpr int DW = dvec::size();

  // True if the n frame vectors at buf hold no NaN or infinity (their sum is finite).
  static bool all_finite(const scalar_t* buf, int n) {
    svec acc[4] = {svec(0), svec(0), svec(0), svec(0)};
    int t = 0;
    for (; t + 4 <= n; t += 4) {
      for (int k = 0; k < 4; ++k) {
        acc[k] = acc[k] + svec::loadu(buf + (t + k) * W);
      }
    }
    for (; t < n; ++t) {
      acc[0] = acc[0] + svec::loadu(buf + t * W);
    }
    const svec sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    return (sum - sum).zero_mask() == (1 << W) - 1;  // x - x is 0 unless x is NaN or infinite
  }

  // The rows of one group (m <= W) through the tiles: per tile, rows -> buf (frame-major), then
  // body(buf, n, finite) on its n frames, then (if out) buf -> out rows.
  template <typename Body>
  static void tiles(const scalar_t* in, scalar_t* out, int64_t ld, int m, int64_t len, Body body) {
    alignas(64) scalar_t buf[kTile * W];
    if (m < W) {  // lanes without a row: confidence 0, computed and never stored
      std::fill(buf, buf + kTile * W, scalar_t(0));
    }
    for (int64_t t0 = 0; t0 < len; t0 += kTile) {
      const int n = static_cast<int>(std::min<int64_t>(kTile, len - t0));
      transpose(in + t0, ld, buf, W, m, n);
      if (t0 + 2 * kTile <= len) {
        // The next tile's lines, fetched while this one computes: W rows a few cache lines at a
        // time are too many short streams for the hardware prefetcher, and the output's stores
        // stall on their read-for-ownership without it (-20 % time at 1024 x 10,000; issuing
        // them all here measured faster than one per frame, even two tiles ahead).
        for (int r = 0; r < m; ++r) {
          for (int c = 0; c < kTile; c += 64 / static_cast<int>(sizeof(scalar_t))) {
            __builtin_prefetch(in + r * ld + t0 + kTile + c, 0);
            if (out != nullptr) {
              __builtin_prefetch(out + r * ld + t0 + kTile + c, 1);
            }
          }
        }
      }
      body(buf, n, all_finite(buf, n));
      if (out != nullptr) {
        transpose(buf, W, out + t0, ld, n, m);
      }
    }
  }

  static void load_state(const double* x, int m, dvec* v) {
    alignas(64) double lanes[W] = {};
    std::copy(x, x + m, lanes);
    for (int h = 0; h < H; ++h) {
      v[h] = dvec::loadu(lanes + h * DW);
    }
  }

  static void store_state(const dvec* v, int m, double* x) {
    alignas(64) double lanes[W];
    for (int h = 0; h < H; ++h) {
      v[h].store(lanes + h * DW);
    }
    std::copy(lanes, lanes + m, x);
  }

  // The states through n frames (the dependency chain); each frame's sigma in buf is replaced
  // by its state in the output precision, NaN where sigma is NaN (x + q).
  template <bool kMayBeNaN>
  static void states(scalar_t* buf, int n, dvec* state, const Rule& R) {
    for (int t = 0; t < n; ++t) {
      dvec s[H], xq[H];
      W2::load(buf + t * W, s);
      for (int h = 0; h < H; ++h) {
        const Step f = sas_step<kMayBeNaN>(s[h], R);
        state[h] = clip(state[h] + f.a, f.l, f.u);  // the header's apply(f, x)
        xq[h] = kMayBeNaN ? state[h] + f.q : state[h];
      }
      W2::store(xq, buf + t * W);
    }
  }

  template <bool kMayBeNaN>
  static void compose_frames(const scalar_t* buf, int n, dvec* fa, dvec* fl, dvec* fu,
                             const Rule& R) {
    const dvec neg_max_shift = R.max_shift.neg();
    for (int t = 0; t < n; ++t) {
      dvec s[H];
      W2::load(buf + t * W, s);
      for (int h = 0; h < H; ++h) {  // the header's compose(f, step)
        const Step g = sas_step<kMayBeNaN>(s[h], R);
        fa[h] = clip(fa[h] + g.a, neg_max_shift, R.max_shift);
        fl[h] = clip(fl[h] + g.a, g.l, g.u);
        fu[h] = clip(fu[h] + g.a, g.l, g.u);
      }
    }
  }

  static void replay(const SasRows<scalar_t>& rows, scalar_t* out, double* x, const SasRule& r) {
    const Rule R(r);
    for (int64_t r0 = 0; r0 < rows.rows; r0 += W) {
      const int m = static_cast<int>(std::min<int64_t>(W, rows.rows - r0));
      dvec state[H];
      load_state(x + r0, m, state);
      tiles(rows.in + r0 * rows.ld, out + r0 * rows.ld, rows.ld, m, rows.len,
            [&](scalar_t* buf, int n, bool finite) {
              if (finite) {
                states<false>(buf, n, state, R);
              } else {
                states<true>(buf, n, state, R);
              }
              // The logistic, as the header's logistic<opmath_t>: 1 / (1 + exp(-x)), in a loop
              // of its own so the exp calls spill no state (NaN stays NaN).
              const svec one(scalar_t(1));
              for (int t = 0; t < n; ++t) {
                const svec xo = svec::loadu(buf + t * W);
                (one / (one + xo.neg().exp())).store(buf + t * W);
              }
            });
      store_state(state, m, x + r0);
    }
  }

  static void compose(const SasRows<scalar_t>& rows, ClipAdd* agg, const SasRule& r) {
    const Rule R(r);
    for (int64_t r0 = 0; r0 < rows.rows; r0 += W) {
      const int m = static_cast<int>(std::min<int64_t>(W, rows.rows - r0));
      dvec fa[H], fl[H], fu[H];
      for (int h = 0; h < H; ++h) {  // the identity
        fa[h] = R.zero;
        fl[h] = dvec(-std::numeric_limits<double>::infinity());
        fu[h] = dvec(std::numeric_limits<double>::infinity());
      }
      tiles(rows.in + r0 * rows.ld, nullptr, rows.ld, m, rows.len,
            [&](scalar_t* buf, int n, bool finite) {
              if (finite) {
                compose_frames<false>(buf, n, fa, fl, fu, R);
              } else {
                compose_frames<true>(buf, n, fa, fl, fu, R);
              }
            });
      alignas(64) double a[W], l[W], u[W];
      for (int h = 0; h < H; ++h) {
        fa[h].store(a + h * DW);
        fl[h].store(l + h * DW);
        fu[h].store(u + h * DW);
      }
      for (int i = 0; i < m; ++i) {
        agg[r0 + i] = {a[i], l[i], u[i]};
      }
    }
  }
};

}  // namespace

const SasCpuKernels& sas_cpu_kernels() {
#define VADX_STR2(x) #x
#define VADX_STR(x) VADX_STR2(x)
  static const SasCpuKernels kernels{
      &Kernel<float>::replay,  &Kernel<double>::replay, &Kernel<float>::compose,
      &Kernel<double>::compose, Kernel<float>::W,        Kernel<double>::W,
      VADX_STR(CPU_CAPABILITY)};
#undef VADX_STR
#undef VADX_STR2
  return kernels;
}

}  // namespace CPU_CAPABILITY
}  // namespace vadx
