"""Live cameras and archives on this machine (issue 19, item 5): latency, camera capacity, Ray scaling.

    .venv/bin/python bench/live_and_archive.py [latency] [capacity] [scaling] [--quick]
        [--detector=NAME] [--max-cameras=N]

- latency: one UCSD Ped2 test video (240x360) served at 10 frames/s as MJPEG over HTTP on
  127.0.0.1 (tests/mjpeg_server.py) and watched with ``vadx.watch.watch``: per-frame latency from
  capture (the frame leaving OpenCV's decoder in the capture thread) to its score, and from the
  server writing the frame that opened an event to the event's line being written;
- capacity: N such cameras (each its own server, the videos started at different offsets) watched
  by one process, N = 1, 2, ... for ``SECONDS`` each; a count is sustained when no frame was
  dropped and the 95th-percentile latency stayed under 1 s (a queue that grows means a backlog);
- scaling: the 12 Ped2 test videos (frame folders) twice over, scored by
  ``vadx.distributed.score_archive`` on a local Ray cluster with 2 CPUs, 1 worker then 2 (one
  torch thread each), alternated over several rounds; wall times and their ratio (actor start and
  model load included, as a user sees it), each round beside a control: the same CPU-bound torch
  work in 1 and in 2 plain processes, i.e. how much of the second core other jobs left us.

Detectors: latent-pred and bg-ensemble with their ``cpu`` presets' architectures (the recipe of
their Ped2 results), fitted for this benchmark on 3 Ped2 training videos with few epochs/steps
(the scoring cost does not depend on how long they trained; their accuracy is not measured here).
Results go to bench/results/live_cameras.json and bench/results/archive_ray_scaling.json with
the machine's load average at the start and end of each part: the machine is shared, so compare
numbers within one run only.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from mjpeg_server import MJPEGServer  # noqa: E402

import vadx  # noqa: E402
from vadx.io import open_video  # noqa: E402

PED2 = ROOT.parent / "shared" / "data" / "ucsd_ped2"
RESULTS = ROOT / "bench" / "results"
CACHE = Path(tempfile.gettempdir()) / "vadx-bench-live"
QUICK = "--quick" in sys.argv
SECONDS = 10 if QUICK else 15
ROUNDS = 2 if QUICK else 3
MAX_CAMERAS = int(next((a.split("=")[1] for a in sys.argv if a.startswith("--max-cameras=")), 16))
ONLY = next((a.split("=")[1] for a in sys.argv if a.startswith("--detector=")), None)
# the cpu presets' architectures, trained briefly: scoring cost is what is measured
DETECTORS = {
    "latent-pred": dict(preset="cpu", epochs=2, stage1_epochs=1, progress=False),
    "bg-ensemble": dict(preset="cpu", sdae_steps=100, density_steps=50, scene_steps=50,
                        progress=False),
}


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def model(name: str) -> Path:
    """The detector fitted on Ped2 training videos 01-03, cached between runs."""
    path = CACHE / f"{name}.vadx"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    params = dict(DETECTORS[name])
    det = vadx.create(name, **params)
    train = [open_video(PED2 / "training" / "frames" / f"{i:02d}", grayscale=True)
             for i in (1, 2, 3)]
    t0 = time.perf_counter()
    det.fit(train)
    print(f"fitted {name} in {time.perf_counter() - t0:.0f} s", flush=True)
    det.save(path)
    return path


def test_video(i: int) -> np.ndarray:
    return open_video(PED2 / "testing" / "frames" / f"{i:02d}", grayscale=True).read().numpy()


def run_watch(model_path: Path, servers: list[MJPEGServer], seconds: float) -> dict:
    """Watch the servers' streams until ``seconds`` after the first frame, then stop."""
    from vadx.watch import watch

    stop = threading.Event()
    events = Path(tempfile.mkdtemp()) / "events.jsonl"
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        summary = watch(str(model_path), [s.url for s in servers], events=events, status=None,
                        stop=stop, handle_signals=False, max_reconnects=None, backoff=0.2)
    finally:
        timer.cancel()
    recs = [json.loads(line) for line in open(events)]
    return {"summary": summary, "records": recs}


def part_latency(results: dict) -> None:
    out = results.setdefault("latency", {"load_before": load_avg()})
    frames = np.concatenate([test_video(i) for i in (2, 4)])  # normal start, then anomalies
    for name in [ONLY] if ONLY else DETECTORS:
        path = model(name)
        with MJPEGServer(frames, fps=10) as srv:
            run = run_watch(path, [srv], min(len(frames) / 10, SECONDS * 2))
        cam = run["summary"]["cameras"][0]
        starts = [r for r in run["records"] if r["type"] == "event_start"]
        to_event = [r["latency_s"] for r in starts]  # capture of the opening frame -> line
        out[name] = {"frames_captured": cam["frames"], "scored": cam["scored"],
                     "dropped": cam["dropped"], "reconnects": cam["reconnects"],
                     "latency_capture_to_score_ms": cam["latency"],
                     "events": len(starts),
                     "latency_capture_to_event_ms": {
                         "median": round(1000 * float(np.median(to_event)), 2) if to_event else None,
                         "max": round(1000 * float(np.max(to_event)), 2) if to_event else None}}
        print(name, json.dumps(out[name]), flush=True)
    out["load_after"] = load_avg()


