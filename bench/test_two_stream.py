"""two-stream: scoring speed per component at 224x224, and supervised cross-validation on UCSD Ped2.

Run:
    VADX_BENCH_THREADS=1 pytest bench/test_two_stream.py -p no:logging -s
(one torch thread: on this shared 2-core machine two threads spin against the other jobs and run
~10x slower.) Weights used (the only ones available here): ImageNet MobileNetV2
(mobilenet_v2_imagenet.pth) for both streams, Yolo-Fastest-1.1-XL (COCO, Darknet) for the bag of
objects; the paper used ResNet-50 and YOLOv4.

Cross-validation (the one supervised protocol Ped2 allows; the detector as :data:`RECIPE`, the
``cpu`` preset's max pooling and normal-segment rate): the 12 labelled test videos in the 4
folds of :data:`FOLDS`, and the 16 normal training/ videos in the 4 folds of :func:`normal_fold`.
Each fold trains on the other 9 test videos' frame labels plus the other 12 training videos as
extra normal data, holds out :func:`validation_video` of those 9 for early stopping, and scores
its 3 test videos and its 4 normal-only videos. Frame AUC is computed over all out-of-fold SAS
scores (and the raw confidences) of the 12 test videos (as the paper's frame-level protocol) and
also with the normal-only videos added; VL-F1 (the paper's rule: a video is anomalous when SAS >
0.5 anywhere) over all 28 videos, so a detector that alarms everywhere does not get 1.0. Ped2 is
10 frames/s (the UCSD loader says so): SAS takes its step per second from it. Grey frames are
replicated to RGB. Backbone features and bags are extracted once per video (backbones are frozen
in phase 1, so this is exact) and cached under ``$VADX_BENCH_CACHE`` (default
/tmp/vadx_two_stream_cache, keyed by precision); out-of-fold frames are scored from the cached
features with the same classifier + SAS as ``_update`` (checked against ``det.score`` on one
video). Phase 2 (fine-tuning both backbones) is skipped here (CPU time; it is tested on tiny
inputs in tests/test_two_stream.py). Schedule: phase 1 until early stopping (patience 5, as the
paper) or ``VADX_TWO_STREAM_EPOCHS`` epochs (default 100). The learning rate is chosen per fold
on training data: each of ``VADX_TWO_STREAM_LRS`` (default the paper's 1e-5, then 1e-4 and 1e-3)
is trained and the one with the lowest validation-video loss scores the fold's held-out videos.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import vadx
import vadx.data
import vadx.precision
from vadx import evaluation, metrics
from vadx.ops.accumulator_score import accumulator_score
from timing import best_of  # bench/timing.py

torch.set_num_threads(int(os.environ.get("VADX_BENCH_THREADS", "1")))

SHARED = Path(__file__).resolve().parents[2] / "shared"
W = SHARED / "weights"
PED2 = SHARED / "data" / "ucsd_ped2"
CACHE = Path(os.environ.get("VADX_BENCH_CACHE", "/tmp/vadx_two_stream_cache"))
RESULTS = Path(__file__).parent / "results" / "two_stream_ped2.json"
FOLDS = [["01", "05", "09"], ["02", "06", "10"], ["03", "07", "11"], ["04", "08", "12"]]
MAX_EPOCHS = int(os.environ.get("VADX_TWO_STREAM_EPOCHS", "100"))
HEAD_LRS = [float(x) for x in os.environ.get("VADX_TWO_STREAM_LRS", "1e-5,1e-4,1e-3").split(",")]

needs = pytest.mark.skipif(not (W / "mobilenet_v2_imagenet.pth").is_file()
                           or not (W / "yolo-fastest-1.1-xl.cfg").is_file(),
                           reason="shared MobileNetV2 / Yolo-Fastest weights absent")
OBJECTS = {"name": "darknet", "cfg": str(W / "yolo-fastest-1.1-xl.cfg"),
           "weights": str(W / "yolo-fastest-1.1-xl.weights"), "names": str(W / "coco.names")}


#: The recipe's choices made by bench/two_stream_ablation.py's training-data criterion (the
#: "cpu" preset's): max pooling, normal segments sampled at 10 frames/s (every Ped2 frame).
RECIPE = {"pool": "max", "normal_fps": 10.0}


def make(**kw):
    return vadx.create("two-stream", backbone="mobilenet_v2", weights=str(W / "mobilenet_v2_imagenet.pth"),
                       object_detector=OBJECTS, source_fps=10.0, progress=False, **{**RECIPE, **kw})


def cache_tag(det) -> str:
    """The feature cache's key for a set-up detector: its precision, and its pooling unless the
    paper's average (the key caches had before ``pool`` existed)."""
    return det.precision_ if det.pool == "avg" else f"{det.precision_}_{det.pool}"


