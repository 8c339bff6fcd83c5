"""Watching live cameras: one fitted detector, several sources in one process, anomaly events.

``vadx watch MODEL SOURCE...`` runs :func:`watch`. Each source is a :class:`vadx.io.LiveStream`
(capture on its own thread into a bounded queue, reconnecting with back-off) scored by its own
:class:`vadx.detector.Stream` (the detector's state per camera); one scoring loop takes up to
``chunk_size`` queued frames from each camera in turn, so cameras share the cores fairly and a
frame is scored as soon as the scorer is free.

Events (hysteresis, :class:`EventTracker`): an event opens at the ``open_after``-th consecutive
frame whose score is above the threshold (``threshold_`` unless given; ``score > threshold``, as
alarms are everywhere in vadx) and starts at the first of them; it closes after ``close_after``
consecutive scored frames at or below it, and ends at its last frame above it. Short dips inside
an anomaly so do not split it, and one noisy frame does not open an event when ``open_after > 1``.

The events file (``events``, JSON lines, appended to, each line flushed and fsynced as it is
written, so a reader sees whole lines while the watcher runs) holds, each with ``type``,
``camera`` and ``time`` (Unix seconds):

- ``watch_start``: model, detector, threshold, hysteresis parameters, the cameras and sources;
- ``event_start``: as soon as an event opens (the live alert): ``start_frame``, ``start_time``,
  ``score``, ``threshold`` and ``latency_s``, the seconds from the capture of the frame that
  opened it to this line being written;
- ``event``: when it closes: ``start_time``/``end_time`` (Unix seconds) and ``start``/``end``
  (ISO 8601), ``start_frame``/``end_frame``, ``peak_score``/``peak_frame``/``peak_time``,
  ``threshold``, ``frames`` (frames scored from start to end), ``above`` (of them above the
  threshold), ``dropped`` (frames dropped by the queue while it was open), ``closed_by``
  (``"below_threshold"``, ``"stream_end"`` or ``"shutdown"``) and ``snapshot`` (a path or null);
- ``drop``, ``disconnected``, ``reconnect``, ``reconnected``, ``failed``: the streams'
  incidents (:meth:`vadx.io.LiveStream.pop_incidents`), so no frame is lost silently;
- ``camera_end`` per camera: ``frames`` captured, ``scored``, ``dropped`` (by the queue),
  ``discarded`` (still queued at a stop), so frames = scored + dropped + discarded; reconnects,
  events, latency percentiles (capture to score), final state; ``watch_end``: why it stopped.

Frame numbers are :attr:`vadx.io.StreamChunk.index` (every captured frame counted, dropped ones
included). After a reconnect the detector's stream state is reset (the frames before and after a
gap are not consecutive); drops do not reset it.

SIGINT and SIGTERM (when :func:`watch` runs in the main thread) stop the loop: open events are
closed (``closed_by: "shutdown"``), recordings finished (a playable file renamed into place),
the events file flushed; :func:`watch` then returns normally.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np

from vadx.outputs import unique_names

__all__ = ["EventTracker", "camera_names", "watch"]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def camera_names(sources: list[Any]) -> list[str]:
    """Short unique names: a file's stem, ``webcam<N>``, ``stdin``, or a URL's host, port and
    path with other characters as ``_``; ``-2``, ``-3``... on repeats."""
    out: list[str] = []
    for s in sources:
        text = os.fspath(s) if isinstance(s, os.PathLike) else str(s)
        if text.isdigit():
            base = f"webcam{text}"
        elif text == "-":
            base = "stdin"
        elif "://" in text:
            base = re.sub(r"[^A-Za-z0-9.-]+", "_", text.split("://", 1)[1]).strip("_") or "camera"
        else:
            base = Path(text).stem or "camera"
        out.append(base)
    return unique_names(out)


def _count(name: str, value: Any, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


@dataclass
class _Open:
    start_frame: int
    start_time: float
    peak_score: float
    peak_frame: int
    peak_time: float
    last_above_frame: int
    last_above_time: float
    frames: int = 0
    above: int = 0
    dropped: int = 0
    peak_image: np.ndarray | None = None


class EventTracker:
    """Hysteresis on one camera's frame scores (see the module docstring for the rule).

    :meth:`feed` takes one scored frame and returns ``("open", info)`` / ``("close", event)``
    records as they happen; :meth:`close` ends an open event (shutdown, end of stream).

    Args:
        threshold: a frame is above it when ``score > threshold``.
        open_after: consecutive frames above it that open an event (>= 1).
        close_after: consecutive frames at or below it that close an open event (>= 1).
        keep_peak_image: keep a copy of the frame at the peak (for snapshots).
    """

    def __init__(self, threshold: float, *, open_after: int = 1, close_after: int = 10,
                 keep_peak_image: bool = False):
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) \
                or not np.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        self.threshold = float(threshold)
        self.open_after = _count("open_after", open_after, 1)
        self.close_after = _count("close_after", close_after, 1)
        self.keep_peak_image = keep_peak_image
        self.current: _Open | None = None
        self._run: list[tuple[int, float, float, np.ndarray | None]] = []  # above, not yet open
        self._below = 0

    def feed(self, frame: int, t: float, score: float, image: np.ndarray | None = None,
             dropped: int = 0) -> list[tuple[str, Any]]:
        """One scored frame: its index, capture time, score, and (for snapshots) its image;
        ``dropped``: frames dropped just before it (counted in an open event)."""
        out: list[tuple[str, Any]] = []
        above = score > self.threshold  # NaN is not above
        ev = self.current
        if ev is not None:
            ev.frames += 1
            ev.dropped += dropped
            if above:
                self._below = 0
                ev.above += 1
                ev.last_above_frame, ev.last_above_time = frame, t
                if score > ev.peak_score:
                    ev.peak_score, ev.peak_frame, ev.peak_time = score, frame, t
                    if self.keep_peak_image and image is not None:
                        ev.peak_image = image.copy()
            else:
                self._below += 1
                if self._below >= self.close_after:
                    out.append(("close", self._finish("below_threshold")))
            return out
        if not above:
            self._run = []
            return out
        self._run.append((frame, t, score, image.copy() if self.keep_peak_image and image is not None
                          else None))
        if len(self._run) >= self.open_after:
            f0, t0, _, _ = self._run[0]
            peak = max(self._run, key=lambda r: r[2])
            self.current = _Open(f0, t0, peak[2], peak[0], peak[1], frame, t,
                                 frames=len(self._run), above=len(self._run), peak_image=peak[3])
            self._run, self._below = [], 0
            out.append(("open", {"start_frame": f0, "start_time": t0, "score": score,
                                 "open_frame": frame, "open_time": t}))
        return out

    def close(self, why: str) -> dict[str, Any] | None:
        """End the open event, if any (``why``: ``closed_by``)."""
        self._run = []
        return self._finish(why) if self.current is not None else None

    def _finish(self, why: str) -> dict[str, Any]:
        # an event ends at its last frame above the threshold: the frames below it since then
        # are how it was seen to end, not part of it
        ev, frames = self.current, self.current.frames - self._below
        self.current, self._below = None, 0
        return {"start_frame": ev.start_frame, "end_frame": ev.last_above_frame,
                "start_time": ev.start_time, "end_time": ev.last_above_time,
                "start": _iso(ev.start_time), "end": _iso(ev.last_above_time),
                "peak_score": ev.peak_score, "peak_frame": ev.peak_frame,
                "peak_time": ev.peak_time, "threshold": self.threshold,
                "frames": frames, "above": ev.above, "dropped": ev.dropped, "closed_by": why,
                "_peak_image": ev.peak_image}


class _EventsFile:
    """JSON lines appended to a file (or nowhere), each flushed and fsynced as written."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None
        self.file: IO[str] | None = None
        self.lock = threading.Lock()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if self.file is None:
            return
        line = json.dumps(record, default=str)
        with self.lock:
            self.file.write(line + "\n")  # one write per line: a reader never sees half of one
            self.file.flush()
            os.fsync(self.file.fileno())

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class _Recorder:
    """The camera's frames with their score, the threshold and the event state drawn on them,
    written to a video file as they are scored (renamed into place when finished)."""

    def __init__(self, path: Path, fps: float):
        from vadx.io.writers import _Writer

        self.writer = _Writer(path, fps)
        self.map_hi = 0.0

    def write(self, frame: np.ndarray, score: float, threshold: float, in_event: bool,
              score_map: np.ndarray | None) -> None:
        import cv2

        img = frame if frame.shape[2] == 3 else np.repeat(frame, 3, axis=2)
        img = np.ascontiguousarray(img[:, :, ::-1])  # RGB -> BGR
        if score_map is not None:
            finite = score_map[np.isfinite(score_map)]
            if finite.size:
                self.map_hi = max(self.map_hi, float(finite.max()))  # a running scale: no rescan
            if self.map_hi > 0:
                m = np.clip(np.nan_to_num(score_map) / self.map_hi, 0, 1).astype(np.float32)
                heat = cv2.applyColorMap((m * 255).astype(np.uint8), cv2.COLORMAP_JET)
                w = (0.6 * m)[:, :, None]
                img = (img * (1 - w) + heat * w).round().clip(0, 255).astype(np.uint8)
        h = img.shape[0]
        scale = max(0.3, h / 480)
        text = f"{score:.4g} / {threshold:.4g}"
        for colour, thick in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.putText(img, text, (3, int(14 * scale / 0.4)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        colour, thick, cv2.LINE_AA)
        if in_event:
            cv2.rectangle(img, (0, 0), (img.shape[1] - 1, h - 1), (0, 0, 230), max(2, h // 60))
        self.writer.write(img)

    def finish(self, error: BaseException | None = None) -> Path | None:
        self.writer.finish(error)
        return self.writer.path if self.writer.count and error is None else None


@dataclass
class _Camera:
    name: str
    source: Any
    stream: Any  # LiveStream
    tracker: EventTracker
    recorder: _Recorder | None = None
    scorer: Any = None  # the detector's Stream, made at the first frame (fps known then)
    scored: int = 0
    events: int = 0
    lag: float = 0.0  # seconds from capture to score of the newest frame scored
    latencies: deque = field(default_factory=lambda: deque(maxlen=10_000))
    max_latency: float = 0.0
    scored_at: deque = field(default_factory=lambda: deque(maxlen=64))

    def score_fps(self) -> float:
        if len(self.scored_at) < 2 or self.scored_at[-1] <= self.scored_at[0]:
            return 0.0
        return (len(self.scored_at) - 1) / (self.scored_at[-1] - self.scored_at[0])

    def status(self) -> str:
        st = self.stream.stats()
        opened = " EVENT" if self.tracker.current is not None else ""
        return (f"{self.name}: {st['state']}, {st['fps']:.1f} fps in, {self.score_fps():.1f} "
                f"scored/s, lag {self.lag * 1000:.0f} ms, queued {st['queued']}, dropped "
                f"{st['dropped']}, reconnects {st['reconnects']}, events {self.events}{opened}")

    def latency_summary(self) -> dict[str, Any]:
        if not self.latencies:
            return {"p50_ms": None, "p95_ms": None, "max_ms": None}
        lat = np.array(self.latencies) * 1000
        return {"p50_ms": round(float(np.percentile(lat, 50)), 2),
                "p95_ms": round(float(np.percentile(lat, 95)), 2),
                "max_ms": round(self.max_latency * 1000, 2)}


class _Status:
    """The status lines on stderr: rewritten in place on a terminal, else printed as lines."""

    def __init__(self, out: IO[str] | None, interval: float):
        self.out, self.interval = out, interval
        self.tty = bool(out is not None and getattr(out, "isatty", lambda: False)())
        self.next = time.monotonic() + interval
        self.shown = 0

    def show(self, cams: list[_Camera], force: bool = False) -> None:
        if self.out is None or (not force and time.monotonic() < self.next):
            return
        self.next = time.monotonic() + self.interval
        lines = [c.status() for c in cams]
        if self.tty:
            up = f"\x1b[{self.shown}F" if self.shown else ""
            self.out.write(up + "".join(f"\x1b[2K{ln}\n" for ln in lines))
            self.shown = len(lines)
        else:
            self.out.write("".join(f"vadx watch: {ln}\n" for ln in lines))
        self.out.flush()


def watch(model: Any, sources: list[Any], *, events: str | os.PathLike | None = None,
          names: list[str] | None = None, threshold: float | None = None, open_after: int = 1,
          close_after: int = 10, record_dir: str | os.PathLike | None = None,
          record_ext: str = ".mp4", snapshot_dir: str | os.PathLike | None = None,
          grayscale: bool | None = None, size: tuple[int, int] | None | str = "model",
          chunk_size: int = 8, queue_size: int = 64, status: IO[str] | None = sys.stderr,
          status_interval: float | None = None, stop: threading.Event | None = None,
          handle_signals: bool = True, device: str | None = None,
          model_path: str | os.PathLike | None = None, threads: int | None = None,
          **stream_options: Any) -> dict[str, Any]:
    """Score live sources with one fitted detector and write anomaly events until every source
    ends, ``stop`` is set, or SIGINT/SIGTERM arrives.

    Args:
        model: a fitted detector or a model file path (:func:`vadx.load`).
        sources: what :func:`vadx.io.open_stream` accepts, one per camera.
        events: the JSON-lines events file (appended to; see the module docstring); None: none.
        names: one name per camera (default :func:`camera_names`).
        threshold: the alarm threshold (default: the detector's ``threshold_``).
        open_after, close_after: the hysteresis (see :class:`EventTracker`).
        record_dir: write each camera's frames with score and event state to
            ``record_dir/<camera><record_ext>`` (finished and renamed into place at the end).
        snapshot_dir: write the frame at each event's peak to
            ``snapshot_dir/<camera>_<start_frame>.jpg``.
        grayscale: frame channels; None: as the model's training frames.
        size: ``(H, W)`` to resize frames to; ``"model"`` (default): the training frames' size
            where the model recorded it (scores are calibrated there); None: as captured.
        chunk_size: the most frames scored per camera in one step.
        queue_size: each camera's capture queue, in frames (drop-oldest policy for live sources).
        status: where the status lines go (None: nowhere); every ``status_interval`` seconds
            (None: 1 s on a terminal, where the lines are rewritten in place, else 30 s), and
            once more at the end.
        stop: an event that stops watching when set (from another thread).
        handle_signals: install SIGINT/SIGTERM handlers (main thread only) for a clean stop.
        device: torch device of the detector (default: where it is).
        threads: torch threads for scoring while watching (restored after); None: one less
            than the CPUs (at least 1). Capture threads decode on the same cores, and torch's
            OpenMP workers spin while they wait for a core: on 2 busy cores, 2 scoring threads
            scored latent-pred at 3.4 frames/s where 1 thread kept up with 25 (p50 latency
            0.8 s against 3 ms).
        model_path: the file ``model`` was loaded from, when it is a detector (for the events
            file's ``watch_start`` record and the check that no output overwrites it).
        stream_options: more :func:`vadx.io.open_stream` options (``max_reconnects``,
            ``backoff``, ``idle_timeout``, ``fps``, ...).

    Returns:
        A summary: ``{"cameras": [per camera counters and latency], "events": n, "stopped_by":
        "sources ended" | "SIGINT" | "SIGTERM" | "stop"}``.
    """
    import vadx
    from vadx import outputs
    from vadx.io.stream import open_stream

    if isinstance(model, (str, os.PathLike)):
        model_path, det = model, vadx.load(model)
    else:
        det = model
    det._check_fitted()
    if device is not None:
        det.to(device)
    if not isinstance(sources, (list, tuple)) or not sources:
        raise ValueError(f"sources must be a non-empty list of sources, got {sources!r}")
    names = list(names) if names is not None else camera_names(list(sources))
    if len(names) != len(sources) or len(set(names)) != len(names):
        raise ValueError(f"names must give one distinct name per source ({len(sources)}), got "
                         f"{names!r}")
    thr = det.threshold_ if threshold is None else threshold
    shape = getattr(det, "input_shape_", None)
    if grayscale is None and shape:
        grayscale = {1: True, 3: False}.get(int(shape[0]))
    if isinstance(size, str):
        if size != "model":
            raise ValueError(f"size must be 'model', None or (H, W), got {size!r}")
        size = (int(shape[1]), int(shape[2])) if shape else None
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) - 1)
    threads = _count("threads", threads, 1)
    if status_interval is None:
        status_interval = 1.0 if status is not None and getattr(status, "isatty", lambda: False)() \
            else 30.0
    if not isinstance(status_interval, (int, float)) or not status_interval > 0:
        raise ValueError(f"status_interval must be a number > 0 (seconds), got {status_interval!r}")
    if record_dir is not None:
        from vadx.io.writers import FOURCC

        if record_ext not in FOURCC:
            raise ValueError(f"record_ext must be one of {', '.join(FOURCC)}, got {record_ext!r}")
    inputs = [("MODEL", model_path)] if model_path is not None else []
    inputs += [("SOURCE", s) for s in sources
               if isinstance(s, (str, os.PathLike)) and os.path.isfile(s)]
    outputs.check_outputs(inputs, [("--events", events)] if events is not None else [])
    # every argument is checked (open_stream raises naming a bad source or option) before any
    # output is opened
    wake = threading.Event()
    stop = stop if stop is not None else threading.Event()
    streams = []
    try:
        for src, name in zip(sources, names):
            streams.append(open_stream(src, chunk_size=chunk_size, queue_size=queue_size,
                                       grayscale=grayscale, size=size, name=name, wakeup=wake,
                                       **stream_options))
    except BaseException:
        for s in streams:
            s.close()
        raise
    cams = [_Camera(name, src, s, EventTracker(thr, open_after=open_after, close_after=close_after,
                                               keep_peak_image=snapshot_dir is not None))
            for name, src, s in zip(names, sources, streams)]
    log = _EventsFile(events)
    board = _Status(status, float(status_interval))
    stopped_by = ["sources ended"]
    previous: dict[int, Any] = {}

    def on_signal(signum: int, frame: Any) -> None:
        stopped_by[0] = signal.Signals(signum).name
        stop.set()
        wake.set()

    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)

    def emit(cam: _Camera, kind: str, info: dict[str, Any]) -> None:
        if kind == "close":
            image = info.pop("_peak_image", None)
            info["snapshot"] = None
            if snapshot_dir is not None and image is not None:
                info["snapshot"] = str(_snapshot(Path(snapshot_dir) / f"{cam.name}_"
                                                 f"{info['start_frame']}.jpg", image))
            cam.events += 1
            log.write({"type": "event", "camera": cam.name, "time": time.time(), **info,
                       "open_after": open_after, "close_after": close_after})
        else:
            log.write({"type": "event_start", "camera": cam.name, "time": time.time(),
                       "start_frame": info["start_frame"], "start_time": info["start_time"],
                       "start": _iso(info["start_time"]), "score": info["score"],
                       "threshold": cam.tracker.threshold,
                       "latency_s": round(time.monotonic() - info["captured"], 6)})

    def step(cam: _Camera, chunk: Any) -> None:
        if cam.scorer is None:
            cam.scorer = det.stream(fps=cam.stream.fps)
            if record_dir is not None:
                path = Path(record_dir) / f"{cam.name}{record_ext}"
                cam.recorder = _Recorder(path, cam.stream.fps or 10.0)
        scores = cam.scorer.update(chunk.frames)
        now = time.monotonic()
        frame_scores = scores.frame.cpu().numpy()
        maps = scores.maps.cpu().numpy() if (scores.maps is not None and cam.recorder) else None
        images = chunk.frames.numpy().transpose(0, 2, 3, 1) \
            if (cam.recorder is not None or snapshot_dir is not None) else None
        lat = now - chunk.captured.numpy()
        cam.latencies.extend(lat.tolist())
        cam.max_latency = max(cam.max_latency, float(lat.max()))
        cam.lag = float(lat[-1])
        cam.scored += len(frame_scores)
        cam.scored_at.append(now)
        for i, s in enumerate(frame_scores):
            image = images[i] if images is not None else None
            for kind, info in cam.tracker.feed(int(chunk.index[i]), float(chunk.time[i]),
                                               float(s), image, chunk.dropped if i == 0 else 0):
                if kind == "open":
                    info["captured"] = float(chunk.captured[i])
                emit(cam, kind, info)
            if cam.recorder is not None:
                cam.recorder.write(images[i], float(s), cam.tracker.threshold,
                                   cam.tracker.current is not None,
                                   maps[i] if maps is not None else None)

    def incidents(cam: _Camera) -> None:
        for inc in cam.stream.pop_incidents():
            log.write({"camera": cam.name, **inc})
            if inc["type"] == "reconnected" and cam.scorer is not None:
                cam.scorer.reset()  # frames before and after the gap are not consecutive

    from vadx.threads import intra_op_threads

    error: BaseException | None = None
    try:
        with intra_op_threads(threads):  # restored when the loop ends, however it ends
            log.write({"type": "watch_start", "time": time.time(), "detector": det.name,
                       "model": os.fspath(model_path) if model_path is not None else None,
                       "threshold": float(thr), "open_after": open_after, "close_after": close_after,
                       "cameras": [{"camera": c.name, "source": str(c.source)} for c in cams]})
            while not stop.is_set():
                wake.clear()
                busy = False
                for cam in cams:  # round robin: at most chunk_size frames per camera per turn
                    incidents(cam)
                    chunk = cam.stream.get(0)
                    if chunk is not None:
                        step(cam, chunk)
                        busy = True
                board.show(cams)
                if not busy:
                    if all(c.stream.ended for c in cams):
                        break
                    wake.wait(0.1)
    except BaseException as e:
        error = e
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        why = "shutdown" if stop.is_set() or error is not None else "stream_end"
        for cam in cams:
            cam.stream.close()
            cam.stream.discard()  # frames captured but not scored at a stop: counted
            incidents(cam)
            ev = cam.tracker.close(why)
            if ev is not None:
                emit(cam, "close", ev)
            recording = None
            if cam.recorder is not None:
                recording = cam.recorder.finish(error if isinstance(error, Exception) else None)
            st = cam.stream.stats()
            log.write({"type": "camera_end", "camera": cam.name, "time": time.time(),
                       "state": st["state"], "error": st["error"], "frames": st["frames"],
                       "scored": cam.scored, "dropped": st["dropped"],
                       "discarded": st["discarded"],
                       "reconnects": st["reconnects"], "events": cam.events,
                       "latency": cam.latency_summary(),
                       "recording": str(recording) if recording else None})
        board.show(cams, force=True)
        if error is None and stop.is_set() and stopped_by[0] == "sources ended":
            stopped_by[0] = "stop"
        log.write({"type": "watch_end", "time": time.time(),
                   "stopped_by": stopped_by[0] if error is None else f"error: {error!r}"})
        log.close()
    return {"stopped_by": stopped_by[0], "events": sum(c.events for c in cams),
            "cameras": [{"camera": c.name, "source": str(c.source), **c.stream.stats(),
                         "scored": c.scored, "events": c.events, "latency": c.latency_summary(),
                         "recording": str(Path(record_dir) / f"{c.name}{record_ext}")
                         if c.recorder is not None and c.recorder.writer.count else None}
                        for c in cams]}


