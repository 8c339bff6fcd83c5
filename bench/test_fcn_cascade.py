"""fcn-cascade (Sabokrou et al., Deep-Anomaly): scoring speed and UCSD Ped2 accuracy.

Speed: frames/s of ``Detector.score``-path ``_update`` on chunks of 64 frames at 240x320, with the
fused ``vadx.ops.mahalanobis_cascade`` versus the same pipeline with the plain-PyTorch reference
cascade (``vadx.ops.reference.mahalanobis_cascade``), side by side in one run; MobileNetV2 prefix
(the weights used for accuracy) and the paper's AlexNet C1/S1/C2 (random weights: the same cost).
Run: pytest bench/test_fcn_cascade.py -k speed

Accuracy: train on ucsd_ped2/training (16 videos), test on the 12 test videos; frame-level AUC
and EER (micro, raw scores) and pixel-level AUC/EER (40 % rule) for both map kinds; written to
bench/results/fcn_cascade_ped2.json.
Run: pytest bench/test_fcn_cascade.py -k ped2_accuracy -s (the defaults, and the paper's cascade)
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


def _localization(det, ds):
    """Why the pixel-level AUC of the 'score' map is what it is: per anomalous test frame, whether
    the map's peak lies in the ground truth, and the two quantities the 40 % rule compares (the
    map's 40 %-from-the-top value inside the mask on anomalous frames, the map's peak on normal
    frames)."""
    from vadx.metrics import pixel_frame_scores
    peak_in_mask, anomalous_p40, normal_peak = [], [], []
    for video in ds.test:
        s = det.score(video, maps=True)
        maps = s.maps.numpy()
        masks = np.asarray(video.masks.read()) != 0
        has = masks.reshape(len(masks), -1).any(1)
        p40 = pixel_frame_scores(maps, masks)
        anomalous_p40 += p40[has].tolist()
        normal_peak += p40[~has].tolist()
        for t in np.flatnonzero(has):
            peak_in_mask.append(bool(masks[t].flat[maps[t].argmax()]))
    return {"anomalous_frames_with_map_peak_in_mask": float(np.mean(peak_in_mask)),
            "anomalous_frames_in_mask_40pct_value_median": float(np.median(anomalous_p40)),
            "normal_frames_map_peak_median": float(np.median(normal_peak)),
            "note": "the pixel-level ROC ranks anomalous frames by their map's 40 %-from-the-top "
                    "value inside the mask against normal frames' map peak: a map that peaks "
                    "inside the mask but is flat elsewhere in the mask still ranks low"}


@pytest.mark.skipif(not (PED2.is_dir() and MOBILENET.is_file()),
                    reason="needs ../shared/data/ucsd_ped2 and ../shared/weights/mobilenet_v2_imagenet.pth")
@pytest.mark.parametrize("stages", [1, 2], ids=["default", "paper_cascade"])
def test_ped2_accuracy(stages):
    """The defaults (G1 alone, stages=1) -> fcn_cascade_ped2.json; the paper's two-stage cascade
    (stages=2) -> fcn_cascade_ped2_paper_cascade.json."""
    torch.set_num_threads(2)
    ds = vadx.data.load("ucsd-ped2", PED2)
    det = vadx.create("fcn-cascade", backbone="mobilenet_v2", weights=str(MOBILENET), stages=stages)
    res = evaluation.evaluate(det, ds)  # maps="score"; its speed is the one reported
    det.maps = "coverage"
    coverage = evaluation.evaluate(det, ds, fit=False)
    det.maps = "score"
    path = RESULTS if stages == 1 else RESULTS.with_name("fcn_cascade_ped2_paper_cascade.json")
    test_id = "default" if stages == 1 else "paper_cascade"
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
        localization=_localization(det, ds),
        protocol="micro average over all test frames, raw frame scores (no smoothing); pixel "
                 "level: UCSD 40 % rule (vadx.metrics); maps='score' is the default order-"
                 "statistic map, 'coverage' the paper's count of anomalous fields",
        paper={"frame_eer": 0.11, "pixel_eer": 0.15, "backbone": "Caffe reference AlexNet"},
        per_video=res["per_video"],
        seconds={"fit": res["seconds"]["fit"], "score": res["seconds"]["score"], "score_fps": res["fps"]},
        machine=f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                f"{torch.get_num_threads()} threads (shared, noisy)",
        command=f"pytest 'bench/test_fcn_cascade.py::test_ped2_accuracy[{test_id}]' -s -p no:logging",
    )
    evaluation.write_result(path, out)
    print(json.dumps({k: out[k] for k in ("frame_auc", "frame_eer", "pixel_auc", "pixel_eer",
                                          "pixel_coverage_map", "localization", "seconds")}, indent=2))
    assert np.isfinite(out["frame_auc"]) and out["frame_auc"] > 0.5


# ---------------------------------------------------------------------------------------------
# Ablation (issue 16): why fcn-cascade with MobileNetV2 is below a frame-difference baseline.
#
# Backbone features are extracted ONCE per frame for every candidate tap (one forward pass of
# MobileNetV2 features[:7] plus features[7]'s expansion, forward hooks) and cached on disk as
# float16 memmaps; every configuration is then a Gaussian fit and distance evaluation on the
# cache. Training frames: every 2nd frame of the 16 training videos; videos 15 and 16 are held
# out (never fitted) for the training-data criteria below. Test: all 2010 frames.
#
# Training-data criteria (no test labels): "fast_auc", the frame AUC of the held-out normal videos
# against the same videos played at 2x speed (every 2nd frame: walkers move like Ped2's cyclists
# and skaters, the dominant anomaly), and "heldout_far", the fraction of held-out frames scoring
# above the 99th percentile of the fitted videos' frame scores (0.01 if it generalises).
# ---------------------------------------------------------------------------------------------

ABLATION = Path(__file__).parent / "results" / "fcn_cascade_ped2_ablation.json"
HELD_OUT = ("15", "16")
# tap -> (module path inside features[:8] whose output is taken, channels); all at stride 8.
# f*: block outputs (f6 = features[:6], the detector's C2 cut); e*: a block's 1x1 expansion
# (conv+BN+ReLU), d*: its 3x3 depthwise conv+BN+ReLU, both 144/192 channels inside the block.
TAPS = {"f5": ("4", 32), "f6": ("5", 32), "f7": ("6", 32), "d4": ("4.conv.1", 144),
        "e5": ("5.conv.0", 192), "d5": ("5.conv.1", 192), "e6": ("6.conv.0", 192),
        "d6": ("6.conv.1", 192), "e7": ("7.conv.0", 192)}
# stride 4 (C1 cut features[:3] and the next block): cached separately, 4x the positions
TAPS_S4 = {"f3": ("2", 24), "e3": ("3.conv.0", 144), "f4": ("3", 24), "e4": ("4.conv.0", 144)}
# receptive field (px) of each tap, from vadx.features.conv_geometry of the modules up to it
TAP_RF = {"f5": 27, "f6": 43, "f7": 59, "d4": 27, "e5": 27, "d5": 43, "e6": 43, "d6": 59, "e7": 59,
          "f3": 11, "e3": 11, "f4": 19, "e4": 19}
TAP_CH = {k: v[1] for k, v in {**TAPS, **TAPS_S4}.items()}
BLOCK = 16  # frame-difference baseline: block size


def _abl_cache() -> Path:
    import os
    return Path(os.environ.get("VADX_FCN_ABLATION_CACHE", "/tmp/vadx_fcn_ablation"))


def _abl_input(d, variant):
    """D_t (0..255, [t, 3, H, W]) -> network input for a temporal-channel normalisation variant."""
    from vadx.features import IMAGENET_MEAN, IMAGENET_STD
    from vadx_fcn_cascade.fcn import normalise
    if variant == "imagenet":  # the detector's: channel c of D_t takes RGB channel c's stats
        return normalise(d)
    if variant == "grey":  # one mean/std for all three (no constant colour cast on a static scene)
        return (d / 255.0 - sum(IMAGENET_MEAN) / 3) / (sum(IMAGENET_STD) / 3)
    if variant.startswith("motion"):  # temporal deviations from I'_t amplified by a gain
        g = float(variant[6:])
        return normalise(d[:, :1] + g * (d - d[:, :1]))
    raise ValueError(variant)


def _abl_videos(ds):
    """(split, video name, grey frames [T, H, W] float, labels or None) in extraction order."""
    from vadx_fcn_cascade.fcn import to_grey
    for v in ds.train:
        g = torch.cat([to_grey(c) for c in v])
        yield "train", v.name, g, None
        if v.name in HELD_OUT:
            yield "fast", v.name, g[::2], None
    for v in ds.test:
        yield "test", v.name, torch.cat([to_grey(c) for c in v]), np.asarray(v.labels)


def _abl_folder(variant, taps):
    """The cache folder (and its tap group) holding ``taps`` for input ``variant``."""
    if all(t in TAPS_S4 for t in taps):
        return _abl_cache() / f"{variant}_s4", tuple(TAPS_S4)
    return _abl_cache() / variant, tuple(TAPS)


def _abl_extract(variant, taps=tuple(TAPS)):
    """Cache features of every tap of ``taps``'s group for one input variant; returns the folder."""
    import time
    from vadx_fcn_cascade.fcn import HISTORY, build_prefix, cube
    out, taps = _abl_folder(variant, taps)
    paths = {**TAPS, **TAPS_S4}
    if (out / "done.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    body, _ = build_prefix("mobilenet_v2", "C3", "mean", str(MOBILENET))
    grabbed = {}
    for name in taps:
        mod = body.get_submodule(paths[name][0])
        mod.register_forward_hook(lambda m, i, o, name=name: grabbed.__setitem__(name, o))
    depth = max(int(paths[t][0].split(".")[0]) for t in taps) + 1  # blocks to run
    ds = vadx.data.load("ucsd-ped2", PED2)
    meta = {s: {"video": [], "frame": [], "label": []} for s in ("train", "fast", "test")}
    rows = {s: [] for s in meta}  # per split: list of (tap -> fp16 array) chunks, then memmapped
    diffs = {s: [] for s in meta}
    t0 = time.time()
    with torch.inference_mode():
        for split, name, g, labels in _abl_videos(ds):
            idx = torch.arange(g.shape[0])
            if split == "train":
                idx = idx[::2]
            hist = g[:1].expand(HISTORY, -1, -1)
            d_all = cube(hist, g)
            # frame-difference baseline: mean |I_t - I_{t-1}| per BLOCKxBLOCK block
            prev = torch.cat([g[:1], g[:-1]])
            fd = torch.nn.functional.avg_pool2d((g - prev).abs()[:, None], BLOCK)[:, 0]
            diffs[split].append(fd[idx].flatten(1).half().numpy())
            for s in range(0, len(idx), 32):
                j = idx[s:s + 32]
                x = _abl_input(d_all[j], variant)
                body[:depth](x)
                rows[split].append({k: grabbed[k].permute(0, 2, 3, 1).flatten(1, 2).half().numpy()
                                    for k in taps})
            meta[split]["video"] += [name] * len(idx)
            meta[split]["frame"] += idx.tolist()
            meta[split]["label"] += (labels[idx.numpy()].tolist() if labels is not None
                                     else [0] * len(idx))
            print(f"{variant}: {split} {name} {len(idx)} frames, {time.time() - t0:.0f} s", flush=True)
            for sp in rows:  # flush to disk per video to keep memory flat
                for k in taps:
                    chunks = [r[k] for r in rows[sp]]
                    if chunks:
                        with open(out / f"{sp}_{k}.f16", "ab") as f:
                            np.concatenate(chunks).tofile(f)
                rows[sp] = []
    shapes = {}
    for sp in meta:
        n = len(meta[sp]["video"])
        np.save(out / f"{sp}_diff.npy", np.concatenate(diffs[sp]))
        shapes[sp] = n
    grid = list(grabbed[taps[0]].shape[2:])
    info = {"variant": variant, "taps": {k: TAP_CH[k] for k in taps}, "positions": grid[0] * grid[1],
            "grid": grid, "frames": shapes, "meta": meta,
            "seconds": time.time() - t0}
    (out / "done.json").write_text(json.dumps(info))
    return out


def _abl_load(folder, split, taps):
    """float16 [N, P, C] features of the concatenated taps."""
    info = json.loads((folder / "done.json").read_text())
    n, p = info["frames"][split], info["positions"]
    parts = [np.fromfile(folder / f"{split}_{k}.f16", dtype=np.float16).reshape(n, p, -1)
             for k in taps]
    return torch.from_numpy(np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]), info


