"""Evaluation in one place: fit and score a detector with timing and progress, compute the metrics,
and record the results.

``vadx evaluate``, ``vadx demo`` and the benchmark scripts (bench/) all run through here, so a
number means the same wherever it is printed:

- :func:`fit` fits a detector with a progress bar over the frames it reads and returns the seconds
  (frame reading included);
- :func:`score` scores one video chunk by chunk, as ``Detector.score`` does, and returns the
  scores with the seconds spent in the detector, *excluding* reading and decoding frames; maps
  are kept only when asked, so memory stays bounded by the chunk size otherwise;
- :func:`evaluate` fits (optionally), scores a dataset's test videos and returns the metrics as
  the JSON object ``vadx evaluate --json`` prints; :class:`View` adds more evaluations of the same
  scoring pass (other post-processing or averaging, or a per-frame signal of ``Scores.extras``);
- :func:`bench_record` and :func:`write_result` assemble and write a benchmark result file with
  the detector's parameters, its pretrained weights (file and SHA-256) where it records them,
  schedule, timings and the command that produced it.

Errors keep their type; the stage that failed ("fitting frame-diff", "scoring 01 with frame-diff")
is set as the attribute ``vadx_stage`` of the exception (and added as a note on Python >= 3.11),
which is how the command line names it in its one-line error message.

Progress bars come from :mod:`vadx.progress` (stderr, only on a terminal, never inside
``vadx.progress.silenced()``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from vadx import progress as _progress  # the parameters named `progress` are flags
from vadx.metrics import Evaluator
from vadx.outputs import atomic_open
from vadx.postprocess import PostProcess

__all__ = ["Meter", "View", "bench_record", "count_frames", "evaluate", "fit", "score",
           "weights_info", "write_result"]


# ---------------------------------------------------------------------------- stages, progress
@contextmanager
def _stage(what: str) -> Iterator[None]:
    """Name the stage on an exception raised inside (the innermost stage wins), type unchanged."""
    try:
        yield
    except Exception as e:
        if getattr(e, "vadx_stage", None) is None:
            try:
                e.vadx_stage = what
            except AttributeError:  # an exception class with __slots__: nothing to record on
                pass
            else:
                if hasattr(e, "add_note"):  # Python >= 3.11: shown with the traceback
                    e.add_note(f"(while {what})")
        raise


def _show(det: Any, progress: bool | None) -> bool:
    """Whether to show the frame bars: as asked, else as the detector's own ``progress``."""
    return bool(getattr(det, "progress", True) if progress is None else progress)


def count_frames(videos: Sequence[Any]) -> int | None:
    """Total frames of ``videos``, or None when one of them does not know its length."""
    try:
        return sum(len(v) for v in videos)
    except TypeError:
        return None


class Meter:
    """One progress bar (in frames) over the videos wrapped with :meth:`wrap`; also times how
    long reading/decoding their frames took (:attr:`read_seconds`), so scoring speed can leave
    it out.

    A detector may read its training videos several times (e.g. fitting, then scoring them for
    ``threshold_``): each new pass over the videos extends the bar and is named in it.

    Args:
        desc: the bar's label.
        frames: frames per pass over all the wrapped videos (None: unknown).
        show: whether to show the bar (it still shows only on a terminal and outside
            ``vadx.progress.silenced()``).
    """

    def __init__(self, desc: str, frames: int | None = None, *, show: bool = True):
        self.desc, self.per_pass, self.passes = desc, frames, 1
        self.bar = _progress.bar(frames, desc, "frame", show=show, leave=True)
        self.read_seconds = 0.0

    def wrap(self, video: Any) -> _Tracked:
        """``video`` (a re-iterable of chunks) whose chunks advance this bar as they are read."""
        return _Tracked(video, self)

    def close(self, *, clear: bool = False) -> None:
        self.bar.close(clear=clear)

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(clear=exc_type is not None)  # on an error its message stands alone