def part_capacity(results: dict) -> None:
    out = results.setdefault("capacity", {"load_before": load_avg(), "seconds_per_trial": SECONDS})
    frames = np.concatenate([test_video(i) for i in (1, 2, 3)])
    for name in [ONLY] if ONLY else DETECTORS:
        path = model(name)
        trials = []

        def trial(n: int) -> bool:
            servers = [MJPEGServer(np.roll(frames, 37 * k, axis=0), fps=10).start() for k in range(n)]
            try:
                run = run_watch(path, servers, SECONDS)
            finally:
                for s in servers:
                    s.stop()
            cams = run["summary"]["cameras"]
            dropped = sum(c["dropped"] for c in cams)
            p95 = max(c["latency"]["p95_ms"] or 0 for c in cams)
            ok = dropped == 0 and p95 < 1000 and all(c["reconnects"] == 0 for c in cams)
            trials.append({"cameras": n, "sustained": ok, "dropped": dropped,
                           "scored": sum(c["scored"] for c in cams),
                           "frames": sum(c["frames"] for c in cams), "p95_latency_ms": p95,
                           "p50_latency_ms": max(c["latency"]["p50_ms"] or 0 for c in cams),
                           "load": load_avg()})
            print(name, json.dumps(trials[-1]), flush=True)
            return ok

        # doubling until a count fails (at most MAX_CAMERAS), then bisection between the two
        good, bad, n = 0, None, 1
        while n <= MAX_CAMERAS and bad is None:
            if trial(n):
                good, n = n, 2 * n
            else:
                bad = n
        if bad is None:
            bad = MAX_CAMERAS + 1
        while bad - good > 1:
            n = (good + bad) // 2
            good, bad = (n, bad) if trial(n) else (good, n)
        out[name] = {"max_cameras_without_drops": good, "max_cameras_tried": MAX_CAMERAS,
                     "trials": trials}
    out["load_after"] = load_avg()


def _spin(_: int) -> float:
    """A fixed CPU-bound torch workload on one thread; returns its seconds."""
    torch.set_num_threads(1)
    x = torch.randn(384, 384)
    t0 = time.perf_counter()
    for _ in range(300):
        x = torch.tanh(x @ x / 384)
    return time.perf_counter() - t0


def control(procs: int) -> float:
    """Wall seconds for ``procs`` processes each running :func:`_spin` at once: how well this
    machine runs 2 CPU-bound processes right now (others' jobs included)."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(procs) as pool:
        pool.map(_spin, range(procs))  # warm the processes up (imports)
        t0 = time.perf_counter()
        pool.map(_spin, range(procs))
        return time.perf_counter() - t0


def part_scaling() -> dict:
    """1 then 2 Ray workers on the same archive, alternated ``ROUNDS`` times, each next to a
    control (the same CPU-bound work in 1 and 2 plain processes) that says how much of a second
    core the machine had to give at the time."""
    import ray

    from vadx.distributed import score_archive

    path = model("latent-pred")
    # the 12 test videos twice (24 videos, 4020 frames): fixed costs (starting the actors, loading
    # the model) are then a small part, as in a real archive
    videos = [PED2 / "testing" / "frames" / f"{i:02d}" for i in range(1, 13)] * 2
    frames = sum(len(open_video(v)) for v in videos)
    out = {"load_before": load_avg(), "detector": "latent-pred", "videos": len(videos),
           "frames": frames, "rounds": []}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for r in range(ROUNDS):
            row = {}
            for workers in (1, 2):
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    s = score_archive(path, videos, tmp, ray=True, workers=workers, progress=False)
                    wall = time.perf_counter() - t0
                assert s["scored"] == len(videos), s
                busy = sum(v["seconds"] for v in s["videos"])
                row[f"workers_{workers}"] = {"seconds": round(wall, 2),
                                             "frames_per_s": round(frames / wall, 2),
                                             "worker_seconds": round(busy, 2)}
            one, two = control(1), control(2)
            row["speedup"] = round(row["workers_1"]["seconds"] / row["workers_2"]["seconds"], 3)
            row["control_speedup"] = round(2 * one / two, 3)  # 2 processes did twice the work
            row["load"] = load_avg()
            out["rounds"].append(row)
            print(json.dumps(row), flush=True)
    finally:
        ray.shutdown()
    best = max(out["rounds"], key=lambda r: r["control_speedup"])
    out["speedup_2_over_1"] = [r["speedup"] for r in out["rounds"]]
    out["control_speedup"] = [r["control_speedup"] for r in out["rounds"]]
    out["speedup_in_quietest_round"] = best["speedup"]
    out["load_after"] = load_avg()
    return out


def main() -> None:
    parts = [a for a in sys.argv[1:] if not a.startswith("--")] or ["latency", "capacity", "scaling"]
    torch.set_num_threads(2)
    meta = {"command": "python bench/live_and_archive.py " + " ".join(sys.argv[1:]),
            "cpus": os.cpu_count(), "torch": torch.__version__, "detectors": DETECTORS,
            "note": "shared 2-core machine (other engineers' jobs running): numbers are noisy; "
                    "compare within this run only"}
    live_path = RESULTS / "live_cameras.json"
    if "latency" in parts or "capacity" in parts:
        results = json.loads(live_path.read_text()) if live_path.exists() else {}
        results.update(meta)
        if "latency" in parts:
            part_latency(results)
        if "capacity" in parts:
            part_capacity(results)
        live_path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {live_path}")
    if "scaling" in parts:  # each invocation adds a run: the machine's load differs between them
        path = RESULTS / "archive_ray_scaling.json"
        out = json.loads(path.read_text()) if path.exists() else {}
        run = part_scaling()
        for k in ("detector", "videos", "frames"):
            out[k] = run.pop(k)
        out.update(meta)
        out.setdefault("runs", []).append(dict(run, finished=time.strftime("%H:%M UTC",
                                                                          time.gmtime())))
        path.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
