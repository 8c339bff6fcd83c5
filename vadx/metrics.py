"""Evaluation: frame-level ROC AUC and EER, the UCSD pixel-level 40 % rule, video-level F1.

Conventions (the same as scikit-learn's ``roc_curve``/``roc_auc_score``, and tested against them):
a frame is predicted anomalous at threshold ``θ`` when its score is ``>= θ``; the ROC has one
point per distinct score (tied scores move together, so ties count half in the AUC); the AUC is
the trapezoidal area under it. The equal error rate (EER) is the false-positive rate where it
equals the false-negative rate ``1 - TPR``, on the ROC linearly interpolated between its points
(the ``brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x), 0, 1)`` of the VAD literature, computed
exactly).

Averaging over videos: ``"micro"`` (default, the benchmarks' usual protocol) concatenates the
frames of all videos; ``"macro"`` averages the per-video AUC and EER over the videos that have
both normal and anomalous frames. Single-class videos (all normal or all anomalous, e.g. four of
UCSD Ped2's twelve test videos) have no ROC, so macro leaves them out; the result lists every
video with ``auc = None`` for those, so what was averaged is explicit.

Pixel level (Mahadevan et al. 2010, UCSD): at threshold ``θ`` a pixel is detected when its map
value is ``>= θ``; a frame with ground-truth pixels is a true positive when at least 40 % of
them are detected, a frame without any is a false positive when any pixel is detected. Each
frame therefore switches at one threshold: the 40 %-from-the-top map value over its
ground-truth pixels, or its map maximum when it has none. The pixel-level ROC is the ordinary
ROC of those per-frame values (:func:`pixel_frame_scores`) with "frame has ground-truth pixels"
as the label, so it is computed in one pass in bounded memory. It is always over all frames
(micro), and over the videos that have both maps and masks.

Video level (Petrocchi et al.): a video is predicted anomalous when any frame score is above the
threshold (``>``, as ``Detector.predict``), and is anomalous when any frame label is 1 (or
its ``video_label``); F1 = 2TP / (2TP + FP + FN), 0 when that is 0/0 (scikit-learn's
``zero_division=0``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vadx.postprocess import PostProcess, as_scores

AVERAGES = ("micro", "macro")
PIXEL_FRACTION = 0.4


def _array(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _binary(scores: Any, labels: Any, who: str = "") -> tuple[np.ndarray, np.ndarray]:
    s = as_scores(scores, f"{who}scores")
    y = _array(labels)
    if y.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"{who}labels must be 1-D and as long as the scores ({s.shape[0]}), got "
                         f"shape {y.shape}")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"{who}labels must hold 0 and 1 only, got values {np.unique(y)[:5].tolist()}")
    return s, y.astype(np.int64)


def roc_curve(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)``: every point of the ROC, as
    ``sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)``.

    ``thresholds[0]`` is ``inf`` (nothing predicted anomalous), then the distinct scores in
    decreasing order. Raises ValueError when ``labels`` hold only one class.
    """
    s, y = _binary(scores, labels)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(f"labels must contain both classes for a ROC, got only "
                         f"{'anomalous (1)' if n_pos else 'normal (0)'} in {y.size} frames")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]  # last index of each run of equal scores
    tps = np.cumsum(y)[last]
    fps = last + 1 - tps
    fpr = np.r_[0.0, fps / fps[-1]]
    tpr = np.r_[0.0, tps / tps[-1]]
    return fpr, tpr, np.r_[np.inf, s[last]]