class _Tracked:
    """A re-iterable video whose chunks advance a :class:`Meter`."""

    def __init__(self, video: Any, meter: Meter):
        self.video, self.meter, self.passes = video, meter, 0

    def __len__(self) -> int:
        return len(self.video)

    def __iter__(self) -> Iterator[Any]:
        meter = self.meter
        self.passes += 1
        if self.passes > meter.passes:
            meter.passes = self.passes
            if meter.per_pass:
                meter.bar.grow(meter.per_pass)
            meter.bar.describe(f"{meter.desc} (pass {self.passes})")
        # frames given whole ([T, C, H, W]) are one chunk, not T frames
        whole = hasattr(self.video, "shape") and hasattr(self.video, "dtype")
        chunks = iter([self.video] if whole else self.video)
        while True:
            t0 = perf_counter()
            try:
                chunk = next(chunks)
            except StopIteration:
                meter.read_seconds += perf_counter() - t0
                return
            meter.read_seconds += perf_counter() - t0
            meter.bar.update(int(chunk.shape[0]))
            yield chunk


# ---------------------------------------------------------------------------- fit, score
def fit(det: Any, videos: Sequence[Any], labels: Sequence[Any] | None = None, *,
        progress: bool | None = None) -> float:
    """Fit ``det`` on ``videos`` (and frame ``labels``, supervised detectors only) with a progress
    bar over the frames read (``progress``; default: the detector's ``progress`` parameter where
    it has one, else shown); returns the seconds it took, frame reading included."""
    with Meter(f"fitting {det.name}", count_frames(videos), show=_show(det, progress)) as meter, \
            _stage(f"fitting {det.name}"):
        t0 = perf_counter()
        det.fit([meter.wrap(v) for v in videos], labels)
        return perf_counter() - t0


_fit = fit  # evaluate()'s parameter `fit` hides the function


def score(det: Any, video: Any, *, keep_maps: bool = False, meter: Meter | None = None,
          progress: bool | None = None):
    """Score one video chunk by chunk (as ``Detector.score``).

    Args:
        det: a fitted detector.
        video: uint8 ``[T, C, H, W]`` or a re-iterable of chunks (e.g. a ``vadx.data.Video``).
        keep_maps: keep the localization maps; otherwise they are dropped chunk by chunk, so
            memory stays bounded by the chunk size.
        meter: a :class:`Meter` shared by several videos (one bar over all of them); by default
            a bar of this video alone.
        progress: show that bar (when no ``meter`` is given; default: as :func:`fit`).

    Returns:
        ``(Scores, seconds)``: the scores on the CPU (frame scores, the maps if kept, the
        extras) and the seconds spent scoring, excluding the time spent reading/decoding frames.
    """
    import torch

    from vadx.detector import VideoChunks, _ScoresBuilder

    name = getattr(video, "name", "") or "video"
    own = meter is None
    if own:
        meter = Meter(f"scoring {name} with {det.name}", count_frames([video]),
                      show=_show(det, progress))
    with (meter if own else nullcontext(meter)), _stage(f"scoring {name} with {det.name}"):
        # validated chunks of at most det.chunk_size frames, as Detector.score reads them (an
        # exhausted one-shot iterator raises instead of giving no scores)
        chunks = VideoChunks(video, det.chunk_size, torch.device("cpu"), name)
        stream = det.stream(fps=chunks.fps)
        out = _ScoresBuilder()  # one growing buffer, not a tensor per chunk (heap fragmentation)
        t0, read0 = perf_counter(), meter.read_seconds
        for chunk in meter.wrap(chunks):
            s = stream.update(chunk)  # moves the chunk to det.device: timed as scoring
            out.add(s, keep_maps=keep_maps, device=torch.device("cpu"))
        seconds = perf_counter() - t0 - (meter.read_seconds - read0)
    return out.result(), seconds


