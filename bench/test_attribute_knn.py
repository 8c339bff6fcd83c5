"""attribute-knn (object-centric velocity and appearance k-NN densities, after Reiss & Hoshen):
UCSD Ped2 accuracy and speed, and the k-NN search at a 50,000-exemplar bank.

- ``test_ped2_accuracy``: fits on Ped2's 16 training videos (2,550 frames) with the detector's
  defaults (darknet Yolo-Fastest-1.1 objects and MobileNetV2 appearance from the shared weights)
  and scores the 12 test videos: frame AUC and EER (micro, raw scores), pixel AUC/EER from the
  box maps (UCSD 40 % rule, vadx.metrics), AUC of each attribute's extras alone, fit seconds and
  scoring frames/s (frame decoding excluded). Then ``speed_240x360``: :func:`stage_profile` of
  the fitted detector on test video 04's first 128 frames (240x360) on 2 threads (or
  $VADX_BENCH_THREADS, e.g. 1 beside another job on the 2 cores): ms/frame of
  each stage (object detection, flow, appearance features, k-NN per attribute, velocity,
  background, maps) and frames/s, min and median of 3 scorings. Writes
  bench/results/attribute_knn_ped2.json.
- ``test_knn_search_50000``: the k-NN search for a 64-frame chunk's objects (8 per frame, 512
  queries: the detector searches once per chunk) against a 50,000-exemplar bank, for both
  attributes (8-d velocity, 1280-d L2-normalised appearance), per frame: ``vadx_attribute_knn.knn``
  against ``torch.cdist`` + ``topk`` over the full distance matrix; and, from the accuracy test's
  ``speed_240x360`` (same default bank), the k-NN's share of scoring time at the default bank
  and what it would be at 50,000 exemplars (merged into the same result file); also the exact
  8-d search as it was before issue 18 (``ms_per_frame_before_planes``, same run).

Both skip when ../shared/data/ucsd_ped2 or the shared weights are absent (the k-NN test only
needs the accuracy test's result for the share). Run:
pytest bench/test_attribute_knn.py -s -p no:logging
"""

import json
import os
import platform
import time
from pathlib import Path

import pytest
import torch

import vadx
import vadx.data
from vadx import evaluation
from vadx.evaluation import View
from vadx_attribute_knn.knn import knn_mean_distance
from timing import best_of  # bench/timing.py

SHARED = Path(__file__).resolve().parents[2] / "shared"
PED2 = SHARED / "data" / "ucsd_ped2"
WEIGHTS = SHARED / "weights"
RESULTS = Path(__file__).resolve().parent / "results" / "attribute_knn_ped2.json"
# torch threads (2: the machine's cores; VADX_BENCH_THREADS=1 beside another job on them)
THREADS = int(os.environ.get("VADX_BENCH_THREADS", "2"))
# Honest provenance of the defaults (written into the result file).
NOTES = (
    "Defaults chosen by a training-data criterion (issue 18; bench/attribute_knn_ablation.py, "
    "bench/results/attribute_knn_ped2_ablation.json): 4 folds of held-out training videos scored "
    "as normal against the same videos at 2x speed and against one object per frame turned upside "
    "down; criterion = mean of the two frame AUCs. It ranks velocity_bins=1, perspective=False and "
    "appearance_weight=1.0 first in every group of the other parameters, and k=3 among rows with "
    "min_confidence=0.3 and the background term, which were held at their earlier values because "
    "its pseudo-anomalies cannot judge them (they keep normal frames' boxes). The test AUC of every "
    "row was visible when that restriction was decided (the unrestricted pick, min_confidence 0.5 "
    "without background term, scored 0.678 on the test set from the cache). The earlier defaults "
    "(appearance_weight=0.5, k=5: 0.848) were chosen looking at the test set. The L2 "
    "normalisation of appearance features is still a test-set choice. "
    "velocity_quantile=0.75 (the speed is the 0.75 quantile of the flow magnitude in the box, not "
    "its mean) and no velocity for a stream's first frame (no flow) come from issue 18's velocity "
    "diagnosis (bench/results/attribute_knn_ped2_diagnosis.json, which uses the test masks) and "
    "were chosen by a harder training pseudo-anomaly, one object per frame at 2x speed "
    "(attribute_knn_ped2_ablation.json, velocity_design), among designs at flow_scale 0.5; the "
    "test AUC of every design row was visible when choosing."
)
NEEDED = [WEIGHTS / f for f in ("mobilenet_v2_imagenet.pth", "yolo-fastest-1.1.cfg",
                                "yolo-fastest-1.1.weights", "coco.names")]


@pytest.mark.skipif(not (PED2.is_dir() and all(f.is_file() for f in NEEDED)),
                    reason="needs ../shared/data/ucsd_ped2 and the shared weights")