def _abl_scorers(fit_maps):
    """Region -> frame score rules, their statistics from the fitted videos' region scores."""
    m, sd = fit_maps.mean(0), fit_maps.std(0).clamp_min(1e-6)
    return {"max": lambda s: s.amax(1),
            # per position z-score, then max: removes where-in-the-frame (perspective) effects
            "posz": lambda s: ((s - m) / sd).amax(1)}


def _abl_criteria(maps, labels):
    """maps: split -> region scores [N, P] (fit, heldout, fast, test); one row per scorer."""
    from vadx.metrics import eer, roc_auc
    out = {}
    for rule, f in _abl_scorers(maps["fit"]).items():
        s = {k: f(v.float()).double().numpy() for k, v in maps.items()}
        thr = np.quantile(s["fit"], 0.99)
        held, fast = s["heldout"], s["fast"]
        out[rule] = {
            "test_auc": round(roc_auc(s["test"], labels), 4),
            "test_eer": round(eer(s["test"], labels), 4),
            "fast_auc": round(roc_auc(np.r_[held, fast], np.r_[np.zeros(len(held)), np.ones(len(fast))]), 4),
            "heldout_far": round(float((held > thr).mean()), 4),
        }
    return out


def _abl_split_maps(folder, taps, fn):
    """Apply fn ([n, P, C] float32 -> [n, P]) to every split in chunks -> dict of [N, P]."""
    out = {}
    for split in ("train", "fast", "test"):
        feats, info = _abl_load(folder, split, taps)
        out[split] = torch.cat([fn(feats[s:s + 64].float()) for s in range(0, feats.shape[0], 64)])
    vid = np.asarray(info["meta"]["train"]["video"])
    held = torch.from_numpy(np.isin(vid, HELD_OUT))
    labels = np.asarray(info["meta"]["test"]["label"])
    return {"fit": out["train"][~held], "heldout": out["train"][held], "fast": out["fast"],
            "test": out["test"]}, labels, info


