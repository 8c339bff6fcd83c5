"""Writing frames, videos, score overlays (heat maps, or a label saying there are none) and score
plots (frames on the x axis as in ``vadx score``'s CSV, alarms shaded; PNG, JPEG, SVG or PDF by
extension).

Videos and plots are written atomically (:mod:`vadx.outputs`): to a temporary file beside the
destination, renamed when complete, so a failure leaves the previous file or none, never a
truncated one that looks complete.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from vadx import outputs
from vadx.detector import Scores, check_frames

# Codecs OpenCV's FFmpeg backend writes without extra libraries, per container.
FOURCC = {".avi": "MJPG", ".mkv": "MJPG", ".mp4": "mp4v", ".mov": "mp4v"}
#: Plot formats by file extension (matplotlib's format names): the extension decides the bytes.
PLOT_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".svg": "svg", ".pdf": "pdf"}
#: What an overlay says in the frame when the scores carry no localization maps.
NO_MAPS_LABEL = "no localization for this detector"


def _chunks(video: Any, what: str = "video") -> Iterator[np.ndarray]:
    """uint8 [t, H, W, 3] BGR chunks of a tensor/array [T, C, H, W] or an iterable of chunks."""
    if isinstance(video, (torch.Tensor, np.ndarray)):
        video = [video]
    elif isinstance(video, (str, bytes, os.PathLike)):
        raise TypeError(f"{what} must be frames (uint8 [T, C, H, W] or an iterable of chunks), got "
                        f"the path {os.fspath(video)!r}: open it with vadx.io.open_video first")
    for i, chunk in enumerate(video):
        chunk = check_frames(chunk, f"{what} chunk {i}").cpu().numpy().transpose(0, 2, 3, 1)
        if chunk.shape[3] == 1:
            chunk = np.repeat(chunk, 3, axis=3)
        yield np.ascontiguousarray(chunk[..., ::-1])  # RGB -> BGR for OpenCV


def _frame_scores(scores: Any, what: str = "scores") -> np.ndarray:
    if isinstance(scores, Scores):
        scores = scores.frame
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D frame scores [T], got shape {arr.shape}")
    return arr


class _Writer:
    """cv2.VideoWriter opened on the first frame (its size is known only then), writing a
    temporary file that :meth:`finish` renames to ``path`` (or removes, after an error)."""

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in FOURCC:
            raise ValueError(f"path must end in one of {', '.join(FOURCC)} (the container decides "
                             f"the codec), got {self.path.name!r}")
        if not isinstance(fps, (int, float)) or not fps > 0:
            raise ValueError(f"fps must be a number > 0, got {fps!r}")
        self.fourcc, self.fps = cv2.VideoWriter_fourcc(*FOURCC[suffix]), float(fps)
        self.writer: cv2.VideoWriter | None = None
        self.count = 0
        self._output = ExitStack()

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            tmp = self._output.enter_context(outputs.atomic_path(self.path))
            h, w = frame.shape[:2]
            self.writer = cv2.VideoWriter(tmp, self.fourcc, self.fps, (w, h), True)
            if not self.writer.isOpened():
                raise OSError(f"{self.path}: OpenCV cannot write this video (codec "
                              f"{FOURCC[self.path.suffix.lower()]}, {w}x{h})")
        self.writer.write(frame)
        self.count += 1

    def finish(self, error: BaseException | None) -> None:
        """Close the video: keep it (rename to ``path``) if ``error`` is None, else remove it."""
        if self.writer is not None:
            self.writer.release()
        if error is None:
            self._output.close()
        else:
            self._output.__exit__(type(error), error, error.__traceback__)


def write_video(path: str | os.PathLike, video: Any, *, fps: float = 25.0) -> Path:
    """Write frames to a video file; returns its path.

    Args:
        path: the output file; its suffix picks the codec (:data:`FOURCC`: .avi/.mkv Motion-JPEG,
            .mp4/.mov MPEG-4 part 2).
        video: uint8 ``[T, C, H, W]`` (tensor or array) or an iterable of such chunks (a reader).
        fps: frames per second stored in the file.
    """
    writer = _Writer(path, fps)
    try:
        for chunk in _chunks(video):
            for frame in chunk:
                writer.write(frame)
    except BaseException as e:
        writer.finish(e)
        raise
    writer.finish(None)
    if writer.count == 0:
        raise ValueError("video has no frames: nothing to write")
    return writer.path


def write_frames(folder: str | os.PathLike, video: Any, *, ext: str = ".png", digits: int = 3) -> Path:
    """Write frames as numbered image files ``000.png, 001.png, ...`` into ``folder``.

    Args:
        folder: created if missing.
        video: uint8 ``[T, C, H, W]`` or an iterable of chunks. Grey frames (C = 1) are written as
            single-channel images.
        ext: image format by suffix (.png and .bmp are lossless; .jpg is not).
        digits: zero-padded width of the frame number.
    """
    if ext.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
        raise ValueError(f"ext must be an image suffix such as '.png' or '.jpg', got {ext!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    chunks = [video] if isinstance(video, (torch.Tensor, np.ndarray)) else video
    for i, chunk in enumerate(chunks):
        chunk = check_frames(chunk, f"video chunk {i}").cpu().numpy().transpose(0, 2, 3, 1)
        for frame in chunk:
            img = frame[:, :, 0] if frame.shape[2] == 1 else frame[:, :, ::-1]
            path = folder / f"{n:0{digits}d}{ext}"
            if not cv2.imwrite(str(path), np.ascontiguousarray(img)):
                raise OSError(f"{path}: OpenCV could not write this image")
            n += 1
    return folder


def _range(values: np.ndarray, given: tuple[float, float] | None, what: str) -> tuple[float, float]:
    if given is not None:
        lo, hi = (float(v) for v in given)
        if not hi > lo:
            raise ValueError(f"{what} must be (low, high) with high > low, got {given!r}")
        return lo, hi
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    return float(finite.min()), float(finite.max())


def _unit(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Values mapped linearly from [lo, hi] to [0, 1], clipped; NaN -> 0."""
    if hi <= lo:
        return np.zeros_like(values, dtype=np.float32)
    return np.nan_to_num(np.clip((values - lo) / (hi - lo), 0, 1)).astype(np.float32)


