"""The floor every detector is compared with: a 20-line frame-difference baseline on UCSD Ped2.

Per frame, the mean absolute difference to the previous frame in each 16x16 block (grey levels),
z-scored with that block's mean and standard deviation over the normal training videos; the frame
score is the largest block z-score. No learning beyond those statistics, no hyperparameter but the
block size. Writes bench/results/frame_diff_baseline_ped2.json (frame AUC micro and macro on raw
scores, EER). Skipped when ../shared/data/ucsd_ped2 is absent.

Run: pytest bench/test_baseline.py -p no:logging -s
"""

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import vadx.data
from vadx import evaluation
from vadx.metrics import auc_eer, roc_auc

SHARED = Path(__file__).resolve().parents[2] / "shared"
PED2 = SHARED / "data" / "ucsd_ped2"
RESULTS = Path(__file__).resolve().parent / "results" / "frame_diff_baseline_ped2.json"
BLOCK = 16


def block_motion(video) -> torch.Tensor:
    """``[T, H/16, W/16]`` block means of |I_t - I_{t-1}| (the first frame is compared with itself)."""
    grey = torch.cat([torch.as_tensor(c) for c in video]).float().mean(1, keepdim=True)
    diff = (grey - torch.cat([grey[:1], grey[:-1]])).abs()
    return F.avg_pool2d(diff, BLOCK)[:, 0].double()


def test_ped2_frame_diff_baseline():
    if not PED2.is_dir():
        pytest.skip(f"UCSD Ped2 not found at {PED2}")
    torch.set_num_threads(1)
    ds = vadx.data.load("ucsd-ped2", PED2)
    t0 = time.perf_counter()
    train = torch.cat([block_motion(v) for v in ds.train])
    mean, std = train.mean(0), train.std(0).clamp_min(1e-3)
    fit_s = time.perf_counter() - t0
    scores, labels, per_video = [], [], {}
    t0 = time.perf_counter()
    for v in ds.test:
        s = ((block_motion(v) - mean) / std).flatten(1).amax(1).numpy()
        lab = np.asarray(v.labels)
        scores.append(s)
        labels.append(lab)
        per_video[v.name] = roc_auc(s, lab) if 0 < lab.sum() < len(lab) else None
    score_s = time.perf_counter() - t0
    auc, eer = auc_eer(np.concatenate(scores), np.concatenate(labels))
    macro = float(np.mean([a for a in per_video.values() if a is not None]))
    result = evaluation.bench_record(
        detector="frame-difference baseline (max over 16x16 blocks of the z-scored mean |I_t - I_t-1|)",
        dataset="ucsd-ped2 (statistics: 16 training videos, test: 12 test videos)",
        frame_auc_micro_raw=auc, frame_eer_micro_raw=eer,
        frame_auc_macro_raw_videos_with_both_classes=macro, per_video_auc=per_video,
        seconds={"statistics_incl_decoding": round(fit_s, 1), "scoring_incl_decoding": round(score_s, 1)},
        command="pytest bench/test_baseline.py -p no:logging -s")
    evaluation.write_result(RESULTS, result)
    print(json.dumps(result, indent=2))
    assert 0.5 < auc <= 1.0