def _area(fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _crossing(fpr: np.ndarray, tpr: np.ndarray) -> float:
    g = fpr + tpr - 1  # non-decreasing from -1 at (0, 0) to +1 at (1, 1)
    k = int(np.argmax(g >= 0))
    if g[k] == 0:
        return float(fpr[k])
    t = -g[k - 1] / (g[k] - g[k - 1])
    return float(fpr[k - 1] + t * (fpr[k] - fpr[k - 1]))


def roc_auc(scores: Any, labels: Any) -> float:
    """Area under the ROC (= ``sklearn.metrics.roc_auc_score(labels, scores)``)."""
    return _area(*roc_curve(scores, labels)[:2])


def eer(scores: Any, labels: Any) -> float:
    """Equal error rate: the FPR at which FPR = 1 - TPR on the interpolated ROC."""
    return _crossing(*roc_curve(scores, labels)[:2])


def auc_eer(scores: Any, labels: Any) -> tuple[float, float]:
    """``(roc_auc, eer)`` from one ROC."""
    fpr, tpr, _ = roc_curve(scores, labels)
    return _area(fpr, tpr), _crossing(fpr, tpr)


def pixel_frame_scores(maps: Any, masks: Any, *, fraction: float = PIXEL_FRACTION) -> np.ndarray:
    """Per frame, the threshold at which it switches under the pixel-level rule (module docstring).

    Args:
        maps: anomaly maps ``[T, H, W]`` (tensor or array), higher = more anomalous.
        masks: ground truth ``[T, H, W]``, nonzero = anomalous pixel.
        fraction: share of a frame's ground-truth pixels that must be detected (UCSD: 0.4).

    Returns:
        float64 ``[T]``: for a frame with ground-truth pixels the largest ``θ`` at which at least
        ``fraction`` of them are ``>= θ``; for a frame without, its map maximum. With labels
        ``masks.any((1, 2))``, their ROC is the pixel-level ROC.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    m, g = _array(maps).astype(np.float64, copy=False), _array(masks) != 0
    if m.ndim != 3 or g.shape != m.shape:
        raise ValueError(f"maps and masks must both be [T, H, W] of the same shape, got maps "
                         f"{tuple(m.shape)} and masks {tuple(g.shape)}")
    if not np.isfinite(m).all():
        raise ValueError("maps must be finite, got NaN or inf values")
    out = np.empty(m.shape[0])
    for t in range(m.shape[0]):
        vals = m[t][g[t]]
        if vals.size == 0:
            out[t] = m[t].max()
            continue
        # k-th largest: the 1e-9 keeps ceil(0.4 * 5) at 2 despite rounding in the product
        k = max(1, math.ceil(fraction * vals.size - 1e-9))
        out[t] = np.partition(vals, vals.size - k)[vals.size - k]
    return out


def video_f1(scores: list[Any], positives: list[Any], threshold: float) -> float:
    """Video-level F1 (module docstring).

    Args:
        scores: per-video frame scores ``[T_i]``.
        positives: per video, frame labels ``[T_i]`` or a single 0/1 video label.
        threshold: a video is predicted anomalous when any score is ``> threshold``.
    """
    if len(scores) != len(positives):
        raise ValueError(f"positives must have one entry per video ({len(scores)}), got {len(positives)}")
    pred = np.array([bool((as_scores(s) > threshold).any()) for s in scores])
    true = np.array([bool(_array(p).any()) for p in positives])
    tp, fp, fn = int((pred & true).sum()), int((pred & ~true).sum()), int((~pred & true).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


@dataclass
class EvaluationResult:
    """Metrics of one evaluation; ``to_dict()``/``to_json()`` for machines.

    Attributes:
        frame_auc, frame_eer: frame-level ROC AUC and EER (``options["average"]``).
        pixel_auc, pixel_eer: pixel-level (40 % rule) AUC and EER, or None without maps or masks.
        video_f1: video-level F1, or None when no threshold was given.
        n_frames, n_videos: frames and videos evaluated.
        options: everything that changes the numbers: averaging, post-processing, threshold,
            pixel rule fraction and the number of videos with pixel ground truth and maps.
        per_video: one dict per video: ``name``, ``n_frames``, ``n_anomalous``, ``auc`` and
            ``eer`` (None for single-class videos), ``alarm`` (when a threshold was given).
    """

    frame_auc: float
    frame_eer: float
    pixel_auc: float | None
    pixel_eer: float | None
    video_f1: float | None
    n_frames: int
    n_videos: int
    options: dict[str, Any] = field(default_factory=dict)
    per_video: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON values (floats, ints, strings, None, lists, dicts)."""
        return asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        """``json.dumps`` of :meth:`to_dict` (keyword arguments passed on, e.g. ``indent``)."""
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)