def _timeline(frame_scores: np.ndarray, width: int, height: int, lo: float, hi: float,
              threshold: float | None) -> np.ndarray:
    """The score bar: one column per time slice (its frames' highest score) across the video."""
    t = len(frame_scores)
    bar = np.full((height, width, 3), 40, np.uint8)
    for x in range(width):
        a = x * t // width
        b = max(a + 1, (x + 1) * t // width)
        s = float(np.nanmax(frame_scores[a:b])) if np.isfinite(frame_scores[a:b]).any() else np.nan
        if np.isnan(s):
            continue
        h = int(round(float(_unit(np.array([s]), lo, hi)[0]) * (height - 1)))
        alarm = threshold is not None and s > threshold
        bar[height - 1 - h:, x] = (0, 0, 230) if alarm else (0, 190, 0)
    if threshold is not None and lo <= threshold <= hi and hi > lo:
        y = height - 1 - int(round((threshold - lo) / (hi - lo) * (height - 1)))
        bar[y, :] = (255, 255, 255)
    return bar


def _label(img: np.ndarray, text: str, org: tuple[int, int], scale: float) -> None:
    """White text with a dark outline (readable on any background), drawn in place."""
    for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)


def _fit_text(text: str, width: int, scale: float) -> float:
    """The largest scale <= ``scale`` (and >= 0.25) at which ``text`` fits in ``width`` pixels."""
    w = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
    return max(0.25, scale * min(1.0, (width - 6) / max(w, 1)))