def _snapshot(path: Path, image: np.ndarray) -> Path:
    """The frame (RGB or grey, H x W x C) as a JPEG, written atomically."""
    import cv2

    from vadx import outputs

    img = image[:, :, 0] if image.shape[2] == 1 else image[:, :, ::-1]
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img), [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the snapshot")
    path.parent.mkdir(parents=True, exist_ok=True)
    with outputs.atomic_open(path, "wb") as f:
        f.write(buf.tobytes())
    return path


def cli_watch(args: Any) -> int:
    """``vadx watch`` (arguments parsed by :mod:`vadx.cli`): runs :func:`watch` and prints a
    summary per camera to stdout. Exit status 1 when a camera failed (gave up reconnecting, or
    could not be opened), else 0, also when stopped by SIGINT/SIGTERM."""
    if not os.path.isfile(args.model):
        raise FileNotFoundError(f"model file not found: {args.model}")
    if args.name is not None and len(args.name) != len(args.sources):
        args.parser.error(f"argument --name: give one per SOURCE ({len(args.sources)}), got "
                          f"{len(args.name)}")
    for flag, value, low in (("--open-after", args.open_after, 1), ("--close-after", args.close_after, 1),
                             ("--queue-size", args.queue_size, 1), ("--chunk-size", args.chunk_size, 1)):
        if value < low:
            args.parser.error(f"argument {flag}: must be >= {low}, got {value}")
    if args.max_reconnects is not None and args.max_reconnects < 0:
        args.parser.error(f"argument --max-reconnects: must be >= 0, got {args.max_reconnects}")
    for flag, value in (("--idle-timeout", args.idle_timeout), ("--status-interval", args.status_interval)):
        if value is not None and not value > 0:
            args.parser.error(f"argument {flag}: must be > 0 (seconds), got {value}")
    if args.threads is not None and args.threads < 1:
        args.parser.error(f"argument --threads: must be >= 1, got {args.threads}")
    if args.fps is not None and not args.fps > 0:
        args.parser.error(f"argument --fps: must be > 0, got {args.fps}")
    import vadx

    det = vadx.load(args.model, device=args.device)
    if args.record and getattr(det, "map_params", None):  # maps made only when asked: draw them
        det.set_params(**det.map_params)
    summary = watch(det, list(args.sources), events=args.events, names=args.name,
                    threshold=args.threshold, open_after=args.open_after,
                    close_after=args.close_after, record_dir=args.record,
                    snapshot_dir=args.snapshots, grayscale=True if args.grayscale else None,
                    size=None if args.native_size else "model", chunk_size=args.chunk_size,
                    queue_size=args.queue_size, status=None if args.quiet else sys.stderr,
                    status_interval=args.status_interval, max_reconnects=args.max_reconnects,
                    idle_timeout=args.idle_timeout, fps=args.fps, model_path=args.model,
                    threads=args.threads)
    failed = 0
    for c in summary["cameras"]:
        lat = c["latency"]
        lat_text = "-" if lat["p50_ms"] is None else f"{lat['p50_ms']:.0f}/{lat['p95_ms']:.0f} ms"
        print(f"{c['camera']}: {c['state']}, {c['frames']} frames captured, {c['scored']} scored, "
              f"{c['dropped']} dropped, {c['reconnects']} reconnects, {c['events']} events, "
              f"latency p50/p95 {lat_text}" + (f"; {c['error']}" if c["error"] else ""))
        if c["recording"]:
            print(f"wrote {c['recording']}")
        failed += c["state"] == "failed"
    print(f"stopped: {summary['stopped_by']}; {summary['events']} events"
          + (f" in {args.events}" if args.events else ""))
    return 1 if failed else 0