def _abl_sample(folder, taps, n, seed=0):
    """n random region vectors of the fitted (not held-out) training frames, float32."""
    feats, info = _abl_load(folder, "train", taps)
    vid = np.asarray(info["meta"]["train"]["video"])
    rows = feats[torch.from_numpy(~np.isin(vid, HELD_OUT))].flatten(0, 1)
    pick = torch.randperm(rows.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    return rows[pick].float()


def _abl_g1(folder, taps, n=200_000, shrinkage=None):
    """Single Gaussian (G1) region distances; the cascade without stage 2."""
    from vadx.ops import fit_gaussian
    x = _abl_sample(folder, taps, n)
    mu, w = fit_gaussian(x, shrinkage)
    mu, w = mu.float(), w.float()
    return _abl_split_maps(folder, taps, lambda c: torch.linalg.vector_norm((c - mu) @ w.T, dim=-1))


def _abl_cascade(folder, taps, *, n=200_000, hidden=500, epochs=5, beta_q=0.9, alpha_q=0.9999,
                 phi_q=0.999):
    """The detector's full cascade (G1, sparse-AE CT layer, G2, region_scores) on cached features."""
    from vadx.ops import fit_gaussian, mahalanobis_cascade
    from vadx_fcn_cascade.detector import _mahalanobis, _quantile, region_scores
    from vadx_fcn_cascade.sparse_ae import train_sparse_ae
    x = _abl_sample(folder, taps, n)
    mu1, w1 = fit_gaussian(x)
    d1 = _mahalanobis(x, mu1, w1)
    beta, alpha = _quantile(d1, beta_q), _quantile(d1, alpha_q)
    ct_w, ct_b, _ = train_sparse_ae(x, hidden, epochs=epochs, rho=0.05, sparsity_weight=3.0,
                                    weight_decay=1e-4, seed=0, progress=False)
    z = torch.sigmoid(x @ ct_w.T + ct_b)
    mu2, w2 = fit_gaussian(z)
    d2 = _mahalanobis(z, mu2, w2)
    sus = (d1 > beta) & (d1 < alpha)
    phi = _quantile(d2[sus] if int(sus.sum()) >= 100 else d2, phi_q)
    g1, g2 = (mu1.contiguous(), w1.contiguous()), (mu2.contiguous(), w2.contiguous())
    h, w = json.loads((folder / "done.json").read_text())["grid"]

    def fn(c):
        f = c.reshape(c.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous()
        a, b, lab = mahalanobis_cascade(f, *g1, beta, alpha, ct_w, ct_b, *g2, phi)
        return region_scores(a, b, lab, alpha, phi).flatten(1)
    return _abl_split_maps(folder, taps, fn)


def _abl_diff(folder):
    """The frame-difference baseline's block maps through the same criteria."""
    info = json.loads((folder / "done.json").read_text())
    d = {s: torch.from_numpy(np.load(folder / f"{s}_diff.npy")).float()
         for s in ("train", "fast", "test")}
    held = torch.from_numpy(np.isin(np.asarray(info["meta"]["train"]["video"]), HELD_OUT))
    return {"fit": d["train"][~held], "heldout": d["train"][held], "fast": d["fast"],
            "test": d["test"]}, np.asarray(info["meta"]["test"]["label"]), info


# (input variant, taps, model, options): model "g1" = Gaussian G1 alone, "cascade" = G1 + CT + G2
ABLATION_CONFIGS = (
    [("imagenet", (), "diff", {})]
    + [("imagenet", (t,), "g1", {}) for t in (*TAPS, *TAPS_S4)]
    + [("imagenet", ("f5", "f6", "f7"), "g1", {}), ("imagenet", ("d4", "e5"), "g1", {})]
    # the detector's full cascade: the old default cut (f6) and the best G1 taps
    + [("imagenet", ("f6",), "cascade", {}), ("imagenet", ("d4",), "cascade", {})]
    # the cascade's settings on d4: G1/G2 quantiles, CT layer size and training
    + [("imagenet", ("d4",), "cascade", o) for o in (
        {"beta_q": 0.5}, {"beta_q": 0.99}, {"alpha_q": 0.999}, {"alpha_q": 0.99999},
        {"phi_q": 0.99}, {"hidden": 64}, {"epochs": 1})]
)


def _abl_key(cfg):
    variant, taps, model, opts = cfg
    return f"{variant}|{'+'.join(taps)}|{model}|{json.dumps(opts, sort_keys=True)}"


def _abl_run(cfg):
    """One configuration's criteria (cached in the cache folder's results.jsonl)."""
    import time
    store = _abl_cache() / "results.jsonl"
    key = _abl_key(cfg)
    if store.is_file():
        for line in store.read_text().splitlines():
            rec = json.loads(line)
            if rec["key"] == key:
                return rec
    variant, taps, model, opts = cfg
    t0 = time.time()
    folder = _abl_extract(variant, taps or tuple(TAPS))
    if model == "diff":
        maps, labels, _ = _abl_diff(folder)
    elif model == "g1":
        maps, labels, _ = _abl_g1(folder, taps, **opts)
    else:
        maps, labels, _ = _abl_cascade(folder, taps, **opts)
    rec = {"key": key, "input": variant, "taps": list(taps), "model": model, "options": opts,
           "channels": sum(TAP_CH[t] for t in taps) if model != "diff" else None,
           "receptive_field": max(TAP_RF[t] for t in taps) if model != "diff" else BLOCK,
           "rules": _abl_criteria(maps, labels),
           "seconds": round(time.time() - t0, 1)}
    with open(store, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec), flush=True)
    return rec


ABLATION_NOTES = [
    "All configurations share one cached feature extraction (MobileNetV2 ImageNet weights, "
    "ReLU as for this int8-derived file, D_t scaled as the detector does: 'input' names the "
    "temporal-channel scaling) and are fitted on the same 200000 random region vectors of the "
    "even training frames of videos 01-14; videos 15 and 16 are held out for the training-data "
    "criteria, so the test numbers here come from 14 training videos, not the 16 the detector "
    "bench uses.",
    "Criteria: test_auc/test_eer are frame-level, micro over the 12 test videos, raw scores. "
    "fast_auc (training data only): frame AUC of held-out normal videos 15-16 against the same "
    "videos at 2x speed (every 2nd frame). heldout_far (training data only): fraction of held-out "
    "frames above the 99th percentile of the fitted videos' frame scores.",
    "Rules: 'max' = frame score is the largest region score (the detector's); 'posz' = each "
    "region's score z-scored with its position's mean/std over the fitted training frames, then "
    "the largest (the detector's region_norm='position').",
    "model 'diff' is the frame-difference baseline (mean |I_t - I_{t-1}| per 16x16 block) through "
    "the same rules; 'g1' is the Gaussian G1 alone (the cascade without stage 2; its frame AUC "
    "equals the cascade's when beta = alpha); 'cascade' is the detector's G1 + CT + G2 with "
    "region_scores, options = quantiles (beta_q, alpha_q, phi_q), CT size 'hidden', AE epochs.",
    "Choices: the detector's new MobileNetV2 C2 default (cut=4, tap='depthwise' = tap d4) is the "
    "row with the best training criterion (fast_auc, rule 'max'); the test numbers were computed "
    "in the same runs and were visible when choosing (they rank d4 first as well). "
    "region_norm='position' stays off and the beta/alpha defaults stay the paper's cascade; "
    "'G1 alone' (beta_quantile = alpha_quantile) is better on both criteria but is left as an "
    "option, not a default, because it drops the paper's second stage for both backbones. "
    "Not ablated: the temporal-channel scaling of D_t (only 'imagenet' was extracted; "
    "_abl_input has 'grey' and 'motion<gain>' variants), shrinkage, and fitting on all 16 videos.",
]


@pytest.mark.skipif(not (PED2.is_dir() and MOBILENET.is_file()),
                    reason="needs ../shared/data/ucsd_ped2 and ../shared/weights/mobilenet_v2_imagenet.pth")
def test_ped2_ablation():
    """Issue 16: what makes fcn-cascade (MobileNetV2) worse than frame differences on Ped2.
    Cached in $VADX_FCN_ABLATION_CACHE (default /tmp/vadx_fcn_ablation; ~22 GB); about an hour
    on 2 shared cores for a cold cache (features ~30 min, the rows ~30 min)."""
    torch.set_num_threads(1)
    rows = [_abl_run(c) for c in ABLATION_CONFIGS]
    table = [{k: r[k] for k in ("input", "taps", "model", "options", "channels", "receptive_field",
                                 "rules", "seconds")} for r in rows]
    flat = [(r, rule, v) for r in rows for rule, v in r["rules"].items() if r["model"] != "diff"]
    by_train = max(flat, key=lambda x: x[2]["fast_auc"])
    by_test = max(flat, key=lambda x: x[2]["test_auc"])
    pick = lambda x: {"input": x[0]["input"], "taps": x[0]["taps"], "model": x[0]["model"],
                      "options": x[0]["options"], "rule": x[1], **x[2]}
    out = evaluation.bench_record(
        detector="fcn-cascade",
        dataset="ucsd-ped2 (fit: even frames of training videos 01-14; held out: 15, 16; "
                "test: testing/ 12 videos, 2010 frames)",
        taps={k: {"module": f"features.{v[0]}", "channels": v[1], "receptive_field": TAP_RF[k]}
              for k, v in {**TAPS, **TAPS_S4}.items()},
        table=table,
        best_by_training_criterion=pick(by_train),
        best_by_test_auc=pick(by_test),
        notes=ABLATION_NOTES,
        machine=f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                f"1 thread (shared, noisy)",
        command="pytest bench/test_fcn_cascade.py -k ablation -s -p no:logging",
    )
    evaluation.write_result(ABLATION, out)
    print(json.dumps({k: out[k] for k in ("best_by_training_criterion", "best_by_test_auc")}, indent=2))
