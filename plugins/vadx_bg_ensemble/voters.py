"""The detection phase (Jadhav & Inamdar §3.2, Fig. 4): six one-class voters and the 4-of-6 vote.

Each frame has four raw component scores (higher = more anomalous): appearance, motion, density
and (scene) reconstruction. The voters are

1. ``appearance``, 2. ``motion``, 3. ``density``: each component alone;
4. ``appearance+reconstruction``, 5. ``motion+density``: the paper's two combined features;
6. ``reconstruction``: the scene reconstruction network's error.

Training video is normal only, so every voter is a one-class classifier fitted on the normal
training frames: a component's score is standardised by its training mean and standard deviation
(``z``); a combined feature is the standardised sum of its two ``z`` (the sum's training standard
deviation accounts for their correlation). The voter's threshold ``q`` is the
``1 - false_alarm_rate`` quantile of its training values, and its score in [0, 1] is
``sigmoid(value - q)``: 0.5 exactly at the threshold, so "votes anomalous" (score > 0.5) is
"above its fitted threshold". All of it is per frame and elementwise, so streaming equals offline.
"""

from __future__ import annotations

import torch
from torch import Tensor

COMPONENTS = ("appearance", "motion", "density", "reconstruction")
VOTERS = ("appearance", "motion", "density", "appearance+reconstruction", "motion+density",
          "reconstruction")
_INDIVIDUAL = (0, 1, 2, None, None, 3)  # voter -> component index (None: combined)
_COMBINED = ((0, 3), (1, 2))  # the components of voters 4 and 5
MIN_STD = 1e-6  # a component that is constant on training video must not divide by zero


def _values(z: Tensor, combo_std: Tensor) -> Tensor:
    """``[N, 4]`` standardised component scores -> ``[N, 6]`` voter values."""
    cols = []
    for v, comp in enumerate(_INDIVIDUAL):
        if comp is not None:
            cols.append(z[:, comp])
        else:
            k = 0 if v == 3 else 1
            a, b = _COMBINED[k]
            cols.append((z[:, a] + z[:, b]) / combo_std[k])
    return torch.stack(cols, dim=1)


def fit(raw: Tensor, false_alarm_rate: float) -> dict[str, Tensor]:
    """Voter statistics from the raw component scores ``[N, 4]`` of normal training frames."""
    raw = raw.double()
    mean, std = raw.mean(0), raw.std(0, unbiased=False).clamp_min(MIN_STD)
    z = (raw - mean) / std
    combo_std = torch.stack([(z[:, a] + z[:, b]).std(unbiased=False) for a, b in _COMBINED]).clamp_min(MIN_STD)
    values = _values(z, combo_std)
    q = torch.quantile(values, 1.0 - false_alarm_rate, dim=0)
    return {"comp_mean": mean.float(), "comp_std": std.float(), "combo_std": combo_std.float(),
            "voter_threshold": q.float()}


def vote(raw: Tensor, comp_mean: Tensor, comp_std: Tensor, combo_std: Tensor,
         voter_threshold: Tensor) -> tuple[Tensor, Tensor]:
    """Raw component scores ``[N, 4]`` -> (voter scores in [0, 1] ``[N, 6]``, votes bool ``[N, 6]``)."""
    z = (raw.double() - comp_mean.double()) / comp_std.double()
    values = _values(z, combo_std.double()) - voter_threshold.double()
    return torch.sigmoid(values).float(), values > 0


def decide(scores: Tensor, votes: Tensor, min_votes: int) -> tuple[Tensor, Tensor, Tensor]:
    """(frame score = mean voter score ``[N]``, vote count ``[N]``, anomalous = count >= min_votes)."""
    count = votes.sum(dim=1)
    return scores.mean(dim=1), count, count >= min_votes
