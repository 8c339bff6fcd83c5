"""``tsc`` / ``srnn-ae`` end to end: UCSD Ped2 frame AUC and speed, the op-based pipeline side by
side with the same pipeline on the plain-PyTorch SISTA reference (autograd through its loop).

    .venv/bin/python -m pytest bench/test_sparse_rnn.py -p no:logging --benchmark-columns=min,median,rounds

Everything uses the ImageNet MobileNetV2 of ../shared/weights (the paper's UCF101 ResNet is not
available). Ped2 features are extracted once per run and shared by both detectors (in memory).

The accuracy test runs the detectors' defaults (chosen by ``test_ped2_ablation``, which writes
sparse_rnn_ped2_ablation.json; its notes say which choices rest on training data and which on the
test set) at frames resized to 120 x 180 before the backbone (native 240 x 360); the results file
states the budget. Speeds: scoring at the paper's dictionary size (2048 atoms; K = 30 for TSC, 3
for sRNN-AE) on the default layer's features; training per iteration at 512 atoms, extrapolated
to 1,000 iterations.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import vadx
import vadx.data
from vadx import evaluation, metrics
from vadx.ops import reference
from vadx.postprocess import PostProcess, minmax

torch.set_num_threads(1)  # shared, loaded 2-core machine: OpenMP spinning on 2 threads is slower

SHARED = Path(__file__).resolve().parents[2] / "shared"
PED2 = SHARED / "data" / "ucsd_ped2"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_imagenet.pth"
RESULTS = Path(__file__).parent / "results" / "sparse_rnn_ped2.json"
FRAME_SIZE = [120, 180]
BUDGET = {"tsc": {}, "srnn-ae": {}}  # the detectors' defaults (chosen by the ablation below)

pytestmark = pytest.mark.skipif(not (PED2.is_dir() and WEIGHTS.is_file()),
                                reason=f"needs {PED2} and {WEIGHTS}")
_cache: dict = {}


def _detector(name, **kw):
    params = dict(backbone="mobilenet_v2", weights=str(WEIGHTS), frame_size=FRAME_SIZE,
                  progress=False, seed=0)
    params.update(kw)
    return vadx.create(name, **params)


@pytest.fixture(scope="module")
def ped2():
    """(dataset, detector holding the backbone, train features, test features, extraction s)."""
    if not _cache:
        ds = vadx.data.load("ucsd-ped2", PED2)
        det = _detector("tsc")
        det._load_backbone()
        t0 = time.perf_counter()
        train = [det.extract_features(v) for v in ds.train]
        test = [det.extract_features(v) for v in ds.test]
        _cache.update(ds=ds, det=det, train=train, test=test, extract_s=time.perf_counter() - t0,
                      n=sum(len(v) for v in ds.train) + sum(len(v) for v in ds.test))
    return _cache


def _share_backbone(det, ped2):
    src = ped2["det"]
    det.backbone_, det.backbone_kwargs_, det.weights_info_ = (src.backbone_, src.backbone_kwargs_,
                                                              src.weights_info_)
    return det


@pytest.mark.parametrize("name", ["tsc", "srnn-ae"])
def test_ped2_accuracy(name, ped2):
    det = _share_backbone(_detector(name, **BUDGET[name]), ped2)
    t0 = time.perf_counter()
    det.fit_features(ped2["train"])  # completes the fit: threshold_ as fit() sets it
    fit_s = time.perf_counter() - t0
    raw, paper, spatial = [], [], []
    t0 = time.perf_counter()
    for xs, xt in ped2["test"]:
        s, err = det.score_features({}, xs, xt)
        raw.append(s.frame)
        # eq. 14: per-video min-max regularity of each stream, s_s + 0.5 s_t; low = anomalous
        paper.append(-((1 - minmax(err[:, 0])) + det.temporal_weight * (1 - minmax(err[:, 1]))))
        spatial.append(err[:, 0])
    score_s = time.perf_counter() - t0
    # the same pipeline through Detector.score (frames -> _update) on the first test video
    check = det.score(ped2["ds"].test[0].read()).frame.numpy()
    np.testing.assert_allclose(check, raw[0].numpy(), rtol=1e-3, atol=1e-3)
    labels = [v.labels for v in ped2["ds"].test]

    def auc(scores, **kw):  # micro: all test frames
        return metrics.evaluate(scores, labels, **kw).frame_auc

    result = evaluation.bench_record(
        det,
        frame_auc_micro_raw=auc(raw),
        frame_auc_micro_minmax=auc(raw, postprocess=PostProcess(normalize="minmax")),
        frame_auc_micro_paper_eq14=auc(paper),
        frame_auc_micro_spatial_only_raw=auc(spatial),
        paper_frame_auc={"tsc": 0.9103, "srnn-ae": 0.9221}[name],
        n_test_frames=sum(len(y) for y in labels),
        reduced_budget=(f"frames resized to 120x180; {det.layer} features; {det.n_atoms} atoms "
                        f"(paper 2048); K={det.K}; {det.iterations} iterations"
                        + ("" if name == "tsc" else f" at lr {det.lr} (paper: 20,000 at 1e-5)")),
        train_loss=det.train_loss_,
        seconds={"feature_extraction_all_ped2": ped2["extract_s"], "fit_without_features": fit_s,
                 "score_without_features": score_s},
        command="pytest bench/test_sparse_rnn.py -k ped2_accuracy -p no:logging -s",
        torch_threads=torch.get_num_threads(),
    )
    evaluation.write_result(RESULTS, {name: result}, merge=True)
    print(name, json.dumps({k: v for k, v in result.items() if "auc" in k}))
    assert result["frame_auc_micro_raw"] > 0.6


# ---------------------------------------------------------------------------- speed
def _untrained(name, ped2, n_atoms, **kw):
    """Fitted with 0 iterations (a data-drawn dictionary): scoring speed does not depend on
    training, only on the sizes."""
    det = _share_backbone(_detector(name, n_atoms=n_atoms, iterations=0, **kw), ped2)
    det.fit_features([f for f in ped2["train"][:2]])  # completes the fit (threshold_ included)
    return det


@pytest.mark.parametrize("atoms", [2048, 128], ids=["paper_atoms", "recipe_atoms"])
@pytest.mark.parametrize("name,K", [("tsc", 30), ("srnn-ae", 3), ("tsc", 20)])
def test_speed_score_without_features(benchmark, name, K, atoms, ped2):
    """K = 30 is the paper's TSC, K = 20 the recipe's (the default); srnn-ae K = 3 in both."""
    det = _untrained(name, ped2, atoms, K=K)
    xs, xt = (f[:60] for f in ped2["test"][0])
    benchmark.group = f"sparse-rnn: scoring 60 frames, features given ({atoms} atoms)"
    benchmark.pedantic(lambda: det.score_features({}, xs, xt), rounds=2, warmup_rounds=1)
    benchmark.extra_info["frames_per_s"] = 60 / benchmark.stats.stats.min


@pytest.mark.parametrize("size", [None, FRAME_SIZE], ids=["240x360", "120x180"])
@pytest.mark.parametrize("name,K", [("tsc", 30), ("srnn-ae", 3)])
def test_speed_score_with_features(benchmark, name, K, size, ped2):
    det = _untrained(name, ped2, 2048, K=K)
    det.frame_size = size
    frames = ped2["ds"].test[0].read(0, 20)
    benchmark.group = "sparse-rnn: scoring 20 Ped2 frames with MobileNetV2 features (2048 atoms)"
    benchmark.pedantic(lambda: det.score(frames), rounds=2, warmup_rounds=1)
    benchmark.extra_info["frames_per_s"] = 20 / benchmark.stats.stats.min


def _reference_sista(x, A, l1, l2, g, S, a0, K, mode):
    return reference.sista(x, A, l1, l2, g, S, a0, K, mode, dtype=None)  # x's dtype: a fair baseline


@pytest.mark.parametrize("impl", ["op", "reference"])
def test_speed_train_srnn_ae(benchmark, impl, ped2):
    """sRNN-AE training iterations (RMSProp through the unrolled K = 3 sRNN, 512 atoms)."""
    det = _detector("srnn-ae", n_atoms=512)
    feats = [f[0] for f in ped2["train"][:4]]
    feats = [(f - f.mean()) / f.std() for f in feats]
    coder = det._make_coder(feats[0].shape[-1])
    fn = None if impl == "op" else _reference_sista
    iters = 5

    def run():
        coder.fit(feats, T=10, batch=4, iterations=iters, lr=1e-3, weight_decay=0.005, lambda1=5.0,
                  lambda2=2.0, generator=torch.Generator().manual_seed(0), sista_fn=fn)

    benchmark.group = "sparse-rnn: sRNN-AE training, 5 iterations (512 atoms, K=3)"
    benchmark.pedantic(run, rounds=2, warmup_rounds=0)
    benchmark.extra_info["s_per_1000_iterations"] = benchmark.stats.stats.min / iters * 1000


@pytest.mark.parametrize("impl", ["op", "reference"])
def test_speed_train_tsc(benchmark, impl, ped2, monkeypatch):
    """TSC dictionary-learning iterations (SISTA K = 20 codes + a projected step, 512 atoms)."""
    import vadx_sparse_rnn.tsc as tsc_mod

    if impl == "reference":
        monkeypatch.setattr(tsc_mod, "sista", _reference_sista)
    det = _detector("tsc", n_atoms=512, K=20)
    feats = [f[0] for f in ped2["train"][:4]]
    feats = [(f - f.mean()) / f.std() for f in feats]
    coder = det._make_coder(feats[0].shape[-1])
    iters = 2

    def run():
        coder.fit(feats, T=10, batch=4, iterations=iters, gamma=None,
                  generator=torch.Generator().manual_seed(0))

    benchmark.group = "sparse-rnn: TSC training, 2 iterations (512 atoms, K=20)"
    benchmark.pedantic(run, rounds=2, warmup_rounds=0)
    benchmark.extra_info["s_per_1000_iterations"] = benchmark.stats.stats.min / iters * 1000


# ---------------------------------------------------------------------------- ablation
# What holds tsc / srnn-ae below frame differences on Ped2: one factor changed at a time from a
# base configuration. Features are extracted once per (frame size, layer) and shared by every
# configuration (in memory, float16). Each model is fitted on 15 training videos; the 16th is
# held out as the training-data criterion (its frames' combined z-score under the model trained
# without it: ~0 = normal data of an unseen video reconstructed as well as the training data;
# large = overfitting or a scale mismatch), next to the test frame AUC (micro, raw scores).
ABLATION_RESULTS = Path(__file__).parent / "results" / "sparse_rnn_ped2_ablation.json"
HOLDOUT = 15  # index of the held-out training video (the last, 16th)
TEMPORAL_WEIGHTS = (0.0, 0.5, 1.0, 2.0)  # scored from one fit: only the combination changes
# Base: 120 x 180 frames, MobileNetV2's stride-16 features (96-d), 128 atoms, the bench's
# iteration budgets (cheap enough on 2 cores to vary one factor at a time).
_BASE = {
    "tsc": dict(frame_size=[120, 180], layer="stride16", K=20, n_atoms=128, iterations=60, lambda1=5.0),
    "srnn-ae": dict(frame_size=[120, 180], layer="stride16", K=3, n_atoms=128, iterations=300, lr=1e-3,
                    lambda1=5.0),
}
# grouped by feature setting (each extracted once, on first use)
ABLATION = {
    "tsc": {
        "base": {},
        "lambda1=0.5": dict(lambda1=0.5),
        "K=5": dict(K=5),
        "atoms=512": dict(n_atoms=512),
        "iterations=600": dict(iterations=600),
        "layer=last": dict(layer="last"),
        "frame=240x360": dict(frame_size=[240, 360]),
    },
    "srnn-ae": {
        "base": {},
        "lambda1=0.5": dict(lambda1=0.5),
        "lambda1=0.5,iterations=1000": dict(lambda1=0.5, iterations=1000),
        # the paper's budget (its lr is 1e-5; this keeps the base's 1e-3)
        "lambda1=0.5,iterations=20000": dict(lambda1=0.5, iterations=20000),
        "frame=240x360": dict(frame_size=[240, 360]),
    },
}
_ORDER = sorted(((n, c) for n in ABLATION for c in ABLATION[n]),
                key=lambda nc: (lambda p: (p["frame_size"], p["layer"] != "stride16", nc[0] != "tsc"))(
                    {**_BASE[nc[0]], **ABLATION[nc[0]][nc[1]]}))
_feature_cache: dict = {}


def _ablation_features(ds, frame_size, layer):
    """(train, test) raw features of Ped2 at this frame size and layer, float16, extracted once."""
    key = (tuple(frame_size), layer)
    if key not in _feature_cache:
        det = _detector("tsc", frame_size=frame_size, layer=layer)
        det._load_backbone()
        t0 = time.perf_counter()
        split = [[tuple(f.half() for f in det.extract_features(v)) for v in videos]
                 for videos in (ds.train, ds.test)]
        _feature_cache[key] = (*split, det, time.perf_counter() - t0)
    return _feature_cache[key]


@pytest.fixture(scope="module")
def ped2_dataset():
    return vadx.data.load("ucsd-ped2", PED2)


@pytest.mark.parametrize("config", [f"{n}:{c}" for n, c in _ORDER])
def test_ped2_ablation(config, ped2_dataset):
    name, cid = config.split(":")
    params = {**_BASE[name], **ABLATION[name][cid]}
    train, test, src, extract_s = _ablation_features(ped2_dataset, params["frame_size"], params["layer"])
    det = _detector(name, **params)
    det.weights_info_ = src.weights_info_
    t0 = time.perf_counter()
    det.fit_features(train[:HOLDOUT] + train[HOLDOUT + 1:])
    fit_s = time.perf_counter() - t0
    held, _ = det.score_features({}, *train[HOLDOUT])
    t0 = time.perf_counter()
    errors = [det.score_features({}, xs, xt)[1] for xs, xt in test]
    score_s = time.perf_counter() - t0
    labels = [v.labels for v in ped2_dataset.test]
    mean, std = torch.tensor(det.error_mean_), torch.tensor(det.error_std_)

    def auc(w):  # the detector's combined score with temporal weight w (z-scores per stream)
        return metrics.evaluate([((e - mean) / std) @ torch.tensor([1.0, w]) for e in errors],
                                labels).frame_auc

    result = evaluation.bench_record(
        det,
        frame_auc_micro_raw=auc(det.temporal_weight),
        frame_auc_micro_raw_by_temporal_weight={str(w): auc(w) for w in TEMPORAL_WEIGHTS},
        frame_auc_micro_temporal_only_raw=metrics.evaluate([e[:, 1] for e in errors], labels).frame_auc,
        holdout_video_mean_z=float(held.frame.mean()),
        holdout_video_p99_z=float(held.frame.quantile(0.99)),
        train_loss=det.train_loss_,
        seconds={"feature_extraction_all_ped2": extract_s, "fit_without_features_15_videos": fit_s,
                 "score_test_without_features": score_s},
        command="pytest bench/test_sparse_rnn.py -k ablation -p no:logging -s",
        torch_threads=torch.get_num_threads(),
    )
    evaluation.write_result(ABLATION_RESULTS, {config: result}, merge=True)
    print(config, json.dumps({k: v for k, v in result.items() if "auc" in k or "holdout" in k}))


ABLATION_NOTES = (
    "Each entry changes one factor of its detector's base (_BASE in bench/test_sparse_rnn.py; the "
    "entry's params are the full configuration) and is fitted on Ped2 training videos 1-15. "
    "Training-data criterion: holdout_video_mean_z / _p99_z, the combined frame score (z-scores "
    "against the training frames' errors) of training video 16 under the model fitted without "
    "it; lower = fewer false alarms on unseen normal video (0 = as normal as the training "
    "videos). Chosen on that criterion (lower mean z, the p99 agreeing), never on the test AUC: "
    "lambda1 0.5 over 5.0 (both detectors), 128 atoms over 512 and K 20 over 5 (TSC), 60 TSC "
    "dictionary steps over 600, 1000 sRNN-AE steps over 300 (lambda1=0.5 vs "
    "lambda1=0.5,iterations=1000; here the test AUC prefers 300: the criterion sees only normal "
    "data and cannot tell that a model which reconstructs everything also reconstructs the "
    "anomalies). 20,000 sRNN-AE steps (the paper's budget, 25.5 min) rate about equal to 1000 on "
    "that criterion (mean z -0.200 vs -0.190, p99 2.54 vs 3.43): the default stays 1000 for cost. "
    "The last layer and 240x360 frames (both rows here) do not change the picture. "
    "Chosen for cost, not accuracy: the base's MobileNetV2 stride-16 layer (96 "
    "channels against the last layer's 1280: a 13x smaller dictionary and similarity-network "
    "input) and 120x180 frames; exploratory runs before this ablation looked at the test AUC "
    "of both layers and of training-free PCA residuals of the "
    "same pooled features (all within a few points of each other), which is looking at the "
    "test set. temporal_weight stays at the paper's 0.5: the by-weight AUCs are test-set "
    "numbers, reported for information only. All frame AUCs: micro over the 12 test videos, "
    "raw scores.")


def test_ped2_ablation_notes():
    """The ablation file's notes: how its configurations were judged (no computation)."""
    evaluation.write_result(ABLATION_RESULTS, {"notes": ABLATION_NOTES}, merge=True)
