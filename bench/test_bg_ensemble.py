"""bg-ensemble (Jadhav & Inamdar): scoring speed per component at Ped2's 240 x 360, and frame AUC on
UCSD Ped2 of the ensemble and of each voter alone.

- speed: one group; each round scores one chunk of 8 frames of 240 x 360 grey through one stage
  of ``BgEnsemble._raw`` (pre-processing = grey, resize, background removal; flow = Farneback;
  then each network), and the whole detector (``Stream.update``). OPS x 8 = frames/s.
  The models are untrained (speed does not depend on the weights).
- accuracy (``test_ped2_accuracy``, minutes): fits on Ped2's 16 training videos, scores the 12
  test videos, frame AUC micro-averaged over all 2010 frames, raw scores (no normalisation or
  smoothing); writes bench/results/bg_ensemble_ped2.json. Skipped without ../shared/data.

Run: pytest bench/test_bg_ensemble.py -p no:logging -s
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

import vadx
import vadx.data
from vadx_bg_ensemble.components import GRID, patchify
from vadx_bg_ensemble.voters import COMPONENTS, VOTERS

SHARED = Path(__file__).resolve().parents[2] / "shared"
PED2 = SHARED / "data" / "ucsd_ped2"
RESULTS = Path(__file__).resolve().parent / "results" / "bg_ensemble_ped2.json"
H, W, T = 240, 360, 8


def untrained(**params):
    """A detector with untrained networks and neutral statistics, ready to score 240 x 360."""
    det = vadx.create("bg-ensemble", progress=False, **params)
    det._build_modules()
    h, w = det._work_size(H, W)
    hp, wp = -(-h // GRID) * GRID, -(-w // GRID) * GRID
    det.background_ = torch.full((1, h, w), 100, dtype=torch.uint8)
    det.density_mean_ = torch.zeros(1, 1, hp // GRID, wp // GRID)
    det.density_std_ = torch.ones(1, 1, hp // GRID, wp // GRID)
    det.comp_mean_, det.comp_std_ = torch.zeros(4), torch.ones(4)
    det.combo_std_, det.voter_threshold_ = torch.ones(2), torch.zeros(6)
    det.threshold_, det._fitted = 0.5, True
    return det


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)  # the shared VM is oversubscribed: OpenMP barriers cost more than a 2nd core gives
    det = untrained()
    g = torch.Generator().manual_seed(0)
    frames = (torch.rand(T, 1, H, W, generator=g) * 255).to(torch.uint8)
    grey = det._grey(frames)
    x = det._removed(grey).float() / 255
    flow = det._flow(grey, None)
    return det, frames, grey, x, flow


def _each(fn, n):
    with torch.inference_mode():
        for i in range(n):
            fn(i)


@pytest.mark.benchmark(group="bg-ensemble scoring, 8 frames of 240x360")
@pytest.mark.parametrize("stage", ["preprocess", "flow", "appearance", "motion", "density", "scene",
                                   "detector"])
def test_speed(benchmark, setup, stage):
    det, frames, grey, x, flow = setup
    if stage == "preprocess":
        run = lambda: det._removed(det._grey(frames))  # noqa: E731
    elif stage == "flow":
        run = lambda: det._flow(grey, None)  # noqa: E731
    elif stage == "appearance":
        run = lambda: _each(lambda i: det.appearance_ae_(patchify(x[i:i + 1], GRID)), T)  # noqa: E731
    elif stage == "motion":
        run = lambda: _each(lambda i: det.motion_ae_(patchify(flow[i:i + 1], GRID)), T)  # noqa: E731
    elif stage == "density":
        def run():
            def one(i):
                _, code = det.appearance_ae_(patchify(x[i:i + 1], GRID))
                det.density_cnn_(x[i:i + 1], code)
            _each(one, T)
    elif stage == "scene":
        run = lambda: _each(lambda i: det.generator_(x[i:i + 1], x[i:i + 1]), T)  # noqa: E731
    else:
        def run():
            det.stream().update(frames)
    benchmark(run)


# ------------------------------------------------------------------------------------ accuracy
def ped2_accuracy(params: dict | None = None) -> dict:
    """Fit on Ped2 training/, score the 12 test videos, frame AUC (micro, raw) per voter."""
    from vadx.metrics import eer, roc_auc

    params = {"progress": False, **(params or {})}
    torch.set_num_threads(1)  # the shared VM is oversubscribed: OpenMP barriers cost more than a 2nd core gives
    ds = vadx.data.load("ucsd-ped2", PED2)
    det = vadx.create("bg-ensemble", **params)
    t0 = time.perf_counter()
    det.fit(ds.train)
    fit_s = time.perf_counter() - t0
    parts, labels, score_s = [], [], 0.0
    for video in ds.test:
        t0 = time.perf_counter()
        parts.append(det.score(video))
        score_s += time.perf_counter() - t0
        labels.append(torch.as_tensor(video.labels))
    s = vadx.Scores.cat(parts)
    y = torch.cat(labels).numpy()
    out = {
        "detector": det.name, "dataset": "ucsd-ped2", "n_frames": len(s), "average": "micro",
        "normalisation": None, "smoothing": None,
        "frame_auc": roc_auc(s.frame.numpy(), y), "frame_eer": eer(s.frame.numpy(), y),
        "voter_auc": {v: roc_auc(s.extras[f"voter:{v}"].numpy(), y) for v in VOTERS},
        "component_raw_auc": {c: roc_auc(s.extras[f"raw:{c}"].numpy(), y) for c in COMPONENTS},
        "decision_4_of_6": {
            "true_positive_rate": float(s.extras["anomalous"][torch.from_numpy(y) == 1].float().mean()),
            "false_positive_rate": float(s.extras["anomalous"][torch.from_numpy(y) == 0].float().mean()),
        },
        "fit_seconds": fit_s, "score_seconds": score_s, "score_fps": len(s) / score_s,
        "params": det.get_params(), "torch_threads": torch.get_num_threads(),
    }
    return out


@pytest.mark.skipif(not PED2.is_dir(), reason=f"UCSD Ped2 not found at {PED2}")
def test_ped2_accuracy():
    params = json.loads(os.environ.get("VADX_BG_ENSEMBLE_PARAMS", "{}"))
    out = ped2_accuracy(params)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    out["command"] = "pytest bench/test_bg_ensemble.py -k ped2 -p no:logging -s"
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    assert 0.0 <= out["frame_auc"] <= 1.0


if __name__ == "__main__":
    import sys

    print(json.dumps(ped2_accuracy(json.loads(sys.argv[1]) if len(sys.argv) > 1 else None), indent=2))
