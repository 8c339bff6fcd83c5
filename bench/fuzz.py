"""Fuzz vadx as an attacker and a careless user would (issue 21), and print the issue's table.

Categories (each case is generated from (seed, category, index), so a finding can be replayed):
  op calls         the compiled ops with random shapes, dtypes, devices, values (NaN, inf, huge,
                   empty, non-contiguous) and scalar arguments; results compared with
                   vadx/ops/reference.py; inputs checked unchanged.
  model files      a saved model file truncated, bit-flipped, its JSON header and tensor table
                   rewritten; loaded (and, if it loads, used to score).
  videos/folders   video files cut or corrupted, frame folders with corrupt, empty, oversized
                   (header-declared) or mismatched images; read to the end.
  plugins          plugin distributions that fail to import, exit, raise BaseExceptions, or
                   register wrongly; the host loads them and lists its plugins.
  CLI output paths `vadx score` / `vadx fit` with an output that is one of the inputs (by name,
                   hard link, symlink, `..`), or two outputs that are one file.

Every case runs in a worker process (`--worker`), so a crash (the process dies) or a hang (no
answer within the timeout) is recorded against the case that caused it and the worker is
restarted. Outcomes per case:
  ok           the call returned, and its result is right (where there is a reference)
  clean error  an exception of the documented kind whose message names the argument (ops: one
               of the op's parameter names; model files and videos: the file's path; CLI: the
               colliding flag; plugins: the broken plugin reported FAILED, the host going on)
  other error  any other exception (counted, listed in the JSON with its message)
  crash / hang / wrong result / data loss   (data loss: an input tensor or file changed)

    python bench/fuzz.py --quick          # 3,538 cases, ~15 s on 2 cores
    python bench/fuzz.py                  # 22,944 cases, ~45 s (--seed N for other cases)
    python bench/fuzz.py --cases 3 --selftest   # tests/test_fuzz.py

Writes bench/results/fuzz.json (or --out) and prints the table as markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io as _io
import json
import os
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "fuzz.json"
CATEGORIES = ["op calls", "model files", "videos and frame folders", "plugins", "CLI output paths"]
SIZES = {  # cases per category: --quick, default (full)
    "quick": {"op calls": 3000, "model files": 300, "videos and frame folders": 150, "plugins": 48,
              "CLI output paths": 40},
    "full": {"op calls": 20000, "model files": 2000, "videos and frame folders": 600, "plugins": 144,
             "CLI output paths": 200},
}
TIMEOUT_S = {"harness": 3, "op calls": 20, "model files": 30, "videos and frame folders": 60, "plugins": 60,
             "CLI output paths": 120}
OUTCOMES = ["ok", "clean error", "other error", "crash", "hang", "wrong result", "data loss"]
MEMORY_LIMIT = 6 << 30  # address space of a worker: a runaway allocation fails, the machine lives


# ============================================================================= worker side ====

def _rng(seed: int, category: str, index: int) -> random.Random:
    return random.Random(f"{seed}:{category}:{index}")


def _sha(path: Path) -> str:
    if path.is_dir():
        return "dir:" + ",".join(f"{p.name}={_sha(p)}" for p in sorted(path.iterdir()))
    if path.is_symlink() and not path.exists():
        return "dangling"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "missing"


class Outcome(Exception):
    """Raised by a case to report its outcome."""

    def __init__(self, outcome: str, detail: str = "", signature: str = ""):
        super().__init__(detail)
        self.outcome, self.detail = outcome, detail
        # what groups findings of one cause: the exception and its message without the numbers
        self.signature = signature or re.sub(r"\d+", "N", detail.split(" -> ")[-1])[:120]


# ---------------------------------------------------------------------------- op calls

OP_PARAMS = {
    "accumulator_score": ["sigma", "tau", "nu", "lb", "ub", "x0", "decay"],
    "mahalanobis_cascade": ["feats", "mu1", "w1", "beta", "alpha", "ct_weight", "ct_bias", "mu2", "w2", "phi"],
    "rollback_coverage": ["weights", "size", "jump", "offset", "out_size"],
    "sista": ["x", "A", "lambda1", "lambda2", "gamma", "S", "alpha0", "K", "mode"],
    "fit_gaussian": ["x", "shrinkage"],
    "receptive_field": ["layers", "layer"],
}


def _special(r: random.Random, dtype):
    import torch

    big = 1e30 if dtype in (torch.float32, torch.float64) else 6e4
    return r.choice([float("nan"), float("inf"), float("-inf"), big, -big, 0.0, -0.0,
                     1e308 if dtype == torch.float64 else big, 1e-40, 5e-324])


def _mutate_tensor(r: random.Random, t, allow_shape=True):
    """A randomly broken variant of tensor t, and what was done."""
    import torch

    kind = r.choice(["dtype", "values", "values", "noncontig", "shape", "empty", "meta", "cuda"]
                    if allow_shape else ["dtype", "values", "values", "noncontig"])
    if kind == "dtype":
        dt = r.choice([torch.float16, torch.bfloat16, torch.float64, torch.float32, torch.int64,
                       torch.uint8, torch.bool, torch.complex64, torch.float8_e4m3fn])
        try:
            return t.to(dt), f"dtype {dt}"
        except Exception:
            return t.to(torch.int64), "dtype int64"
    if kind == "values":
        if not t.is_floating_point() or t.numel() == 0:
            return t, "values (none)"
        t = t.contiguous().clone()
        flat = t.view(-1)
        for _ in range(r.randint(1, 4)):
            flat[r.randrange(flat.numel())] = _special(r, t.dtype)
        if r.random() < 0.2:
            t.fill_(_special(r, t.dtype))
        return t, "special values"
    if kind == "noncontig":
        if t.dim() == 0:
            return t, "0-d"
        big = torch.stack([t, t], dim=-1)
        return big[..., 0], "non-contiguous"
    if kind == "shape":
        choice = r.random()
        if choice < 0.3:
            return t.reshape(-1), "flattened"
        if choice < 0.6:
            return t.unsqueeze(0), "extra dim"
        if t.dim() > 0:
            shape = list(t.shape)
            shape[r.randrange(len(shape))] = r.choice([0, 1, 2, 7])
            return torch.zeros(shape, dtype=t.dtype), f"shape {shape}"
        return t.reshape(1), "1-d"
    if kind == "empty":
        shape = list(t.shape) or [0]
        shape[r.randrange(len(shape))] = 0
        return torch.zeros(shape, dtype=t.dtype), f"empty {shape}"
    if kind == "meta":
        return t.to("meta"), "meta device"
    if torch.cuda.is_available():
        return t.cuda(), "cuda"
    return t, "cuda (none here)"


def _mutate_scalar(r: random.Random, v):
    import torch

    return r.choice([float("nan"), float("inf"), float("-inf"), 0.0, -1.0, -1e308, 1e308, 1e-320,
                     "x", None, [1.0], True, torch.tensor(1.0), torch.tensor([1.0, 2.0]), 2 ** 63,
                     -v if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.5,
                     10 ** 9, 3])


def _op_case(r: random.Random):
    """(op name, args dict, mutated names)."""
    import torch

    op = r.choice(["accumulator_score", "accumulator_score", "mahalanobis_cascade", "rollback_coverage",
                   "rollback_coverage", "sista", "fit_gaussian", "receptive_field"])
    g = torch.Generator().manual_seed(r.randrange(1 << 30))
    dt = r.choice([torch.float32, torch.float32, torch.float64])
    if op == "accumulator_score":
        B, T = r.choice([0, 1, 2, 5, 17, 33]), r.choice([0, 1, 3, 40, 200])
        sigma = torch.rand(B, T, generator=g, dtype=dt)
        if r.random() < 0.2:
            sigma = sigma[0] if B else sigma.reshape(-1)
        tau = r.choice([0.0, 0.3, 0.5, 0.9, 0.999])
        lb = r.uniform(-10, 0)
        args = dict(sigma=sigma, tau=tau, nu=r.choice([0.1, 1.0, 2.0, 50.0, 1e300]), lb=lb,
                    ub=lb + r.choice([1e-9, 0.5, 14.0, 1e6]),
                    x0=r.choice([None, 0.0, 1e300, torch.randn(sigma.shape[0] if sigma.dim() == 2 else 1,
                                                               generator=g, dtype=torch.float64)]),
                    decay=r.choice(["symmetric", "paper"]))
        if isinstance(args["x0"], torch.Tensor) and sigma.dim() == 1:
            args["x0"] = args["x0"][0]
    elif op == "mahalanobis_cascade":
        B, m, H, W, h = r.choice([0, 1, 2]), r.choice([1, 3, 8]), r.choice([0, 1, 5]), r.choice([1, 4]), r.choice([1, 2, 5])
        feats = torch.randn(B, m, H, W, generator=g, dtype=dt)
        w1 = torch.linalg.cholesky(torch.eye(m, dtype=dt) * 2).inverse()
        w2 = torch.eye(h, dtype=dt)
        beta = r.uniform(0, 2)
        args = dict(feats=feats, mu1=torch.randn(m, generator=g, dtype=dt), w1=w1, beta=beta,
                    alpha=beta + r.uniform(0, 3), ct_weight=torch.randn(h, m, generator=g, dtype=dt),
                    ct_bias=torch.randn(h, generator=g, dtype=dt), mu2=torch.rand(h, generator=g, dtype=dt),
                    w2=w2, phi=r.uniform(0, 2))
    elif op == "rollback_coverage":
        B, Hk, Wk = r.choice([0, 1, 3]), r.choice([0, 1, 4, 9]), r.choice([1, 3, 8])
        weights = (torch.rand(B, Hk, Wk, generator=g) < 0.4).to(dt)
        if r.random() < 0.3:
            weights = torch.randn(B, Hk, Wk, generator=g, dtype=dt) * r.choice([1.0, 1e17, 1e300 if dt == torch.float64 else 1e30])
        pair = lambda lo, hi: (r.randint(lo, hi), r.randint(lo, hi))  # noqa: E731
        args = dict(weights=weights, size=pair(1, 20), jump=pair(1, 8), offset=pair(-5, 10),
                    out_size=pair(0, 40))
    elif op == "sista":
        B, T, d, n = r.choice([0, 1, 3]), r.choice([0, 1, 4]), r.choice([1, 6]), r.choice([1, 5])
        A = torch.nn.functional.normalize(torch.randn(d, n, generator=g, dtype=dt), dim=0)
        args = dict(x=torch.randn(B, T, d, generator=g, dtype=dt), A=A, lambda1=r.choice([0.0, 0.1, 0.5]),
                    lambda2=r.choice([0.0, 0.5, 2.0]), gamma=r.choice([1.0, 5.0, float(n) + 1]),
                    S=torch.rand(B, T, generator=g, dtype=dt), alpha0=torch.zeros(B, n, dtype=dt),
                    K=r.choice([1, 2, 3]), mode=r.choice(["signed", "nonneg"]))
    elif op == "fit_gaussian":
        N, m = r.choice([1, 2, 10, 40]), r.choice([1, 3, 8])
        x = torch.randn(N, m, generator=g, dtype=dt) * r.choice([1.0, 1e-6, 1e5]) + r.choice([0.0, 1e5])
        args = dict(x=x, shrinkage=r.choice([None, None, 0.0, 0.1, 1.0]))
    else:
        layers = [(r.randint(1, 11), r.randint(1, 4), r.randint(0, 3)) for _ in range(r.randint(0, 5))]
        args = dict(layers=layers)
    mutated = []
    for _ in range(r.choice([0, 1, 1, 2, 3])):
        name = r.choice(list(args))
        v = args[name]
        if isinstance(v, torch.Tensor):
            args[name], how = _mutate_tensor(r, v)
        elif name == "layers":
            how = "layers"
            args[name] = r.choice([[(0, 1, 0)], [(3, 0, 0)], [(3, 1, -1)], [(3, 1, 0, 0)], [(1 << 40, 2, 0)],
                                   [(3, 1)], "x", None, [("a", 1, 0)], [((3, 3), (2, 1), (1, 0))],
                                   [(3, 2, 1)] * 200])
        elif name in ("size", "jump", "offset", "out_size"):
            how = "pair"
            args[name] = r.choice([(0, 1), (-1, 2), (1 << 40, 1), 1 << 31, (1.5, 2), "x", None, (1, 2, 3),
                                   (2 ** 31 - 1, 2 ** 31 - 1), (3,), (True, 2)])
        elif name in ("decay", "mode"):
            how = "string"
            args[name] = r.choice(["", "Paper", "linear", None, 3])
        elif name == "K":
            how = "K"
            args[name] = r.choice([0, -1, 10 ** 6, 10 ** 12, 1.5, "3", None, True])
        else:
            args[name] = _mutate_scalar(r, v)
            how = f"scalar {args[name]!r}"[:40]
        mutated.append(f"{name}: {how}")
    return op, args, mutated


def _clone_args(args):
    import torch

    return {k: (v.clone() if isinstance(v, torch.Tensor) and v.device.type != "meta" else v) for k, v in args.items()}


def _same_tensor(a, b):
    import torch

    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(a[~torch.isnan(a)], b[~torch.isnan(b)])
    return torch.equal(a, b)


def _compare(name, got, want, dtype):
    """None if got matches the reference's want, else a description."""
    import torch

    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for i, (a, b) in enumerate(zip(got, want)):
        a, b = a.detach().cpu(), b.detach().cpu()
        if a.shape != b.shape:
            return f"output {i}: shape {tuple(a.shape)}, reference {tuple(b.shape)}"
        if a.numel() == 0:
            continue
        if not a.is_floating_point():
            mismatch = (a != b).sum().item()
            if mismatch:
                return f"output {i}: {mismatch} of {a.numel()} values differ from the reference"
            continue
        a64, b64 = a.double(), b.double()
        tol = {torch.float64: 1e-7, torch.float32: 2e-3, torch.float16: 2e-2, torch.bfloat16: 5e-2}.get(dtype, 2e-3)
        scale = b64[torch.isfinite(b64)].abs().max().item() if torch.isfinite(b64).any() else 1.0
        both_nan = torch.isnan(a64) & torch.isnan(b64)
        close = torch.isclose(a64, b64, rtol=tol, atol=tol * max(scale, 1.0)) | both_nan
        if not close.all():
            k = (~close).nonzero()[0].tolist()
            return (f"output {i}: {(~close).sum().item()} of {a.numel()} values differ, e.g. at {k}: "
                    f"{a64[tuple(k)].item()!r} vs reference {b64[tuple(k)].item()!r}")
    return None