def test_ped2_accuracy(monkeypatch):
    monkeypatch.setenv("VADX_WEIGHTS_DIR", str(WEIGHTS))
    torch.set_num_threads(THREADS)
    ds = vadx.data.load("ucsd-ped2", PED2)
    det = vadx.create("attribute-knn", progress=False)
    views = {name: View(signal=name) for name in ("velocity", "appearance", "background")}
    res = evaluation.evaluate(det, ds, views=views)
    out = evaluation.bench_record(
        det,
        detector="attribute-knn",
        dataset="ucsd-ped2 (train: 16 training videos, 2550 frames; test: 12 test videos, 2010 frames)",
        frame_auc_micro_raw=res["frame_auc"],
        frame_eer_micro_raw=res["frame_eer"],
        pixel_auc=res["pixel_auc"],
        pixel_eer=res["pixel_eer"],
        attribute_frame_auc={k: v["frame_auc"] for k, v in res["views"].items()},
        goals={"frame_auc_micro_raw": 0.97, "fit_seconds": 300, "score_frames_per_s": 25},
        paper={"frame_auc": 0.991, "what": "Reiss & Hoshen 2022, velocity + pose + CLIP, Mask R-CNN objects"},
        fit_seconds=round(res["seconds"]["fit"], 1),
        score_frames_per_s=round(res["fps"], 2),  # frame decoding excluded
        score_ms_per_frame=round(1000 * res["seconds"]["score"] / res["n_frames"], 1),
        n_frames=res["n_frames"],
        threshold=det.threshold_,
        train_info=det.train_info_,
        calibration={"velocity": det.velocity_calibration_, "appearance": det.appearance_calibration_,
                     "background": det.background_calibration_},
        per_video_auc={p["name"]: p["auc"] for p in res["per_video"]},
        weights={"appearance": det.weights_info_, "objects": det.objects_info_},
        device=f"cpu, {torch.get_num_threads()} thread(s) (2 shared cores, other jobs running; load "
               f"average {os.getloadavg()[0]:.2f} at the end of scoring)",
        machine=f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        notes=NOTES,
        command=f"VADX_BENCH_THREADS={THREADS} pytest bench/test_attribute_knn.py -k ped2 -s -p no:logging",
    )
    video = torch.as_tensor(ds.test[3].read())[:128]  # test 04: walkers, a cyclist and a cart
    out["speed_240x360"] = stage_profile(det, video)
    evaluation.write_result(RESULTS, out, merge=True)
    print(json.dumps({k: v for k, v in out.items() if k not in ("params", "per_video_auc")}, indent=2))
    assert res["frame_auc"] > 0.5


@pytest.mark.skipif(not (PED2.is_dir() and all(f.is_file() for f in NEEDED)),
                    reason="needs ../shared/data/ucsd_ped2 and the shared weights")
def test_speed_240x360(monkeypatch):
    """Scoring speed alone, quicker than the accuracy run: the defaults fitted on 4 training videos
    (a smaller bank than the full fit's 10,000; k-NN is under a tenth of scoring either way), then test
    04's first 128 frames at 240x360, per stage. Pause other jobs for a number worth quoting."""
    monkeypatch.setenv("VADX_WEIGHTS_DIR", str(WEIGHTS))
    torch.set_num_threads(THREADS)
    ds = vadx.data.load("ucsd-ped2", PED2)
    det = vadx.create("attribute-knn", progress=False)
    t0 = time.perf_counter()
    det.fit(ds.train[:4])
    fit = time.perf_counter() - t0
    video = torch.as_tensor(ds.test[3].read())[:128]
    out = {**stage_profile(det, video, rounds=5), "fit_4_videos_seconds": round(fit, 1),
           "bank": {k: v for k, v in det.train_info_.items() if k.endswith("bank")},
           "command": f"VADX_BENCH_THREADS={THREADS} pytest bench/test_attribute_knn.py -k speed_240x360 -s "
                      "-p no:logging"}
    evaluation.write_result(RESULTS, {"speed_240x360_fit_on_4_videos": out}, merge=True)
    print(json.dumps(out, indent=1))
    assert out["frames_per_s"]["max"] > 0


STAGES = ("objects", "flow", "appearance", "knn_velocity", "knn_appearance", "velocity",
          "background", "maps")


