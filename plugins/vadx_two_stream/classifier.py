"""The paper's joint-fusion classifier (§3.2): FC 4096 - ReLU - Dropout 0.5, twice, then one logit."""

from __future__ import annotations

from torch import nn


def make_classifier(in_features: int, hidden: int = 4096, dropout: float = 0.5) -> nn.Sequential:
    """``[N, in_features]`` -> ``[N, 1]`` anomaly logit (the sigmoid of it is the confidence)."""
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(hidden, 1),
    )