def _reference_result(op, args):
    """The reference's answer for a call the op accepted, or None where there is none to compare."""
    import torch

    from vadx.ops import reference

    # The cascade and sista are compared in a numerically sane range only (values and scalars
    # within 1e6): beyond it, products overflow or cancel at the op's precision (documented: it
    # computes in the input's dtype), and a difference from the float64 reference is not a bug.
    # accumulator_score's and rollback_coverage's references are exact for any finite input.
    tensors = [v for v in args.values() if isinstance(v, torch.Tensor) and v.device.type != "meta"]
    finite = all(torch.isfinite(v).all().item() for v in tensors if v.is_floating_point())
    finite = finite and all(v.abs().max().item() <= 1e6 for v in tensors if v.is_floating_point() and v.numel())
    finite = finite and all(abs(v) <= 1e6 for v in args.values()
                            if isinstance(v, (int, float)) and not isinstance(v, bool))
    if op == "accumulator_score":
        a = args
        if a["sigma"].device.type != "cpu":
            return None
        return reference.accumulator_score(a["sigma"], a["tau"], a["nu"], a["lb"], a["ub"], a["x0"], a["decay"])
    if op == "mahalanobis_cascade":
        if args["feats"].device.type != "cpu" or not finite:
            return None
        return reference.mahalanobis_cascade(**args)
    if op == "rollback_coverage":
        a = args
        w = a["weights"]
        if w.device.type != "cpu" or w.numel() > 5000:
            return None
        from vadx.ops.rollback_coverage import _pair
        pairs = [_pair("rollback_coverage", k, a[k]) for k in ("size", "jump", "offset", "out_size")]
        if pairs[3][0] * pairs[3][1] > 1 << 20:
            return None
        return reference.rollback_coverage(w, *pairs)
    if op == "sista":
        if args["x"].device.type != "cpu" or not finite:
            return None
        # at the op's precision (it computes in x's dtype, as documented): huge finite inputs
        # overflow float32's A^T A in both, not only in the op
        out = reference.sista(**args, dtype=None)
        # the recurrence amplifies rounding where gamma is below ||A||^2 (ISTA's step bound)
        return out if torch.isfinite(out).all() and out.abs().max() < 1e4 else None
    return None