class Evaluator:
    """Accumulates videos one at a time (maps are reduced on arrival), then computes metrics.

    >>> ev = Evaluator(average="micro", postprocess=PostProcess(sigma=3))
    >>> for video in dataset.test:
    ...     ev.add(detector.score(video), video.labels, video.masks, name=video.name)
    >>> ev.result().to_json()

    Args:
        average: ``"micro"`` or ``"macro"`` for the frame-level metrics (module docstring).
        postprocess: per-video frame-score post-processing (default: raw scores).
        threshold: for video-level F1, in the units of the post-processed scores.
        pixel_fraction: the pixel-level rule's fraction (UCSD: 0.4).
    """

    def __init__(self, *, average: str = "micro", postprocess: PostProcess | None = None,
                 threshold: float | None = None, pixel_fraction: float = PIXEL_FRACTION):
        if average not in AVERAGES:
            raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
        if postprocess is not None and not isinstance(postprocess, PostProcess):
            raise TypeError(f"postprocess must be a vadx.postprocess.PostProcess or None, got "
                            f"{type(postprocess).__name__}")
        if threshold is not None and not (isinstance(threshold, (int, float)) and math.isfinite(threshold)):
            raise ValueError(f"threshold must be None or a finite number, got {threshold!r}")
        if not 0 < pixel_fraction <= 1:
            raise ValueError(f"pixel_fraction must be in (0, 1], got {pixel_fraction!r}")
        self.average, self.threshold, self.pixel_fraction = average, threshold, pixel_fraction
        self.postprocess = postprocess or PostProcess()
        self._videos: list[dict[str, Any]] = []

    def add(self, scores: Any, labels: Any, masks: Any = None, *, name: str | None = None,
            video_label: int | None = None) -> None:
        """Add one test video.

        Args:
            scores: :class:`vadx.Scores` (``maps`` used for the pixel level) or frame scores ``[T]``.
            labels: frame labels ``[T]`` (0/1).
            masks: pixel ground truth ``[T, H, W]`` (an array or :class:`vadx.data.Masks`), or None.
            name: the video's name in results and messages (default: its position).
            video_label: the video-level truth for F1 where it is not ``labels.any()``.
        """
        name = name if name is not None else str(len(self._videos))
        frame, y = _binary(scores, labels, f"video {name}: ")
        if not frame.size:
            raise ValueError(f"video {name}: no frames to evaluate")
        entry: dict[str, Any] = {"name": name, "scores": frame, "labels": y, "video_label": video_label,
                                 "pixel": None}
        maps = getattr(scores, "maps", None)
        if maps is not None and masks is not None:
            if len(masks) != frame.size:
                raise ValueError(f"video {name}: masks has {len(masks)} frames, scores {frame.size}")
            maps = _array(maps)
            parts, start = [], 0
            # Masks objects load lazily chunk by chunk; arrays are one chunk
            for chunk in (masks if hasattr(masks, "chunk_size") else [_array(masks)]):
                stop = start + len(chunk)
                try:
                    frame_px = pixel_frame_scores(maps[start:stop], chunk, fraction=self.pixel_fraction)
                except ValueError as e:
                    raise ValueError(f"video {name}: {e}") from e
                parts.append((frame_px, np.asarray(chunk).reshape(len(chunk), -1).any(1)))
                start = stop
            entry["pixel"] = (np.concatenate([p for p, _ in parts]),
                              np.concatenate([g for _, g in parts]).astype(np.int64))
        self._videos.append(entry)

    def result(self) -> EvaluationResult:
        """The metrics of the videos added so far."""
        if not self._videos:
            raise ValueError("no videos were added: call add() first")
        processed = [self.postprocess(v["scores"]) for v in self._videos]
        per_video = []
        for v, s in zip(self._videos, processed):
            both = 0 < v["labels"].sum() < v["labels"].size
            auc, e = auc_eer(s, v["labels"]) if both else (None, None)
            row = {"name": v["name"], "n_frames": int(s.size), "n_anomalous": int(v["labels"].sum()),
                   "auc": auc, "eer": e}
            if self.threshold is not None:
                row["alarm"] = bool((s > self.threshold).any())
            per_video.append(row)
        if self.average == "micro":
            frame_auc, frame_eer = auc_eer(np.concatenate(processed),
                                           np.concatenate([v["labels"] for v in self._videos]))
        else:
            rated = [r for r in per_video if r["auc"] is not None]
            if not rated:
                raise ValueError("macro average: no video has both normal and anomalous frames")
            frame_auc = float(np.mean([r["auc"] for r in rated]))
            frame_eer = float(np.mean([r["eer"] for r in rated]))
        pixel = [v["pixel"] for v in self._videos if v["pixel"] is not None]
        pixel_auc = pixel_eer = None
        if pixel:
            pixel_auc, pixel_eer = auc_eer(np.concatenate([p for p, _ in pixel]),
                                           np.concatenate([g for _, g in pixel]))
        f1 = None
        if self.threshold is not None:
            truth = [v["labels"] if v["video_label"] is None else [v["video_label"]] for v in self._videos]
            f1 = video_f1(processed, truth, self.threshold)
        options = {"average": self.average, **self.postprocess.to_dict(), "threshold": self.threshold,
                   "pixel_fraction": self.pixel_fraction, "pixel_videos": len(pixel)}
        return EvaluationResult(frame_auc, frame_eer, pixel_auc, pixel_eer, f1,
                                int(sum(s.size for s in processed)), len(processed), options, per_video)


def evaluate(scores: list[Any], labels: list[Any], masks: list[Any] | None = None, *,
             names: list[str] | None = None, video_labels: list[int | None] | None = None,
             average: str = "micro", postprocess: PostProcess | None = None,
             threshold: float | None = None, pixel_fraction: float = PIXEL_FRACTION) -> EvaluationResult:
    """Evaluate per-video scores against per-video ground truth (lists in the same order);
    see :class:`Evaluator` for the arguments."""
    n = len(scores)
    for arg, value in (("labels", labels), ("masks", masks), ("names", names),
                       ("video_labels", video_labels)):
        if value is not None and len(value) != n:
            raise ValueError(f"{arg} must have one entry per video ({n}), got {len(value)}")
    ev = Evaluator(average=average, postprocess=postprocess, threshold=threshold,
                   pixel_fraction=pixel_fraction)
    for i in range(n):
        ev.add(scores[i], labels[i], None if masks is None else masks[i],
               name=None if names is None else names[i],
               video_label=None if video_labels is None else video_labels[i])
    return ev.result()