def normal_fold(k: int, names: list[str]) -> list[str]:
    """The normal-only training/ videos fold ``k`` scores (and does not train on): every 4th."""
    return sorted(names)[k::len(FOLDS)]


def validation_video(train_names: list[str]) -> str:
    """The held-out validation video of a fold: the first of its 9 training test videos."""
    return sorted(train_names)[0]


def _time(fn):
    # two untimed calls: the first also builds cached copies (folded backbones, oneDNN weights)
    return best_of(fn, 5, warmup=2)


def _time_unfolded(det, small, flow):
    """The backbones as modules (what phase-2 training runs) rather than the folded copies."""
    net = det.net_
    net._backbones = lambda: (net.rgb, net.flow)
    try:
        return _time(lambda: det._embed(small, flow))
    finally:
        del net._backbones


@needs
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_speed_components(precision):
    """Frames/s of each scoring stage on 224x224 RGB frames, in float32 and under bf16 autocast
    (one run, so the ratios compare)."""
    if precision == "bf16" and vadx.precision.resolve("auto", torch.device("cpu")) != "bf16":
        pytest.skip("this CPU has no native bf16")
    det = make(precision=precision)
    det._setup()
    n = 16
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (n, 3, 224, 224), dtype=torch.uint8, generator=g)
    frames = (frames // 4 + torch.arange(n).view(n, 1, 1, 1).to(torch.uint8) * 8)  # some motion
    state: dict = {}
    small, flow = det._inputs(state, frames)
    objects = det._object_detector()
    sigma = torch.rand(n, generator=g)
    net = det.net_
    with torch.inference_mode():
        times = {
            "flow (Farneback + HSV image)": _time(lambda: det._inputs({}, frames)),
            "backbones (2x MobileNetV2)": _time(lambda: det._embed(small, flow)),
            "backbones, batch norm not folded": _time_unfolded(det, small, flow),
            "bag-of-objects (Yolo-Fastest-XL)": _time(lambda: objects.detect(frames)),
            "classifier (FC 4096 x2)": _time(lambda: net.head(torch.zeros(n, det.in_features_))),
            "SAS": _time(lambda: accumulator_score(sigma, 0.5, 2.0, -7.0, 7.0, -7.0)),
        }
        det._complete_fit(torch.zeros(1))  # untrained: threshold_ is the SAS alarm rule anyway
        total = _time(lambda: det.stream(fps=10.0).update(frames))
        # a 30 frames/s camera (the paper's UCF-Crime): objects detected in every 3rd frame
        total30 = _time(lambda: det.stream(fps=30.0).update(frames))
    fps = {k: n / v for k, v in times.items()}
    fps["total (_update)"] = n / total
    fps[f"total, 30 fps video (objects at {det.object_fps:g}/s)"] = n / total30
    print(f"\ntwo-stream scoring at 224x224, {torch.get_num_threads()} torch thread(s), frames/s:")
    for k, v in fps.items():
        print(f"  {k:44s} {v:10.1f} fps   ({n / v / total:6.1%} of _update)")
    evaluation.write_result(RESULTS, {f"speed_224_fps_{precision}": {k: round(v, 2) for k, v in fps.items()},
                                      "speed_threads": torch.get_num_threads()}, merge=True)
    assert all(np.isfinite(v) and v > 0 for v in fps.values())


def _features(det, video, key: str):
    """Cached backbone features (+ bags) of every frame of a video."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{key}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    f = det.extract_features(video)
    f["index"] = torch.arange(int(f["n_frames"]))
    torch.save(f, path)
    return f


def _subset(f: dict, labels: torch.Tensor, idx: torch.Tensor) -> dict:
    pos = torch.searchsorted(f["index"], idx)
    out = {k: (v[pos] if v is not None else None) for k, v in f.items()
           if k in ("rgb", "flow", "bag")}
    out["target"] = labels[idx].float()
    return out


@needs
@pytest.mark.skipif(not (PED2 / "testing").is_dir(), reason="UCSD Ped2 absent")
def test_ped2_cross_validation():
    ds = vadx.data.load("ucsd-ped2", str(PED2))
    test = {v.name: v for v in ds.test}
    normal = {v.name: v for v in ds.train}
    assert sorted(test) == sorted(sum(FOLDS, []))
    det0 = make()
    det0._setup()
    tag = cache_tag(det0)
    t0 = time.perf_counter()
    cached = all((CACHE / f"{tag}_{kind}_{n}.pt").is_file()
                 for kind, names in (("test", test), ("train", normal)) for n in names)
    feats = {n: _features(det0, v, f"{tag}_test_{n}") for n, v in test.items()}
    nfeats = {n: _features(det0, v, f"{tag}_train_{n}") for n, v in normal.items()}
    t_extract = time.perf_counter() - t0
    scores, conf, labels, folds_out = {}, {}, {}, []
    fit_seconds = []
    for k, held in enumerate(FOLDS):
        train_names = [n for n in sorted(test) if n not in held]
        val_name = validation_video(train_names)
        held_normal = normal_fold(k, list(normal))
        det = make(max_epochs=MAX_EPOCHS, seed=k)
        det._setup()
        sub = {}
        for n in train_names:
            lab = torch.as_tensor(test[n].labels).long()
            sub[n] = _subset(feats[n], lab, det.sample(lab, test[n].fps))
        extra = []
        for n in sorted(normal):
            if n not in held_normal:
                lab = torch.zeros(len(normal[n]), dtype=torch.long)
                extra.append(_subset(nfeats[n], lab, det.sample(lab, normal[n].fps)))
        train = [sub[n] for n in train_names if n != val_name] + extra
        t1 = time.perf_counter()
        tried = {}
        for lr in HEAD_LRS:  # chosen on the validation video (training data), not on the fold's test
            candidate = make(max_epochs=MAX_EPOCHS, head_lr=lr, seed=k).fit_features(train, [sub[val_name]])
            tried[lr] = min(candidate.history_["phase1"]["val_loss"])
            if tried[lr] == min(tried.values()):
                det = candidate
        fit_seconds.append(time.perf_counter() - t1)
        nu = det.step_per_frame(test[held[0]].fps)  # 60 per second at 10 frames/s: 6 per frame
        for n, f, lab in [(n, feats[n], torch.as_tensor(test[n].labels)) for n in held] + \
                [(f"train_{n}", nfeats[n], torch.zeros(len(normal[n]), dtype=torch.long))
                 for n in held_normal]:
            with torch.no_grad():
                sigma = torch.sigmoid(det.net_.logit(f["rgb"], f["flow"], f["bag"]))
            s, _ = accumulator_score(sigma, det.tau, nu, det.lb, det.ub, det.lb, det.sas_decay)
            scores[n], conf[n], labels[n] = s, sigma, lab
        if k == 0:  # cached-feature scoring == the detector's own streaming _update
            v = test[held[0]].read(0, 40)
            direct = det.score(torch.as_tensor(np.asarray(v)), fps=test[held[0]].fps)
            # bf16 features may differ in the last bits with the batch they were computed in
            assert torch.allclose(direct.extras["confidence"], conf[held[0]][:40], atol=2e-3)
            assert torch.allclose(direct.frame, scores[held[0]][:40], atol=5e-2)
        folds_out.append({"test": held, "normal_test": held_normal, "validation": val_name,
                          "best_validation_loss_per_lr": tried, "chosen_lr": det.head_lr,
                          "history": det.history_})
    # out-of-fold scores: the 12 test videos (the paper's frame protocol), then with the 16
    # normal-only videos; VL-F1 with the paper's SAS > 0.5 rule over all 28
    names = sorted(n for n in scores if not n.startswith("train_"))
    everything = sorted(scores)
    y = [labels[n] for n in names]
    sas = metrics.evaluate([scores[n] for n in names], y, names=names, threshold=0.5)
    confidence = metrics.evaluate([conf[n] for n in names], y, names=names)
    sas_all = metrics.evaluate([scores[n] for n in everything], [labels[n] for n in everything],
                               names=everything, threshold=0.5)
    conf_all = metrics.evaluate([conf[n] for n in everything], [labels[n] for n in everything],
                                names=everything)
    alarmed = {n: bool((scores[n] > 0.5).any()) for n in everything}
    # why SAS ranks worse than the confidence it smooths: the accumulator sits at a bound for most
    # frames, so its AUC is close to that of the binary alarm (SAS > 0.5)
    s_all = torch.cat([scores[n] for n in names]).double()
    bounds = torch.sigmoid(torch.tensor([det0.lb, det0.ub], dtype=torch.float64))
    at_bounds = ((s_all.view(-1, 1) - bounds).abs() < 1e-6).any(1)
    alarm = metrics.evaluate([(scores[n] > 0.5).float() for n in names], y, names=names)
    conf_alarm = metrics.evaluate([(conf[n] > det0.tau).float() for n in names], y, names=names)
    result = evaluation.bench_record(
        frame_auc_sas=sas.frame_auc,
        frame_auc_confidence=confidence.frame_auc,
        frame_eer_sas=sas.frame_eer,
        sas_frames_at_a_bound=float(at_bounds.float().mean()),
        frame_auc_sas_alarm=alarm.frame_auc,
        frame_auc_confidence_above_tau=conf_alarm.frame_auc,
        frame_auc_sas_with_normal_videos=sas_all.frame_auc,
        frame_auc_confidence_with_normal_videos=conf_all.frame_auc,
        **{"video_f1_sas_gt_0.5_28_videos": sas_all.video_f1},
        normal_videos_alarmed=sum(alarmed[n] for n in everything if n.startswith("train_")),
        anomalous_videos_alarmed=sum(alarmed[n] for n in names),
        per_video_auc_sas={r["name"]: r["auc"] for r in sas.per_video},
        weights={"streams": det0.weights_info_, "objects": "yolo-fastest-1.1-xl (COCO, Darknet)"},
        precision=det0.precision_,
        schedule={"phase1_max_epochs": MAX_EPOCHS, "patience": 5,
                  "head_lr": f"per fold, the best validation loss of {HEAD_LRS}",
                  "phase2": "skipped (CPU time)", "fps": 10, "nu_per_second": det0.nu_per_second,
                  "anomaly_fps": det0.anomaly_fps, "normal_fps": det0.normal_fps, "pool": det0.pool, "alpha": 3, "batch_size": 32,
                  "class_weights": [1, 2]},
        folds=folds_out,
        seconds={"feature_extraction_all_28_videos": None if cached else round(t_extract, 1),
                 "phase1_fits_of_all_lrs_per_fold": [round(x, 1) for x in fit_seconds]},
        threads=torch.get_num_threads(),
        command=(f"VADX_BENCH_THREADS={torch.get_num_threads()} VADX_TWO_STREAM_LRS="
                 f"{','.join(f'{x:g}' for x in HEAD_LRS)} VADX_TWO_STREAM_EPOCHS={MAX_EPOCHS} "
                 "pytest bench/test_two_stream.py -k cross_validation -p no:logging -s"),
    )
    evaluation.write_result(RESULTS, {"ped2_cv": result}, merge=True)
    print(json.dumps({k: v for k, v in result.items() if k not in ("folds", "weights")}, indent=2))
    assert 0.0 <= result["frame_auc_sas"] <= 1.0
