"""Frame-score post-processing applied per video before evaluation.

Raw scores are the default everywhere; each step here is an explicit option, recorded with
every evaluation result (:meth:`PostProcess.to_dict`). Order: Gaussian smoothing first, then
normalisation (so the normalised scores keep their [0, 1] range and min-max is taken over
less noisy extremes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

NORMALIZATIONS = (None, "minmax", "window")


def as_scores(x: Any, what: str = "scores") -> np.ndarray:
    """Frame scores (a ``vadx.Scores``, tensor, array or list) as finite float64 ``[T]``."""
    if hasattr(x, "frame"):  # vadx.Scores
        x = x.frame
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D frame scores [T], got shape {arr.shape}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{what} must be finite, got {arr[bad]} at frame {bad}")
    return arr


def minmax(x: Any) -> np.ndarray:
    """``(x - min) / (max - min)`` over the whole video; a constant video maps to zeros."""
    x = as_scores(x)
    if x.size == 0:
        return x
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def window_minmax(x: Any, window: int) -> np.ndarray:
    """Causal sliding-window min-max: frame ``t`` normalised by the minimum and maximum of
    frames ``t - window + 1 .. t`` (fewer at the start); 0 where they are equal. Uses no
    future frames, so a live stream can apply it as it goes."""
    if not isinstance(window, (int, np.integer)) or isinstance(window, bool) or window < 1:
        raise ValueError(f"window must be an int >= 1, got {window!r}")
    x = as_scores(x)
    if x.size == 0:
        return x
    # padding with x[0] leaves each window's min/max unchanged (x[0] is in every early window)
    padded = np.concatenate([np.full(window - 1, x[0]), x])
    view = np.lib.stride_tricks.sliding_window_view(padded, window)
    lo, hi = view.min(axis=1), view.max(axis=1)
    span = hi - lo
    return np.divide(x - lo, span, out=np.zeros_like(x), where=span > 0)


def smooth(x: Any, sigma: float) -> np.ndarray:
    """Gaussian smoothing over time (``scipy.ndimage.gaussian_filter1d``: standard deviation
    ``sigma`` frames, reflected edges, kernel cut at 4 sigma); ``sigma = 0`` returns x."""
    if not isinstance(sigma, (int, float, np.floating)) or isinstance(sigma, bool) or sigma < 0:
        raise ValueError(f"sigma must be a number >= 0, got {sigma!r}")
    x = as_scores(x)
    if sigma == 0 or x.size == 0:
        return x
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(x, float(sigma), mode="reflect")


@dataclass(frozen=True)
class PostProcess:
    """Per-video frame-score post-processing: smoothing, then normalisation.

    Args:
        normalize: None (raw scores), ``"minmax"`` (per-video min-max, :func:`minmax`) or
            ``"window"`` (causal sliding-window min-max, :func:`window_minmax`).
        sigma: Gaussian smoothing in frames (0: none).
        window: frames of the sliding window; required with ``normalize="window"`` only.
    """

    normalize: str | None = None
    sigma: float = 0.0
    window: int | None = None

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}")
        if not isinstance(self.sigma, (int, float)) or isinstance(self.sigma, bool) or self.sigma < 0:
            raise ValueError(f"sigma must be a number >= 0, got {self.sigma!r}")
        if self.normalize == "window":
            if not isinstance(self.window, int) or isinstance(self.window, bool) or self.window < 1:
                raise ValueError(f"window must be an int >= 1 with normalize='window', got {self.window!r}")
        elif self.window is not None:
            raise ValueError(f"window is used only with normalize='window' (normalize is "
                             f"{self.normalize!r}), got window={self.window!r}")

    def __call__(self, scores: Any) -> np.ndarray:
        """One video's frame scores ``[T]`` -> processed float64 ``[T]``."""
        x = smooth(scores, self.sigma)
        if self.normalize == "minmax":
            return minmax(x)
        if self.normalize == "window":
            return window_minmax(x, self.window)
        return x

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON values, recorded with results."""
        return asdict(self)