def run_op_case(r: random.Random):
    import torch

    import vadx

    op, args, mutated = _op_case(r)
    desc = f"{op}: " + (", ".join(mutated) or "valid arguments")
    before = _clone_args(args)
    fn = getattr(vadx.ops, op)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(**args)
    except (ValueError, TypeError, NotImplementedError, RuntimeError, OverflowError, IndexError,
            KeyError, AttributeError, ZeroDivisionError, MemoryError) as e:
        msg = str(e)
        named = any(p in msg for p in OP_PARAMS[op])
        clean = named and isinstance(e, (ValueError, TypeError, NotImplementedError, OverflowError))
        raise Outcome("clean error" if clean else "other error", f"{desc} -> {type(e).__name__}: {msg[:300]}",
                      f"{op}: {type(e).__name__}: {re.sub(r'[0-9]+', 'N', msg)[:100]}")
    finally:
        for k, v in before.items():
            if isinstance(v, torch.Tensor) and v.device.type == "cpu" and not _same_tensor(v, args[k]):
                raise Outcome("data loss", f"{desc}: argument {k} changed")
    if op in ("fit_gaussian", "receptive_field"):
        raise Outcome("ok", desc)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = _reference_result(op, _clone_args(args))
    except Exception:  # the reference does not accept what the op did: nothing to compare
        want = None
    if want is not None:
        dtype = next((v.dtype for v in args.values() if isinstance(v, torch.Tensor) and v.is_floating_point()), None)
        problem = _compare(op, out, want, dtype)
        if problem:
            raise Outcome("wrong result", f"{desc}: {problem}")
    raise Outcome("ok", desc)


