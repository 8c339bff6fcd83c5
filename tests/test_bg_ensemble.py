"""The bg-ensemble detector plugin (Jadhav & Inamdar): components, voters, the 4-of-6 vote.
The generic contract (parameters, streaming == offline, files, input checks, seeding) is
:func:`vadx.testing.check_detector`'s."""

import numpy as np
import pytest
import torch
from conftest import SHARED

import vadx
from vadx.metrics import roc_auc
from vadx.testing import check_detector
from vadx_bg_ensemble import voters
from vadx_bg_ensemble.detector import BgEnsemble

PED2 = SHARED / "data" / "ucsd_ped2"
ANOMALOUS = range(20, 32)

# Tiny networks and short schedules: the test suite must stay fast on two shared cores.
TINY = dict(scale=1.0, sdae_widths=[48, 32, 32, 16, 16, 8], scene_widths=[4, 8, 8], sdae_steps=250,
            density_steps=150, scene_steps=150, batch_size=8, lr=3e-3, progress=False, chunk_size=16)


def walkers(T=48, H=32, W=40, anomalous=(), seed=0):
    """uint8 [T, 1, H, W]: one textured background (whatever the seed), two 4x3 walkers
    (grey 170) crossing at 1 px/frame in their lanes; in the ``anomalous`` frames, a bright 8x8
    box (255) crossing at 4 px/frame."""
    bg = (torch.rand(H, W, generator=torch.Generator().manual_seed(1234)) * 40 + 60).round()
    g = torch.Generator().manual_seed(seed)
    frames = bg.repeat(T, 1, 1) + torch.randint(-1, 2, (T, H, W), generator=g)
    for t in range(T):
        x1, x2 = (t + 7 * seed) % (W - 3), (W - 4) - (t + 3 * seed) % (W - 3)
        frames[t, 6:10, x1:x1 + 3] = 170
        frames[t, 22:26, x2:x2 + 3] = 170
        if t in anomalous:
            x = (4 * t) % (W - 8)
            frames[t, 12:20, x:x + 8] = 255
    return frames.clamp(0, 255).to(torch.uint8).unsqueeze(1)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fitted():
    det = vadx.create("bg-ensemble", **TINY)
    det.fit([walkers(seed=s) for s in range(3)])
    return det


@pytest.fixture(scope="module")
def test_clip():
    frames = walkers(T=48, anomalous=ANOMALOUS, seed=5)
    labels = np.zeros(48, np.uint8)
    labels[list(ANOMALOUS)] = 1
    return frames, labels


def test_contract():
    cheap = {**TINY, "sdae_steps": 5, "density_steps": 5, "scene_steps": 5, "scale": 0.5}
    del cheap["progress"]
    det = check_detector(BgEnsemble, video_shape=(12, 1, 32, 40), **cheap)
    assert det.background_.shape == (1, 16, 20)


def test_registered():
    assert "bg-ensemble" in vadx.list_detectors()
    assert isinstance(vadx.create("bg-ensemble"), BgEnsemble)


def test_each_component_and_voter_separates_anomalies(fitted, test_clip):
    frames, labels = test_clip
    s = fitted.score(frames)
    assert s.frame.shape == (48,) and torch.isfinite(s.frame).all()
    # The scene component's score at t is the error of frame t-1 (one frame of lag): compare it
    # with the labels shifted the same way.
    lagged = np.concatenate([labels[:1], labels[:-1]])
    aucs = {c: roc_auc(s.extras[f"raw:{c}"].numpy(), lagged if c == "reconstruction" else labels)
            for c in voters.COMPONENTS}
    assert all(a > 0.75 for a in aucs.values()), aucs
    vaucs = {v: roc_auc(s.extras[f"voter:{v}"].numpy(), labels) for v in voters.VOTERS}
    assert all(a > 0.7 for a in vaucs.values()), vaucs
    assert roc_auc(s.frame.numpy(), labels) > 0.9
    # the paper's decision: most anomalous frames and few normal ones reach 4 of 6 votes
    decided = s.extras["anomalous"].numpy()
    assert decided[labels == 1].mean() > 0.5 and decided[labels == 0].mean() < 0.2


def test_scores_are_the_mean_of_voters_and_the_4_of_6_rule(fitted, test_clip):
    frames, _ = test_clip
    s = fitted.score(frames)
    v = torch.stack([s.extras[f"voter:{name}"] for name in voters.VOTERS], dim=1)
    assert ((v >= 0) & (v <= 1)).all()
    torch.testing.assert_close(s.frame, v.mean(dim=1))
    assert torch.equal(s.extras["votes"], (v > 0.5).sum(dim=1))
    assert torch.equal(s.extras["anomalous"], s.extras["votes"] >= 4)
    assert torch.equal(fitted.predict(frames), s.extras["anomalous"])


def test_vote_rule_unit():
    scores = torch.tensor([[0.9] * 4 + [0.1] * 2, [0.9] * 3 + [0.1] * 3, [0.6] * 6])
    frame, count, anomalous = voters.decide(scores, scores > 0.5, 4)
    assert count.tolist() == [4, 3, 6] and anomalous.tolist() == [True, False, True]
    torch.testing.assert_close(frame, scores.mean(1))
    assert voters.decide(scores, scores > 0.5, 5)[2].tolist() == [False, False, True]


def test_voter_calibration():
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(4000, 4, generator=g) * torch.tensor([1.0, 2.0, 0.5, 3.0]) + 5
    stats = voters.fit(raw, 0.05)
    scores, votes = voters.vote(raw, **stats)
    # each voter says "anomalous" on its false-alarm rate of the training frames, at score 0.5
    torch.testing.assert_close(votes.float().mean(0), torch.full((6,), 0.05), atol=0.002, rtol=0)
    assert torch.equal(votes, scores > 0.5)
    # higher raw score -> higher voter score (one-sided)
    s_hi, _ = voters.vote(raw[:1] + 10, **stats)
    assert (s_hi > scores[:1]).all()


def test_rgb_and_chunked_training():
    params = {**TINY, "sdae_steps": 5, "density_steps": 5, "scene_steps": 5, "scale": 0.5}
    rgb = walkers(T=12).repeat(1, 3, 1, 1)
    det = vadx.create("bg-ensemble", **params).fit([[rgb[:5], rgb[5:]]])
    assert det.background_.shape == (1, 16, 20)
    s = det.score(rgb)
    assert s.frame.shape == (12,) and torch.isfinite(s.frame).all()
    # a one-frame video has one finite score (the first frame stands in for the missing ones)
    assert torch.isfinite(det.score(rgb[:1]).frame).all()


@pytest.mark.skipif(not PED2.is_dir(), reason=f"UCSD Ped2 not found at {PED2}")
def test_ped2_short_clip():
    import vadx.data

    ds = vadx.data.load("ucsd-ped2", PED2)
    train = ds.train[0].read(0, 24)
    test = ds.test[0].read(0, 6)
    params = {**TINY, "scale": 0.25, "sdae_steps": 10, "density_steps": 5, "scene_steps": 5}
    det = vadx.create("bg-ensemble", **params).fit([train])
    assert det.background_.shape == (1, 60, 90)
    s = det.score(test)
    assert s.frame.shape == (6,) and torch.isfinite(s.frame).all()
