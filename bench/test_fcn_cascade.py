"""fcn-cascade (Sabokrou et al., Deep-Anomaly): scoring speed and UCSD Ped2 accuracy.

Speed: frames/s of ``Detector.score``-path ``_update`` on chunks of 64 frames at 240x320, with the
fused ``vadx.ops.mahalanobis_cascade`` versus the same pipeline with the plain-PyTorch reference
cascade (``vadx.ops.reference.mahalanobis_cascade``), side by side in one run; MobileNetV2 prefix
(the weights used for accuracy) and the paper's AlexNet C1/S1/C2 (random weights: the same cost).
Run: pytest bench/test_fcn_cascade.py -k speed

Accuracy: train on ucsd_ped2/training (16 videos), test on the 12 test videos; frame-level AUC
and EER (micro, raw scores) and pixel-level AUC/EER (40 % rule) for both map kinds; written to
bench/results/fcn_cascade_ped2.json.
Run: pytest bench/test_fcn_cascade.py -k ped2 -s
"""

import json
import platform
from pathlib import Path

import numpy as np
import pytest
import torch

import vadx
import vadx.data
import vadx_fcn_cascade.detector as fcn_detector
from vadx import evaluation
from vadx.ops import reference

SHARED = Path(__file__).resolve().parents[2] / "shared"
MOBILENET = SHARED / "weights" / "mobilenet_v2_imagenet.pth"
PED2 = SHARED / "data" / "ucsd_ped2"
RESULTS = Path(__file__).parent / "results" / "fcn_cascade_ped2.json"
BATCH = 64



def _backbone(name):
    if name == "alexnet":
        return {"backbone": "alexnet", "weights": "random"}
    if not MOBILENET.is_file():
        pytest.skip(f"no MobileNetV2 weights at {MOBILENET}")
    return {"backbone": "mobilenet_v2", "weights": str(MOBILENET)}


@pytest.fixture(scope="module")
def scene():
    ds = vadx.data.load("synthetic", seed=0, n_train=2, n_test=1, n_frames=80, height=240, width=320)
    return ds, ds.test[0].read(0, BATCH)


_fitted = {}


def _detector(name, scene):
    if name not in _fitted:
        ds, _ = scene
        det = vadx.create("fcn-cascade", **_backbone(name), ae_epochs=1, max_regions=50_000,
                          progress=False, chunk_size=BATCH)
        _fitted[name] = det.fit(ds.train)
    return _fitted[name]


@pytest.mark.parametrize("cascade", ["op", "reference"])
@pytest.mark.parametrize("maps", ["score", None])
@pytest.mark.parametrize("name", ["mobilenet_v2", "alexnet"])
def test_speed(benchmark, scene, monkeypatch, name, maps, cascade):
    torch.set_num_threads(2)
    det = _detector(name, scene)
    det.maps = maps
    if cascade == "reference":
        monkeypatch.setattr(fcn_detector, "mahalanobis_cascade", reference.mahalanobis_cascade)
    _, frames = scene
    benchmark.group = f"fcn-cascade {name}, maps={maps}, {BATCH} frames 240x320"
    benchmark.extra_info["frames"] = BATCH

    def run():
        with torch.inference_mode():
            return det._update({}, frames)

    s = benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    assert s.frame.shape == (BATCH,)
    benchmark.extra_info["frames_per_s"] = BATCH / benchmark.stats.stats.mean


@pytest.mark.skipif(not (PED2.is_dir() and MOBILENET.is_file()),
                    reason="needs ../shared/data/ucsd_ped2 and ../shared/weights/mobilenet_v2_imagenet.pth")
def test_ped2_accuracy():
    torch.set_num_threads(2)
    ds = vadx.data.load("ucsd-ped2", PED2)
    det = vadx.create("fcn-cascade", backbone="mobilenet_v2", weights=str(MOBILENET))
    res = evaluation.evaluate(det, ds)  # maps="score"; its speed is the one reported
    det.maps = "coverage"
    coverage = evaluation.evaluate(det, ds, fit=False)
    det.maps = "score"
    out = evaluation.bench_record(
        det,
        detector="fcn-cascade",
        dataset="ucsd-ped2 (train: training/ 16 videos; test: testing/ 12 videos, 2010 frames)",
        fitted={"beta": det.beta_, "alpha": det.alpha_, "phi": det.phi_,
                "threshold": det.threshold_, "geometry": det.geometry_,
                "train": {k: v for k, v in det.train_info_.items() if k != "ae_loss"},
                "ae_loss_per_epoch": det.train_info_["ae_loss"]},
        **{k: res[k] for k in ("frame_auc", "frame_eer", "pixel_auc", "pixel_eer")},
        pixel_coverage_map={"pixel_auc": coverage["pixel_auc"], "pixel_eer": coverage["pixel_eer"]},
        protocol="micro average over all test frames, raw frame scores (no smoothing); pixel "
                 "level: UCSD 40 % rule (vadx.metrics); maps='score' is the default order-"
                 "statistic map, 'coverage' the paper's count of anomalous fields",
        paper={"frame_eer": 0.11, "pixel_eer": 0.15, "backbone": "Caffe reference AlexNet"},
        per_video=res["per_video"],
        seconds={"fit": res["seconds"]["fit"], "score": res["seconds"]["score"], "score_fps": res["fps"]},
        machine=f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                f"{torch.get_num_threads()} threads (shared, noisy)",
        command="pytest bench/test_fcn_cascade.py -k ped2 -s -p no:logging",
    )
    evaluation.write_result(RESULTS, out)
    print(json.dumps({k: out[k] for k in ("frame_auc", "frame_eer", "pixel_auc", "pixel_eer",
                                          "pixel_coverage_map", "seconds")}, indent=2))
    assert np.isfinite(out["frame_auc"]) and out["frame_auc"] > 0.5