# ---------------------------------------------------------------------------- shared setup

FUZZ_DETECTOR = '''
import torch, vadx
from vadx.params import Interval

class FuzzWide(vadx.Detector):
    """A linear map sized by a fitted value, as real detectors size their networks."""
    name = "fuzz-wide"
    parameters = {"gain": Interval(float, 0, 1e6, closed="right")}  # scores stay finite

    def __init__(self, *, gain: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.gain = gain

    def _fit(self, videos, labels):
        self.width_ = 2
        self._build_modules()
        return torch.cat([c.float().mean(dim=(1, 2, 3)) for v in videos for c in v]) * self.gain

    def _build_modules(self):
        self.proj_ = torch.nn.Linear(self.width_, self.width_)

    def _update(self, state, frames):
        return vadx.Scores(frames.float().mean(dim=(1, 2, 3)) * self.gain)

@vadx.hookimpl
def vadx_register_detectors(register):
    register(FuzzWide)
'''


def _make_dist(root: Path, dist: str, entry_points: dict, files: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[vadx]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def _video(T=12, H=24, W=32, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    v = (torch.rand(T, 3, H, W, generator=g) * 200).to(torch.uint8)
    for t in range(T):
        v[t, :, 8:12, t:t + 4] = 250
    return v


class Setup:
    """What the file categories need, made once per worker in its temporary folder."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self._model = self._media = None

    def plugin(self):
        import vadx

        site = self.tmp / "fuzz-site"
        if not site.exists():
            _make_dist(site, "vadx-fuzz-wide", {"fuzz_wide": "fuzz_wide_mod"}, {"fuzz_wide_mod.py": FUZZ_DETECTOR})
            sys.path.insert(0, str(site))
            vadx.plugins.reload()
        return site

    def model(self) -> bytes:
        import vadx

        if self._model is None:
            self.plugin()
            path = self.tmp / "good.vadx"
            vadx.create("fuzz-wide").fit([_video()]).save(path)
            self._model = path.read_bytes()
        return self._model

    def media(self):
        from vadx import io

        if self._media is None:
            base = self.tmp / "media"
            base.mkdir()
            video = io.write_video(base / "good.mp4", _video(30), fps=10)
            folder = io.write_frames(base / "frames", _video(10, seed=1))
            self._media = (video.read_bytes(), sorted((p.name, p.read_bytes()) for p in folder.iterdir()))
        return self._media


# ---------------------------------------------------------------------------- model files

def _random_json(r: random.Random, depth=0):
    choice = r.randrange(10)
    if choice == 0:
        return r.choice([10 ** 12, -1, 0, 2 ** 63, 1e308, float("nan"), float("inf")])
    if choice == 1:
        return r.choice(["", "x" * 1000, "../../etc/passwd", "fuzz-wide", "\u0000"])
    if choice == 2:
        return None
    if choice == 3:
        return r.choice([True, False])
    if choice == 4 and depth < 3:
        return [_random_json(r, depth + 1) for _ in range(r.randint(0, 3))]
    if choice == 5 and depth < 3:
        return {r.choice(["a", "score", "__class__", "threshold_", "proj_"]): _random_json(r, depth + 1)}
    if choice == 6:
        return json.loads("[" * 50 + "]" * 50)
    return r.uniform(-1e6, 1e6)


def _json_paths(v, prefix=()):
    yield prefix
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _json_paths(x, prefix + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _json_paths(x, prefix + (i,))


def _model_bytes(r: random.Random, good: bytes) -> tuple[bytes, str]:
    n = struct.unpack("<Q", good[:8])[0]
    table = json.loads(good[8:8 + n])
    data = good[8 + n:]
    kind = r.choice(["truncate", "flip", "header", "header", "header", "table", "table", "prefix", "garbage", "empty"])
    if kind == "truncate":
        k = r.randrange(len(good))
        return good[:k], f"truncated to {k} of {len(good)} bytes"
    if kind == "flip":
        b = bytearray(good)
        for _ in range(r.randint(1, 8)):
            b[r.randrange(len(b))] ^= 1 << r.randrange(8)
        return bytes(b), "bit flips"
    if kind == "garbage":
        return bytes(r.randrange(256) for _ in range(r.randint(1, 400))), "random bytes"
    if kind == "empty":
        return b"", "empty file"
    if kind == "prefix":
        v = r.choice([0, 1, 7, n - 1, n + 1, len(good), 2 ** 63, 2 ** 64 - 1])
        return struct.pack("<Q", v) + good[8:], f"header length {v}"
    if kind == "header":
        header = json.loads(table["__metadata__"]["vadx"])
        paths = [p for p in _json_paths(header) if p]
        what = []
        for _ in range(r.randint(1, 3)):
            p = r.choice(paths)
            parent = header
            for k in p[:-1]:
                parent = parent[k]
            if r.random() < 0.25 and isinstance(parent, dict):
                parent.pop(p[-1], None)
                what.append(f"deleted {'.'.join(map(str, p))}")
            else:
                try:
                    parent[p[-1]] = _random_json(r)
                    what.append(f"{'.'.join(map(str, p))} = {str(parent[p[-1]])[:30]}")
                except (KeyError, IndexError, TypeError):
                    pass
            paths = [q for q in _json_paths(header) if q]
            if not paths:
                break
        table["__metadata__"]["vadx"] = json.dumps(header)
        raw = json.dumps(table).encode()
        return struct.pack("<Q", len(raw)) + raw + data, "header: " + "; ".join(what)
    names = [k for k in table if k != "__metadata__"]
    name = r.choice(names)
    field = r.choice(["dtype", "shape", "data_offsets", "name", "delete"])
    if field == "delete":
        del table[name]
    elif field == "name":
        table[r.choice(["score", "__init__", "x" * 300, "proj_.weight", "gain"])] = table.pop(name)
    else:
        table[name][field] = r.choice([_random_json(r), [0, 10 ** 12], [2 ** 40, 2], [-1, 4], "F64", "PICKLE", [3, 1], [], [0, 0]])
    raw = json.dumps(table).encode()
    return struct.pack("<Q", len(raw)) + raw + data, f"tensor table: {name}.{field}"


def run_model_case(r: random.Random, setup: Setup):
    import torch

    import vadx

    good = setup.model()
    if r.random() < 0.05:
        path = setup.tmp / f"m{r.randrange(1 << 30)}.vadx"
        path.mkdir()
        desc = "a directory"
    else:
        raw, desc = _model_bytes(r, good)
        path = setup.tmp / f"m{r.randrange(1 << 30)}.vadx"
        path.write_bytes(raw)
    before = _sha(path)
    try:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                det = vadx.load(path)
        except (vadx.ModelFileError, OSError) as e:  # OSError: FileNotFoundError, IsADirectoryError
            raise Outcome("clean error" if str(path) in str(e) else "other error",
                          f"{desc} -> {type(e).__name__}: {str(e)[:300]}")
        except Exception as e:
            raise Outcome("other error", f"{desc} -> {type(e).__name__}: {str(e)[:300]}")
        try:
            scores = det.score(_video(6)).frame
        except Exception as e:
            raise Outcome("wrong result", f"{desc}: loaded, then score() raised {type(e).__name__}: {str(e)[:200]}")
        if not torch.isfinite(scores).all():
            raise Outcome("wrong result", f"{desc}: loaded, scores not finite")
        raise Outcome("ok", desc)
    finally:
        if _sha(path) != before:
            raise Outcome("data loss", f"{desc}: loading changed the file")
        shutil.rmtree(path) if path.is_dir() else path.unlink()


# ---------------------------------------------------------------------------- videos, folders

def _png_claiming(w: int, h: int) -> bytes:
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def run_video_case(r: random.Random, setup: Setup):
    import numpy as np

    from vadx import io

    video_bytes, frames = setup.media()
    case = setup.tmp / f"v{r.randrange(1 << 30)}"
    case.mkdir()
    kind = r.choice(["cut", "cut", "corrupt", "empty", "text", "folder-corrupt", "folder-empty-file",
                     "folder-huge", "folder-mixed", "folder-empty", "folder-other", "folder-gray16", "missing"])
    strict = r.random() < 0.3
    desc = kind + (" (strict)" if strict else "")
    if kind in ("cut", "corrupt", "empty", "text", "missing"):
        target = case / "cam.mp4"
        if kind == "cut":
            k = r.randrange(len(video_bytes))
            target.write_bytes(video_bytes[:k])
            desc += f" at {k} of {len(video_bytes)} bytes"
        elif kind == "corrupt":
            b = bytearray(video_bytes)
            for _ in range(r.randint(1, 50)):
                b[r.randrange(len(b))] = r.randrange(256)
            target.write_bytes(bytes(b))
        elif kind == "empty":
            target.write_bytes(b"")
        elif kind == "text":
            target.write_text("not a video\n" * 10)
    else:
        target = case / "frames"
        target.mkdir()
        for name, data in frames:
            (target / name).write_bytes(data)
        names = [n for n, _ in frames]
        if kind == "folder-corrupt":
            victim = target / r.choice(names)
            victim.write_bytes(victim.read_bytes()[: r.randrange(1, 200)])
        elif kind == "folder-empty-file":
            (target / r.choice(names)).write_bytes(b"")
        elif kind == "folder-huge":
            (target / r.choice(names)).write_bytes(_png_claiming(r.choice([12000, 70000, 2 ** 31 - 1]), 12000))
        elif kind == "folder-mixed":
            import cv2
            cv2.imwrite(str(target / r.choice(names)), np.zeros((r.randint(1, 50), r.randint(1, 50)), np.uint8))
        elif kind == "folder-empty":
            for p in target.iterdir():
                p.unlink()
        elif kind == "folder-other":
            for p in target.iterdir():
                p.rename(p.with_suffix(".txt"))
        elif kind == "folder-gray16":
            import cv2
            cv2.imwrite(str(target / r.choice(names)), (np.random.default_rng(0).random((24, 32)) * 65535).astype(np.uint16))
    before = {p: _sha(p) for p in [target, *(target.iterdir() if target.is_dir() else [])]}
    try:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                frames_read = io.read_video(target, strict=strict, chunk_size=r.choice([1, 4, 64]))
        except (io.VideoReadError, FileNotFoundError, ValueError) as e:
            raise Outcome("clean error" if str(target) in str(e) or target.name in str(e) else "other error",
                          f"{desc} -> {type(e).__name__}: {str(e)[:300]}")
        except Exception as e:
            raise Outcome("other error", f"{desc} -> {type(e).__name__}: {str(e)[:300]}")
        if frames_read.dtype.is_floating_point or frames_read.dim() != 4:
            raise Outcome("wrong result", f"{desc}: read {frames_read.dtype} {tuple(frames_read.shape)}")
        raise Outcome("ok", f"{desc}: {tuple(frames_read.shape)}")
    finally:
        for p, h in before.items():
            if _sha(p) != h:
                raise Outcome("data loss", f"{desc}: reading changed {p.name}")
        shutil.rmtree(case, ignore_errors=True)


# ---------------------------------------------------------------------------- plugins

PLUGIN_BODIES = [
    ("import error", "import no_such_module_anywhere\n"),
    ("syntax error", "def (:\n"),
    ("raises at import", "raise RuntimeError('boom')\n"),
    ("sys.exit(3) at import", "import sys\nsys.exit(3)\n"),
    ("sys.exit(0) at import", "import sys\nsys.exit(0)\n"),
    ("SystemExit('msg') at import", "raise SystemExit('bye')\n"),
    ("GeneratorExit at import", "raise GeneratorExit()\n"),
    ("BaseException subclass", "class Boom(BaseException):\n    pass\nraise Boom()\n"),
    ("recursion at import", "def f():\n    return f()\nf()\n"),
    ("MemoryError at import", "raise MemoryError()\n"),
    ("hook raises", "import vadx\n@vadx.hookimpl\ndef vadx_register_detectors(register):\n    raise ValueError('no')\n"),
    ("hook sys.exit", "import sys, vadx\n@vadx.hookimpl\ndef vadx_register_detectors(register):\n    sys.exit(4)\n"),
    ("registers a non-class", "import vadx\n@vadx.hookimpl\ndef vadx_register_detectors(register):\n    register(42)\n"),
    ("registers a non-detector class", "import vadx\nclass X:\n    name = 'x'\n@vadx.hookimpl\ndef vadx_register_detectors(register):\n    register(X)\n"),
    ("registers a nameless detector", "import vadx\nclass D(vadx.Detector):\n    pass\n@vadx.hookimpl\ndef vadx_register_detectors(register):\n    register(D)\n"),
    ("registers an invalid name", "import vadx\nclass D(vadx.Detector):\n    name = '../bad name'\n@vadx.hookimpl\ndef vadx_register_detectors(register):\n    register(D)\n"),
    ("steals a detector name", "import vadx\nclass D(vadx.Detector):\n    name = 'fuzz-wide'\n@vadx.hookimpl\ndef vadx_register_detectors(register):\n    register(D)\n"),
    ("wrong hook signature", "import vadx\n@vadx.hookimpl\ndef vadx_register_detectors(register, extra):\n    pass\n"),
    ("unknown hook", "import vadx\n@vadx.hookimpl\ndef vadx_no_such_hook(x):\n    pass\n"),
    ("wrapper hook", "import vadx\n@vadx.hookimpl(wrapper=True)\ndef vadx_register_detectors(register):\n    return (yield)\n"),
    ("no hooks at all", "X = 1\n"),
    ("registers twice", "import vadx\nclass D(vadx.Detector):\n    name = 'twice'\n@vadx.hookimpl\ndef vadx_register_detectors(register):\n    register(D)\n    register(D)\n"),
    ("register is called later", "import vadx\nkeep = []\n@vadx.hookimpl\ndef vadx_register_detectors(register):\n    keep.append(register)\n"),
    ("hook returns garbage", "import vadx\n@vadx.hookimpl\ndef vadx_register_detectors(register):\n    return object()\n"),
]
ENTRY_POINT_FORMS = ["{mod}", "{mod}", "{mod}:nothing_here", "no_such_module_x", "{mod}:", "a b c"]


def run_plugin_case(r: random.Random, setup: Setup, index: int):
    import vadx
    from vadx.cli import main

    setup.plugin()
    what, body = PLUGIN_BODIES[index % len(PLUGIN_BODIES)]
    form = r.choice(ENTRY_POINT_FORMS) if index >= len(PLUGIN_BODIES) else "{mod}"
    mod = f"fuzz_plugin_{index}"
    site = setup.tmp / f"plugin-site-{index}"
    _make_dist(site, f"vadx-fuzz-plugin-{index}", {f"fuzzp{index}": form.format(mod=mod)}, {f"{mod}.py": body})
    desc = f"{what} (entry point '{form.format(mod=mod)}')"
    sys.path.insert(0, str(site))
    try:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            vadx.plugins.reload()
            infos = {p.name: p for p in vadx.plugins.list_plugins()}
            out, err = _io.StringIO(), _io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main(["plugins"])
        if rc != 0 or not any(n.endswith("fuzz-wide") for n in vadx.list_detectors()):
            raise Outcome("other error", f"{desc}: the host's `vadx plugins` gave {rc}, detectors {vadx.list_detectors()}")
        info = infos.get(f"fuzzp{index}")
        if info is not None and info.error:
            raise Outcome("clean error", f"{desc}: reported FAILED: {info.error[:200]}")
        if "fuzz-wide" not in vadx.list_detectors():  # a name clash: reported, both qualified
            raise Outcome("clean error", f"{desc}: clash reported, detectors {vadx.list_detectors()}")
        raise Outcome("ok", f"{desc}: loaded, detectors {getattr(info, 'detectors', None)}")
    finally:
        sys.path.remove(str(site))
        for name in [n for n, m in sys.modules.items() if str(site) in (getattr(m, "__file__", None) or "")]:
            del sys.modules[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vadx.plugins.reload()


# ---------------------------------------------------------------------------- CLI outputs

def run_cli_case(r: random.Random, setup: Setup, index: int):
    from vadx.cli import main

    video_bytes, frames = setup.media()
    model_bytes = setup.model()
    case = setup.tmp / f"cli{index}"
    case.mkdir()
    video = case / "cam.mp4"
    video.write_bytes(video_bytes)
    folder = case / "train"
    folder.mkdir()
    for name, data in frames:
        (folder / name).write_bytes(data)
    model = case / "m.vadx"
    model.write_bytes(model_bytes)
    frame = folder / frames[0][0]
    inputs = [video, model, folder, *folder.iterdir()]
    spelled = {
        "the model": model, "the video": video, "a training frame": frame,
        "the video via ..": case / "new" / ".." / "cam.mp4",
    }
    link = case / "link.mp4"
    sym = case / "sym.vadx"
    if r.random() < 0.5:
        os.link(video, link)
        spelled["a hard link to the video"] = link
    sym.symlink_to(model)
    spelled["a symlink to the model"] = sym
    kind = index % 4
    if kind == 3:  # fit: the model file over a training input
        target_name = r.choice(["the video", "a training frame", "the video via .."])
        argv = ["fit", "fuzz-wide", "--train", str(video), str(folder), "--out", str(spelled[target_name])]
        flag, desc = "--out", f"fit --out = {target_name}"
    elif kind == 2:  # two outputs that are one (new) file, or a new file inside an input folder
        flag, other, name = r.choice([("--out", "--plot", "x.png"), ("--out", "--overlay", "x.mp4"),
                                      ("--overlay", "--out", "x.mp4"), ("--plot", "--out", "x.png")])
        if r.random() < 0.5:
            argv = ["score", str(model), str(video), flag, str(case / name), other, str(case / name)]
            desc = f"score {flag} and {other} = one new file"
        else:
            name = {"--out": "scores.csv", "--plot": "scores.png", "--overlay": "scores.mp4"}[flag]
            argv = ["score", str(model), str(folder), flag, str(folder / name)]
            desc = f"score a frame folder, {flag} inside it"
    else:  # an output that is an input, however spelled
        target_name = r.choice([k for k in spelled if k != "a training frame"])  # not score's input
        flag = r.choice(["--out", "--overlay", "--plot"])
        argv = ["score", str(model), str(video), flag, str(spelled[target_name])]
        desc = f"score {flag} = {target_name}"
    before = {p: _sha(p) for p in inputs}
    try:
        err = _io.StringIO()
        with contextlib.redirect_stdout(_io.StringIO()), contextlib.redirect_stderr(err):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    rc = main(argv)
                except SystemExit as e:  # argparse
                    rc = e.code
        message = err.getvalue()
        if rc == 0:
            raise Outcome("wrong result", f"{desc}: accepted (exit 0)")
        clean = flag in message  # refused, naming the flag (the collision, or argparse's check)
        raise Outcome("clean error" if clean else "other error", f"{desc} -> exit {rc}: {message.strip()[-300:]}")
    finally:
        for p, h in before.items():
            if _sha(p) != h:
                raise Outcome("data loss", f"{desc}: {p.name} changed")
        shutil.rmtree(case, ignore_errors=True)


HARNESS_CASES = ["ok", "clean error", "crash", "hang", "data loss"]


def run_harness_case(index: int, tmp: Path):
    """Cases with known outcomes (--selftest), so a broken harness cannot report all zeros."""
    kind = HARNESS_CASES[index % len(HARNESS_CASES)]
    if kind == "clean error":
        raise Outcome("clean error", "harness: a ValueError naming its argument")
    if kind == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "hang":
        time.sleep(3600)
    if kind == "data loss":
        raise Outcome("data loss", "harness: an input changed")
    raise Outcome("ok", "harness")


def worker(seed: int) -> None:
    """Reads "category<TAB>index" lines, answers JSON lines on the original stdout."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the code under test prints goes to stderr
    import resource

    try:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    except (ValueError, OSError):
        pass
    os.environ.setdefault("VADX_DISABLE_PLUGINS", "vadx")  # first-party plugins: not under test
    tmp = Path(tempfile.mkdtemp(prefix="vadx-fuzz-"))
    setup = Setup(tmp)
    try:
        for line in sys.stdin:
            category, index = line.rstrip("\n").split("\t")
            index = int(index)
            proto.write(json.dumps({"event": "start", "index": index}) + "\n")
            r = _rng(seed, category, index)
            try:
                if category == "harness":
                    run_harness_case(index, tmp)
                import torch  # imported on the first real case (harness restarts stay cheap)

                torch.set_num_threads(1)
                if category == "op calls":
                    run_op_case(r)
                elif category == "model files":
                    run_model_case(r, setup)
                elif category == "videos and frame folders":
                    run_video_case(r, setup)
                elif category == "plugins":
                    run_plugin_case(r, setup, index)
                else:
                    run_cli_case(r, setup, index)
                result = Outcome("ok", "")
            except Outcome as o:
                result = o
            except Exception as e:  # the harness itself failed on this case
                result = Outcome("other error", f"harness: {type(e).__name__}: {e} {traceback.format_exc()[-500:]}")
            proto.write(json.dumps({"event": "done", "index": index, "outcome": result.outcome,
                                    "detail": result.detail, "signature": result.signature}) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ============================================================================= parent side ====

class Worker:
    def __init__(self, seed: int, log):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", "--seed", str(seed)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                     env=env, text=True, bufsize=1, start_new_session=True)
        self.buffer = ""

    def send(self, category: str, index: int) -> None:
        self.proc.stdin.write(f"{category}\t{index}\n")
        self.proc.stdin.flush()

    def read(self, timeout: float):
        """The next JSON message, or None on timeout, or "dead" if the worker exited."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while "\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 65536).decode()
            if not chunk:
                return "dead"
            self.buffer += chunk
        line, self.buffer = self.buffer.split("\n", 1)
        return json.loads(line)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


def run(sizes: dict, seed: int, log_path: Path, examples: int = 3, progress=print) -> dict:
    table = {}
    with open(log_path, "w") as log:
        w = Worker(seed, log)
        try:
            for category in sizes:
                counts = dict.fromkeys(OUTCOMES, 0)
                found = {o: {} for o in OUTCOMES if o not in ("ok", "clean error")}  # signature -> cases
                t0 = time.monotonic()
                for index in range(sizes[category]):
                    if w.proc.poll() is not None:
                        w = Worker(seed, log)
                    w.send(category, index)
                    msg = w.read(120)  # the start line (worker start-up included)
                    if isinstance(msg, dict) and msg.get("event") == "start":
                        msg = w.read(TIMEOUT_S[category])
                    if msg is None:
                        outcome, detail = "hang", f"no answer in {TIMEOUT_S[category]} s"
                        signature = detail
                        w.kill()
                    elif msg == "dead":
                        code = w.proc.wait()
                        outcome = "crash"
                        detail = f"worker died: {'signal ' + signal.Signals(-code).name if code < 0 else 'exit ' + str(code)}"
                        signature = detail
                    else:
                        outcome, detail, signature = msg["outcome"], msg["detail"], msg.get("signature", "")
                    counts[outcome] += 1
                    if outcome in found:
                        group = found[outcome].setdefault(signature, {"count": 0, "cases": []})
                        group["count"] += 1
                        if len(group["cases"]) < examples:
                            group["cases"].append({"case": index, "detail": detail})
                    if outcome in ("crash", "hang"):
                        w = Worker(seed, log)
                table[category] = {"cases": sizes[category], **counts, "seconds": round(time.monotonic() - t0, 1),
                                   "examples": {k: v for k, v in found.items() if v}}
                progress(f"{category}: {counts} in {table[category]['seconds']} s")
        finally:
            w.close()
    return table


def markdown(table: dict) -> str:
    cols = ["cases", "clean error", "other error", "crash", "hang", "wrong result", "data loss", "ok"]
    head = ["category", "cases", "clean errors", "other errors", "crashes", "hangs", "wrong results", "data loss", "ok"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for category, row in table.items():
        lines.append("| " + " | ".join([category] + [str(row[c]) for c in cols]) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the < 3 minute run")
    parser.add_argument("--cases", type=int, help="this many cases per category (smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--selftest", action="store_true",
                        help="first run cases of known outcome (ok, error, crash, hang, data loss)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON table (default: bench/results/fuzz.json)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.seed)
        return 0
    mode = "quick" if args.quick else "full"
    sizes = {c: args.cases for c in CATEGORIES} if args.cases else dict(SIZES[mode])
    if args.selftest:
        sizes = {"harness": len(HARNESS_CASES), **sizes}
    t0 = time.monotonic()
    log = Path(tempfile.gettempdir()) / f"vadx-fuzz-{os.getpid()}.log"
    table = run(sizes, args.seed, log, progress=lambda s: print(s, file=sys.stderr, flush=True))
    result = {"mode": "cases" if args.cases else mode, "seed": args.seed, "seconds": round(time.monotonic() - t0, 1),
              "python": sys.version.split()[0], "table": table}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(table))
    print(f"\n{sum(r['cases'] for r in table.values())} cases in {result['seconds']} s, seed {args.seed}; "
          f"details: {args.out}; worker log: {log}")
    bad = sum(r[o] for c, r in table.items() if c != "harness" for o in ("crash", "hang", "data loss"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