def write_overlay(path: str | os.PathLike, video: Any, scores: Scores | Any, *,
                  threshold: float | None = None, fps: float | None = None, alpha: float = 0.6,
                  map_range: tuple[float, float] | None = None,
                  score_range: tuple[float, float] | None = None,
                  no_maps_label: str | None = NO_MAPS_LABEL) -> Path:
    """Write a video of the frames with their anomaly maps as a heat map and a frame-score bar.

    Each output frame is the input frame (grey frames become RGB) blended with the JET colour map
    of its ``Scores.maps`` map, weighted by the map value so normal regions stay visible; below
    it, a bar shows the frame scores of the whole video (one column per time slice, red where a
    score is above ``threshold``, with a white threshold line) and a white cursor at the current
    frame; the frame score is printed in the top-left corner. Without maps (a detector that does
    not localize, or one whose maps are switched off: ``vadx score --overlay`` switches them on
    through ``Detector.map_params``) the frames are left as they are and ``no_maps_label`` is
    written at their bottom, so a missing heat map is never mistaken for "nothing anomalous".

    Args:
        path: output file (.avi, .mkv, .mp4 or .mov; see :func:`write_video`).
        video: the scored frames: uint8 ``[T, C, H, W]`` or an iterable of chunks (a reader).
        scores: :class:`vadx.Scores` (maps optional, ``[T, H, W]`` in input pixels) or frame
            scores ``[T]``.
        threshold: e.g. ``detector.threshold_``; None draws no alarm colour or line.
        fps: output frame rate; None takes the reader's ``fps`` or else 25.
        alpha: heat-map opacity at the highest map value, in [0, 1].
        map_range: ``(low, high)`` map values mapped to the colour map's ends; None uses the
            maps' finite minimum and maximum over the whole video.
        score_range: ``(low, high)`` of the score bar; None uses the scores' finite range.
        no_maps_label: the text written in every frame when ``scores`` has no maps (None: none).

    Raises:
        ValueError: the video has a different number of frames than ``scores``, or maps of a
            different size than the frames.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    frame_scores = _frame_scores(scores)
    maps = scores.maps if isinstance(scores, Scores) else None
    maps_np = maps.detach().cpu().float().numpy() if maps is not None else None
    t_total = len(frame_scores)
    if maps_np is not None and maps_np.shape[0] != t_total:
        raise ValueError(f"scores.maps has {maps_np.shape[0]} maps for {t_total} frame scores")
    mlo, mhi = _range(maps_np, map_range, "map_range") if maps_np is not None else (0.0, 1.0)
    slo, shi = _range(frame_scores, score_range, "score_range")
    if fps is None:
        fps = getattr(video, "fps", None) or 25.0
    writer = _Writer(path, fps)
    bar = None
    try:
        for chunk in _chunks(video):
            for frame in chunk:
                t = writer.count
                if t >= t_total:
                    raise ValueError(f"video has more frames than scores ({t_total})")
                h, w = frame.shape[:2]
                out = frame.astype(np.float32)
                if maps_np is not None:
                    if maps_np.shape[1:] != (h, w):
                        raise ValueError(f"scores.maps are {maps_np.shape[1:]} (H, W) but the frames "
                                         f"are {(h, w)}: maps must be in input-frame pixels")
                    m = _unit(maps_np[t], mlo, mhi)
                    heat = cv2.applyColorMap((m * 255).astype(np.uint8), cv2.COLORMAP_JET)
                    weight = (alpha * m)[:, :, None]
                    out = out * (1 - weight) + heat.astype(np.float32) * weight
                out = out.round().clip(0, 255).astype(np.uint8)
                scale = max(0.3, h / 480)
                _label(out, f"{frame_scores[t]:.4g}", (3, int(14 * scale / 0.4)), scale)
                if maps_np is None and no_maps_label:
                    small = _fit_text(no_maps_label, w, scale)
                    _label(out, no_maps_label, (3, h - 4), small)
                if bar is None:
                    bar = _timeline(frame_scores, w, max(10, h // 8), slo, shi, threshold)
                strip = bar.copy()
                strip[:, min(w - 1, t * w // t_total)] = (255, 255, 255)
                writer.write(np.concatenate([out, strip]))
        if writer.count != t_total:
            raise ValueError(f"video has {writer.count} frames but scores has {t_total}")
    except BaseException as e:
        writer.finish(e)
        raise
    writer.finish(None)
    return writer.path


def plot_scores(path: str | os.PathLike, scores: Scores | Any, labels: Any = None, *,
                threshold: float | None = None, fps: float | None = None, title: str | None = None,
                figsize: tuple[float, float] = (10.0, 3.0), dpi: int = 100) -> Path:
    """Save a plot of frame scores over frame numbers: alarms (score > ``threshold``) shaded
    orange, ground-truth anomalous intervals shaded red.

    The x axis counts frames from 0, as the ``frame`` column of ``vadx score``'s CSV; when
    ``fps`` is known, a second axis on top gives the time in seconds. The file format follows
    the extension (:data:`PLOT_FORMATS`: .png, .jpg/.jpeg, .svg, .pdf); any other is refused
    before anything is drawn. Draws with matplotlib's Agg canvas directly (no pyplot, no global
    backend switch), so it works headless and from threads.

    Args:
        path: output file; its extension picks the format.
        scores: :class:`vadx.Scores` or frame scores ``[T]``.
        labels: optional frame labels ``[T]`` (0 normal, 1 anomalous).
        threshold: optional horizontal dashed line (e.g. ``detector.threshold_``); the frames
            above it are shaded as alarms.
        fps: the video's frame rate, if known: adds the seconds axis.
        title: optional plot title.
        figsize: figure size in inches (width, height); a raster image is ``figsize * dpi``
            pixels.
        dpi: pixels per inch.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from vadx.data.labels import label_intervals  # here, not at the top: vadx.data imports vadx.io

    path = Path(path)
    fmt = PLOT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"path must end in one of {', '.join(PLOT_FORMATS)} (the extension "
                         f"decides the format), got {path.name!r}")
    frame_scores = _frame_scores(scores)
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be None or > 0, got {fps!r}")
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if labels is not None:
        for i, (a, b) in enumerate(label_intervals(labels, n_frames=len(frame_scores))):
            ax.axvspan(a - 0.5, b - 0.5, color="tab:red", alpha=0.2, lw=0,
                       label="anomalous (ground truth)" if i == 0 else None)
    if threshold is not None:
        alarm = np.concatenate([[False], frame_scores > threshold, [False]])  # NaN: no alarm
        starts, = np.nonzero(alarm[1:] & ~alarm[:-1])
        ends, = np.nonzero(~alarm[1:] & alarm[:-1])
        for i, (a, b) in enumerate(zip(starts, ends)):  # frames a..b-1 are alarms
            ax.axvspan(a - 0.5, b - 0.5, color="tab:orange", alpha=0.25, lw=0,
                       label="alarm (score > threshold)" if i == 0 else None)
    ax.plot(np.arange(len(frame_scores)), frame_scores, color="tab:blue", lw=1,
            label="frame score")
    if threshold is not None:
        ax.axhline(threshold, color="black", ls="--", lw=1, label="threshold")
    ax.set_xlabel("frame")
    ax.set_ylabel("anomaly score")
    if len(frame_scores):
        ax.set_xlim(-0.5, len(frame_scores) - 0.5)
    if fps:
        top = ax.secondary_xaxis("top", functions=(lambda f: f / fps, lambda s: s * fps))
        top.set_xlabel(f"time (s) at {fps:g} frames/s", fontsize="small")
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    with outputs.atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt)
    return path