# ---------------------------------------------------------------------------- evaluate
@dataclass(frozen=True)
class View:
    """One more evaluation of the same scoring pass, reported under ``result["views"][name]``.

    Frame level only: post-processing does not change maps, so the pixel-level metrics are the
    main result's.

    Args:
        postprocess: per-video post-processing of the signal (default: raw).
        average: ``"micro"`` or ``"macro"``.
        signal: ``"frame"`` (the frame scores) or the name of a per-frame ``Scores.extras``
            entry (e.g. one voter of an ensemble).
        threshold: for video-level F1, in the units of the post-processed signal (None: no F1).
    """

    postprocess: PostProcess | None = None
    average: str = "micro"
    signal: str = "frame"
    threshold: float | None = None

    def evaluator(self) -> Evaluator:
        return Evaluator(average=self.average, postprocess=self.postprocess, threshold=self.threshold)

    def select(self, scores: Any, name: str) -> Any:
        """The per-frame values this view evaluates, from one video's ``Scores``."""
        if self.signal == "frame":
            return scores.frame
        if self.signal not in scores.extras:
            raise ValueError(f"view {name!r}: the scores have no extras[{self.signal!r}]; they have: "
                             f"{', '.join(scores.extras) or '(none)'}")
        return scores.extras[self.signal]


def evaluate(det: Any, dataset: Any, *, fit: bool = True, postprocess: PostProcess | None = None,
             average: str = "micro", plot_dir: str | os.PathLike | None = None,
             views: Mapping[str, View] | None = None, keep_maps: bool | None = None,
             on_video: Callable[[Any, Any], None] | None = None,
             progress: bool | None = None) -> dict[str, Any]:
    """Fit ``det`` on the dataset's training videos (if ``fit``), score its test videos, and
    return the metrics as JSON values: the object ``vadx evaluate --json`` prints.

    Args:
        det: a detector (fitted already when ``fit`` is False).
        dataset: a ``vadx.data.Dataset`` (``train``, ``test`` with frame labels, ``name``...).
        fit: fit first; a supervised detector gets the training videos' frame labels.
        postprocess: per-video frame-score post-processing of the main result (default: raw).
            With raw scores the video-level F1 uses ``det.threshold_``.
        average: ``"micro"`` or ``"macro"`` frame-level metrics.
        plot_dir: write ``<plot_dir>/<video>.png``, each video's post-processed scores with the
            ground truth shaded.
        views: more evaluations of the same pass (:class:`View`), by name.
        keep_maps: keep maps for the pixel level (default: for the videos that have masks).
        on_video: called with ``(video, Scores)`` after each test video (e.g. to write an
            overlay or collect a signal); its time is not counted as scoring.
        progress: show the progress bars (fitting; scoring, one bar over all test videos);
            default: as the detector's ``progress`` parameter where it has one, else shown.

    Returns:
        ``detector``, ``dataset``, ``frame_auc``, ``frame_eer``, ``pixel_auc``, ``pixel_eer``
        (None without masks or maps), ``video_f1`` (raw scores only), ``fps`` (frames per second
        of scoring, fitting and frame decoding excluded), ``n_frames``, ``n_videos``,
        ``threshold``, ``seconds`` (``fit``, ``score``, ``read``), ``options`` (averaging,
        post-processing, parameters, device, ``model`` (None here), dataset root, layout and
        options), ``per_video``, ``plots``; and ``views`` (each an ``EvaluationResult.to_dict()``)
        when views were given.
    """
    post = postprocess or PostProcess()
    views = dict(views or {})
    fit_s = None
    if fit:
        labels = None
        if det.supervised:
            labels = [v.labels for v in dataset.train]
            if any(lab is None for lab in labels):
                raise ValueError(f"detector {det.name!r} is supervised, but the training videos of "
                                 f"{dataset.name} have no frame labels")
        fit_s = _fit(det, dataset.train, labels, progress=progress)
    raw = post.normalize is None and post.sigma == 0
    # with raw scores, alarms are the detector's own (score > threshold_): video-level F1 applies
    ev = Evaluator(average=average, postprocess=post, threshold=det.threshold_ if raw else None)
    extra = {name: view.evaluator() for name, view in views.items()}
    score_s, processed = 0.0, []
    with Meter(f"scoring {det.name}", count_frames(dataset.test), show=_show(det, progress)) as meter:
        for video in dataset.test:
            if video.labels is None:
                raise ValueError(f"test video {video.name} of {dataset.name} has no frame labels")
            maps = video.masks is not None if keep_maps is None else keep_maps
            scores, seconds = score(det, video, keep_maps=maps, meter=meter)
            score_s += seconds
            ev.add(scores, video.labels, video.masks, name=video.name, video_label=video.video_label)
            for name, view in views.items():
                extra[name].add(view.select(scores, name), video.labels, name=video.name,
                                video_label=video.video_label)
            if plot_dir is not None:
                processed.append(post(scores.frame))
            if on_video is not None:
                on_video(video, scores)
        read_s = meter.read_seconds
    res = ev.result()
    plots = []
    if plot_dir is not None:
        from vadx import io

        for video, s, row in zip(dataset.test, processed, res.per_video):
            auc = f"frame AUC {row['auc']:.3f}" if row["auc"] is not None else "single-class video"
            plots.append(str(io.plot_scores(
                Path(plot_dir) / f"{video.name}.png", s, video.labels,
                threshold=det.threshold_ if raw else None, fps=video.fps,
                title=f"{det.name} on {dataset.name} / {video.name} ({auc})")))
    n = res.n_frames
    out = {
        "detector": det.name,
        "dataset": dataset.name,
        "frame_auc": res.frame_auc,
        "frame_eer": res.frame_eer,
        "pixel_auc": res.pixel_auc,
        "pixel_eer": res.pixel_eer,
        "video_f1": res.video_f1,
        "fps": n / score_s if score_s > 0 else None,
        "n_frames": n,
        "n_videos": res.n_videos,
        "threshold": det.threshold_,
        "seconds": {"fit": fit_s, "score": score_s, "read": read_s},
        "options": {**res.options, "params": det.get_params(), "device": str(det.device),
                    "model": None, "dataset_root": None if dataset.root is None else str(dataset.root),
                    "dataset_layout": dataset.layout, "dataset_options": dataset.options},
        "per_video": res.per_video,
        "plots": plots,
    }
    if views:
        out["views"] = {name: e.result().to_dict() for name, e in extra.items()}
    return out