def stage_profile(det, video, *, rounds=3):
    """Per-stage ms/frame of ``det.score(video)`` and frames/s (frame decoding excluded), each the
    minimum over ``rounds`` scorings (median beside it). Stages are timed by wrapping the functions
    the detector calls; "maps" is the rest of scoring: combining the calibrated attributes, the
    box maps and the extras."""
    from vadx_attribute_knn import detector as mod
    spent = dict.fromkeys(STAGES, 0.0)

    def timed(stage, fn):
        def run(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                key = stage(*args) if callable(stage) else stage
                spent[key] += time.perf_counter() - t0
        return run

    objects = det._object_detector()
    knn = mod.knn_mean_distance
    patches = {"flow_at_scale": "flow", "crops": "appearance", "appearance": "appearance",
               "velocities": "velocity", "background_motions": "background",
               "knn_mean_distance": lambda q, bank, *a: ("knn_velocity" if bank is det.velocity_bank_
                                                         else "knn_appearance")}
    saved = {name: getattr(mod, name) for name in patches}
    detect = objects.detect
    rows = []
    try:
        for name, stage in patches.items():
            setattr(mod, name, timed(stage, saved[name]))
        objects.detect = timed("objects", detect)
        det.score(video[:8])  # warm-up: primitive caches, folded backbone
        for _ in range(rounds):
            for k in spent:
                spent[k] = 0.0
            t0 = time.perf_counter()
            det.score(video)
            total = time.perf_counter() - t0
            spent["maps"] = total - sum(v for k, v in spent.items() if k != "maps")
            rows.append({**spent, "total": total})
    finally:
        for name, fn in saved.items():
            setattr(mod, name, fn)
        objects.__dict__.pop("detect", None)
    n = video.shape[0]
    out = {"frames": n, "threads": torch.get_num_threads(), "rounds": rounds}
    for key in (*STAGES, "total"):
        v = sorted(r[key] for r in rows)
        out[key + "_ms_per_frame"] = {"min": round(1000 * v[0] / n, 2),
                                      "median": round(1000 * v[len(v) // 2] / n, 2)}
    out["frames_per_s"] = {"max": round(n / min(r["total"] for r in rows), 2),
                           "median": round(n / sorted(r["total"] for r in rows)[len(rows) // 2], 2)}
    assert knn is mod.knn_mean_distance
    return out


def test_knn_search_50000():
    """Also times the exact low-dimensional search as it was before issue 18's fix ([n, m, d]
    blocks of strided sums, still the path above 64 dimensions: ``_COLUMN_DIMS`` set to 0) on the
    8-d velocity bank, in the same run: ``ms_per_frame_before_planes``."""
    from vadx_attribute_knn import knn as knn_module
    torch.set_num_threads(THREADS)
    g = torch.Generator().manual_seed(0)
    frames, per_frame = 64, 8
    rows = {}
    for name, dim in (("velocity", 8), ("appearance", 1280)):
        bank = torch.randn(50_000, dim, generator=g)
        q = torch.randn(frames * per_frame, dim, generator=g)
        if name == "appearance":  # the detector's features are L2-normalised
            bank, q = torch.nn.functional.normalize(bank, dim=1), torch.nn.functional.normalize(q, dim=1)
        fast = best_of(lambda: knn_mean_distance(q, bank, 5), 3, warmup=1)
        full = best_of(lambda: torch.cdist(q, bank).topk(5, largest=False).values.mean(1), 3, warmup=1)
        want = torch.cdist(q.double(), bank.double()).topk(5, largest=False).values.mean(1)
        torch.testing.assert_close(knn_mean_distance(q, bank, 5).double(), want, rtol=1e-5, atol=1e-5)
        rows[name] = {"dim": dim, "ms_per_frame": round(1000 * fast / frames, 3),
                      "cdist_topk_ms_per_frame": round(1000 * full / frames, 3)}
        if name == "velocity":
            got = knn_mean_distance(q, bank, 5)
            saved = knn_module._COLUMN_DIMS
            knn_module._COLUMN_DIMS = 0
            try:
                before = best_of(lambda: knn_mean_distance(q, bank, 5), 3, warmup=1)
                assert torch.equal(knn_mean_distance(q, bank, 5), got)  # the same bits either way
            finally:
                knn_module._COLUMN_DIMS = saved
            rows[name]["ms_per_frame_before_planes"] = round(1000 * before / frames, 3)
    knn50 = sum(r["ms_per_frame"] for r in rows.values())
    out = {"bank": 50_000, "queries": frames * per_frame, "frames": frames, "k": 5,
           "threads": THREADS, **rows, "knn_ms_per_frame": round(knn50, 3),
           "load_average_1min": round(os.getloadavg()[0], 2),
           "command": f"VADX_BENCH_THREADS={THREADS} pytest bench/test_attribute_knn.py -k knn -s -p no:logging"}
    if RESULTS.is_file():
        speed = json.loads(RESULTS.read_text()).get("speed_240x360")
        if speed:  # the Ped2 profile: the default bank, real objects, same machine
            ms = {k: speed[f"{k}_ms_per_frame"]["min"] for k in ("knn_velocity", "knn_appearance", "total")}
            knn = ms["knn_velocity"] + ms["knn_appearance"]
            out["share_of_scoring_time_default_bank"] = round(knn / ms["total"], 4)
            # the same scoring with the k-NN search swapped for this 50,000-exemplar one
            out["share_of_scoring_time_at_50000"] = round(knn50 / (ms["total"] - knn + knn50), 4)
            out["scoring_ms_per_frame (Ped2 speed_240x360, min)"] = ms["total"]
    evaluation.write_result(RESULTS, {"knn_50000": out}, merge=True)
    print(json.dumps(out, indent=2))
