// accumulator_score, CUDA: a parallel scan over time. Each frame is a step x -> clip(x + a, l, u);
// such steps compose, in order, into a step of the same form (compose() in the header), so a stream
// is scanned in tiles of kTile frames:
//   1. tile_aggregate_kernel: each tile's composed step;
//   2. tile_entry_kernel: per stream, a scan of its tile steps gives each tile's entry state;
//   3. replay_kernel: each thread finds its entry state from a block scan and replays its frames.
// Streams that fit in one tile skip 1-2: several are packed into a tile and 3 alone does them in
// one pass, its block scan segmented so that it restarts at each stream's x0.
#include "../accumulator_score.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cub/block/block_load.cuh>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/block/block_store.cuh>
#include <cuda/std/limits>
#include <torch/library.h>

#include <limits>

namespace vadx {
namespace {

constexpr int kThreads = 256;
constexpr int kItems = 8;  // consecutive frames per thread, composed in registers
constexpr int kTile = kThreads * kItems;

// Order matters: cub calls op(earlier, later) for both BlockScan and BlockReduce.
struct ComposeOp {
  __device__ ClipAdd operator()(const ClipAdd& earlier, const ClipAdd& later) const {
    return compose(earlier, later);
  }
};

// A run of frames within a tile: its composed step and whether a stream starts inside it (then f
// is the composition from that start, to be applied to that stream's x0, not to the state before).
struct Segment {
  ClipAdd f;
  bool reset;
};

struct SegmentOp {
  __device__ Segment operator()(const Segment& earlier, const Segment& later) const {
    return later.reset ? later : Segment{compose(earlier.f, later.f), earlier.reset};
  }
};

// sigma in its opmath precision, widened to the float64 of the accumulator (as the CPU kernel).
template <typename scalar_t>
__device__ inline double to_double(scalar_t v) {
  return static_cast<double>(static_cast<at::opmath_type<scalar_t>>(v));
}

// The frames [begin, begin + count) of the flattened [B*T] sigma that a tile covers. Long streams
// (T > kTile) are cut into tiles_per_stream tiles each; short ones are packed whole,
// streams_per_tile to a tile, so that every tile of the one-pass path starts a stream.
struct TileGeometry {
  int64_t B, T, tiles_per_stream, streams_per_tile;