# ---------------------------------------------------------------------------- result files
def weights_info(det: Any) -> dict[str, Any] | None:
    """The pretrained weights a fitted detector recorded (backbone, file, SHA-256, verified), or
    None: its ``weights_info_``, else the first fitted attribute that is such a record."""
    found = getattr(det, "weights_info_", None)
    if isinstance(found, dict):
        return found
    for key, value in vars(det).items():
        if key.endswith("_") and not key.startswith("_") and isinstance(value, dict) \
                and "sha256" in value and "file" in value:
            return value
    return None


def bench_record(det: Any = None, *, command: str | None = None, schedule: Any = None,
                 seconds: Mapping[str, Any] | None = None, **entries: Any) -> dict[str, Any]:
    """A benchmark result: ``entries`` (the metrics, under the script's own names) followed by
    what makes it reproducible: ``params`` and ``weights`` (where recorded, :func:`weights_info`)
    of ``det``, ``schedule``, ``seconds`` and ``command``, each only when known. An entry given
    explicitly (e.g. ``weights=`` of a detector with several backbones) wins."""
    record = dict(entries)
    if det is not None:
        record.setdefault("params", det.get_params())
        weights = weights_info(det)
        if weights is not None:
            record.setdefault("weights", weights)
    for key, value in (("schedule", schedule), ("seconds", seconds), ("command", command)):
        if value is not None:
            record[key] = dict(value) if isinstance(value, Mapping) else value
    return record


def write_result(path: str | os.PathLike, record: Mapping[str, Any], *, merge: bool = False) -> Path:
    """Write ``record`` as indented JSON to ``path`` (folders created). With ``merge`` the file's
    other top-level entries are kept (several tests writing parts of one results file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if merge and path.is_file() else {}
    data.update(record)
    with atomic_open(path, "w") as f:  # a failed run keeps the previous result whole
        f.write(json.dumps(data, indent=2, default=str) + "\n")
    return path