  __device__ void locate(int64_t tile, int64_t& begin, int& count) const {
    if (tiles_per_stream > 1) {
      const int64_t b = tile / tiles_per_stream;
      const int64_t t0 = (tile - b * tiles_per_stream) * kTile;
      begin = b * T + t0;
      count = static_cast<int>(::min(static_cast<int64_t>(kTile), T - t0));
    } else {
      const int64_t b0 = tile * streams_per_tile;
      begin = b0 * T;
      count = static_cast<int>(::min(streams_per_tile, B - b0) * T);
    }
  }
};

template <typename scalar_t>
using TileLoad = cub::BlockLoad<scalar_t, kThreads, kItems, cub::BLOCK_LOAD_WARP_TRANSPOSE>;
template <typename scalar_t>
using TileStore = cub::BlockStore<scalar_t, kThreads, kItems, cub::BLOCK_STORE_WARP_TRANSPOSE>;

// Phase 1 (long streams): agg[tile] = the tile's frames composed in time order.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    tile_aggregate_kernel(const scalar_t* __restrict__ sigma, ClipAdd* __restrict__ agg,
                          TileGeometry g, SasRule p) {
  // WARP_REDUCTIONS keeps operand order (it supports non-commutative operators).
  using Reduce = cub::BlockReduce<ClipAdd, kThreads, cub::BLOCK_REDUCE_WARP_REDUCTIONS>;
  __shared__ union {
    typename TileLoad<scalar_t>::TempStorage load;
    typename Reduce::TempStorage reduce;
  } smem;

  const int64_t tile = blockIdx.x;
  int64_t begin;
  int count;
  g.locate(tile, begin, count);
  // Coalesced load through shared memory into a blocked arrangement: thread i holds frames
  // [i * kItems, (i + 1) * kItems) of the tile; those past count are left unset and skipped.
  scalar_t v[kItems];
  TileLoad<scalar_t>(smem.load).Load(sigma + begin, v, count);
  __syncthreads();  // smem.load is reused by the reduction

  const int first = threadIdx.x * kItems;
  ClipAdd f = clip_add_identity();
#pragma unroll
  for (int k = 0; k < kItems; ++k) {
    if (first + k < count) {
      f = compose(f, sas_step(to_double(v[k]), p));
    }
  }
  const ClipAdd total = Reduce(smem.reduce).Reduce(f, ComposeOp{});
  if (threadIdx.x == 0) {
    agg[tile] = total;
  }
}

// Phase 2 (long streams): one block per stream scans its tile steps, kTile tiles at a time, and
// writes each tile's entry state. Carrying the state (not the composed function) between chunks
// costs one apply per chunk.
__global__ void __launch_bounds__(kThreads)
    tile_entry_kernel(const ClipAdd* __restrict__ agg, const double* __restrict__ x0,
                      double* __restrict__ entry, int64_t tiles_per_stream) {
  using Scan = cub::BlockScan<ClipAdd, kThreads>;
  __shared__ typename Scan::TempStorage scan_storage;

  const int64_t b = blockIdx.x;
  const ClipAdd* a = agg + b * tiles_per_stream;
  double* e = entry + b * tiles_per_stream;
  double x = x0[b];  // the state at the start of the current chunk of tiles
  for (int64_t c = 0; c < tiles_per_stream; c += kTile) {
    const int64_t j0 = c + static_cast<int64_t>(threadIdx.x) * kItems;
    ClipAdd f[kItems];
    ClipAdd local = clip_add_identity();
#pragma unroll
    for (int k = 0; k < kItems; ++k) {
      f[k] = j0 + k < tiles_per_stream ? a[j0 + k] : clip_add_identity();
      local = compose(local, f[k]);
    }
    ClipAdd prefix, chunk;
    Scan(scan_storage).ExclusiveScan(local, prefix, clip_add_identity(), ComposeOp{}, chunk);
    double y = apply(prefix, x);
#pragma unroll
    for (int k = 0; k < kItems; ++k) {
      if (j0 + k < tiles_per_stream) {
        e[j0 + k] = y;
        y = apply(f[k], y);
      }
    }
    x = apply(chunk, x);  // every thread holds the block aggregate
    __syncthreads();      // scan_storage is reused by the next chunk
  }
}

// Phase 3: scores for one tile. tile_entry is the entry state of each tile of a long stream, or
// null when every tile starts a stream (then nothing before the tile matters).
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    replay_kernel(const scalar_t* __restrict__ sigma, scalar_t* __restrict__ out,
                  const double* __restrict__ x0, const double* __restrict__ tile_entry,
                  double* __restrict__ x_last, TileGeometry g, SasRule p) {
  using opmath_t = at::opmath_type<scalar_t>;
  using Scan = cub::BlockScan<Segment, kThreads>;
  __shared__ union {
    typename TileLoad<scalar_t>::TempStorage load;
    typename Scan::TempStorage scan;
    typename TileStore<scalar_t>::TempStorage store;
  } smem;

  const int64_t tile = blockIdx.x;
  int64_t begin;
  int count;
  g.locate(tile, begin, count);
  scalar_t v[kItems];
  TileLoad<scalar_t>(smem.load).Load(sigma + begin, v, count);
  __syncthreads();  // smem.load is reused by the scan

  // This thread's frames: n of them, the first at stream b0, time t0.
  const int first = threadIdx.x * kItems;
  const int n = ::max(0, ::min(kItems, count - first));
  const int64_t b0 = (begin + first) / g.T;
  const int64_t t0 = begin + first - b0 * g.T;

  Segment own{clip_add_identity(), false};
  int64_t t = t0;
#pragma unroll
  for (int k = 0; k < kItems; ++k) {
    if (k < n) {
      own = SegmentOp{}(own, Segment{sas_step(to_double(v[k]), p), t == 0});
      t = t + 1 == g.T ? 0 : t + 1;
    }
  }
  Segment prefix;
  Scan(smem.scan).ExclusiveScan(own, prefix, Segment{clip_add_identity(), false}, SegmentOp{});

  // The state before this thread's first frame. If that frame starts a stream, x is reset below.
  double x = 0.0;
  if (n > 0) {
    x = apply(prefix.f, prefix.reset || tile_entry == nullptr ? x0[b0] : tile_entry[tile]);
  }
  // Replay sequentially, as the CPU kernel does: NaN sigma scores NaN and the accumulator holds.
  // Scores overwrite v (fewer registers).
  int64_t b = b0;
  t = t0;
#pragma unroll
  for (int k = 0; k < kItems; ++k) {
    if (k < n) {
      if (t == 0) {
        x = x0[b];
      }
      const double s = to_double(v[k]);
      if (s != s) {
        v[k] = static_cast<scalar_t>(::cuda::std::numeric_limits<opmath_t>::quiet_NaN());
      } else {
        x = apply(sas_step(s, p), x);
        v[k] = static_cast<scalar_t>(logistic<opmath_t>(x));
      }
      if (++t == g.T) {
        x_last[b] = x;
        t = 0;
        ++b;
      }
    }
  }
  __syncthreads();  // smem.scan is reused by the store
  TileStore<scalar_t>(smem.store).Store(out + begin, v, count);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> accumulator_score_cuda(const at::Tensor& sigma_in, double tau,
                                                          double nu, double lb, double ub,
                                                          const at::Tensor& x0_in,
                                                          c10::string_view decay) {
  const SasRule p = check_accumulator_score_args(sigma_in, tau, nu, lb, ub, x0_in, decay);
  const c10::cuda::CUDAGuard device_guard(sigma_in.device());
  const at::Tensor sigma = sigma_in.contiguous();
  const at::Tensor x0 = x0_in.contiguous();
  const int64_t B = sigma.size(0);
  const int64_t T = sigma.size(1);
  at::Tensor s = at::empty({B, T}, sigma.options());
  if (B == 0 || T == 0) {
    return {s, x0.clone()};  // a copy: outputs must not alias inputs
  }
  at::Tensor x_last = at::empty({B}, x0.options());

  const int64_t tiles_per_stream = (T + kTile - 1) / kTile;
  const int64_t streams_per_tile = tiles_per_stream == 1 ? kTile / T : 1;
  const TileGeometry g{B, T, tiles_per_stream, streams_per_tile};
  const int64_t ntiles = tiles_per_stream == 1 ? (B + streams_per_tile - 1) / streams_per_tile
                                               : B * tiles_per_stream;
  TORCH_CHECK(ntiles <= std::numeric_limits<int>::max(),
              "accumulator_score: sigma of shape ", sigma.sizes(), " needs ", ntiles,
              " tiles of ", kTile, " frames, more than a CUDA grid holds");

  // Long streams: per-tile composed steps ([B, tiles, 3] = ClipAdd {a, l, u}) and entry states.
  static_assert(sizeof(ClipAdd) == 3 * sizeof(double), "ClipAdd is stored as 3 doubles");
  at::Tensor agg, entry;
  if (tiles_per_stream > 1) {
    agg = at::empty({B, tiles_per_stream, 3}, x0.options());
    entry = at::empty({B, tiles_per_stream}, x0.options());
  }
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, sigma.scalar_type(),
                                  "accumulator_score_cuda", [&] {
    const scalar_t* sig = sigma.const_data_ptr<scalar_t>();
    const double* x0_p = x0.const_data_ptr<double>();
    const double* entry_p = nullptr;
    if (tiles_per_stream > 1) {
      ClipAdd* agg_p = reinterpret_cast<ClipAdd*>(agg.mutable_data_ptr<double>());
      tile_aggregate_kernel<scalar_t>
          <<<static_cast<unsigned>(ntiles), kThreads, 0, stream>>>(sig, agg_p, g, p);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      tile_entry_kernel<<<static_cast<unsigned>(B), kThreads, 0, stream>>>(
          agg_p, x0_p, entry.mutable_data_ptr<double>(), tiles_per_stream);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      entry_p = entry.const_data_ptr<double>();
    }
    replay_kernel<scalar_t><<<static_cast<unsigned>(ntiles), kThreads, 0, stream>>>(
        sig, s.mutable_data_ptr<scalar_t>(), x0_p, entry_p, x_last.mutable_data_ptr<double>(), g,
        p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {s, x_last};
}

TORCH_LIBRARY_IMPL(vadx, CUDA, m) { m.impl("accumulator_score", &accumulator_score_cuda); }

}  // namespace vadx
