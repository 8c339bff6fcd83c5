"""Live sources: network streams, webcams and growing files, read on a thread into a bounded queue.

>>> with vadx.io.open_stream("rtsp://10.0.0.5:554/cam1", grayscale=True) as cam:
...     stream = detector.stream(fps=cam.fps)
...     for chunk in cam.chunks():            # StreamChunk: frames + per-frame index and times
...         scores = stream.update(chunk.frames)

Sources (``source`` of :func:`open_stream`):

- a URL: ``rtsp://``, ``rtsps://``, ``rtmp://``, ``http://``, ``https://`` (e.g. MJPEG or
  MPEG-TS over HTTP), ``udp://``, ``tcp://``, ``srt://``; decoded by OpenCV's FFmpeg backend;
- a webcam: an int index (``0``) or its digits as a string (``"0"``, as typed on a command line);
- ``"-"``: a video byte stream on standard input (e.g. ``ffmpeg ... -f mpegts - | vadx watch``);
- a file path. Files in a container that can be appended to (:data:`FOLLOW_EXTENSIONS`: MPEG-TS,
  Matroska/WebM, raw MJPEG, FLV) are *followed* like ``tail -f`` by default: the file's bytes are
  fed to FFmpeg through a pipe as they are written, and the stream ends once the file has not grown
  for ``idle_timeout`` seconds. FFmpeg probes the first bytes of a followed file before it yields a
  frame (up to ~5 MB or the end of what is written, so the first frames of a slowly growing file come
  late; none is lost). MP4/MOV/AVI keep their index at the end (an MP4 being written cannot be read
  at all), so they are read once, as written, unless ``follow=True`` is given.

Reconnecting: a network source or webcam that fails to open or stops delivering frames is opened
again after a back-off (``backoff`` seconds, doubled after each failure that delivered no frame, at
most ``max_backoff``), forever by default (``max_reconnects``). Every attempt is counted
(:attr:`LiveStream.reconnects`) and recorded as an incident (:meth:`LiveStream.pop_incidents`).
Frames the camera sent while the stream was down never reached vadx: the incidents' times and the
``index`` of the frames after them show the gap.

The queue policy: capture runs on its own thread and puts frames in a queue of ``queue_size``
frames. When the consumer (scoring) is slower than the source:

- live sources (network, webcam, stdin) drop the **oldest** queued frame for each new one
  (``drop="oldest"``): latency stays bounded by ``queue_size / fps``, and every dropped frame is
  counted (:attr:`LiveStream.dropped`, :attr:`StreamChunk.dropped`, a ``"drop"`` incident per run
  of drops; the frame ``index`` skips them);
- files (followed or not) make the capture thread wait instead (``drop="never"``): the file keeps
  the frames, so nothing needs to be lost, and the lag grows instead.

Channels, resizing and ``max_pixels`` mean what they mean for :func:`vadx.io.open_video`.
"""

from __future__ import annotations

import collections
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import torch

from vadx.detector import check_fps
from vadx.io.readers import (
    _check_grayscale,
    _resize,
    check_chunk_size,
    check_max_pixels,
    check_size,
)

__all__ = ["FOLLOW_EXTENSIONS", "NETWORK_SCHEMES", "LiveStream", "StreamChunk", "open_stream"]

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")
# containers whose files can be read while they grow (no index written at the end)
FOLLOW_EXTENSIONS = (".ts", ".m2ts", ".mts", ".mkv", ".webm", ".mjpeg", ".mjpg", ".flv")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass
class StreamChunk:
    """Consecutive frames taken from a :class:`LiveStream`'s queue.

    Attributes:
        frames: uint8 ``[t, C, H, W]``.
        index: int64 ``[t]``: each frame's number among all the frames captured from the source
            since it was opened (reconnects included), so dropped frames show as gaps.
        time: float64 ``[t]``: wall-clock capture times (Unix seconds, ``time.time()``).
        captured: float64 ``[t]``: the same instants on ``time.monotonic()`` (for latency).
        dropped: frames dropped from the queue since the previous chunk.
    """

    frames: torch.Tensor
    index: torch.Tensor
    time: torch.Tensor
    captured: torch.Tensor
    dropped: int = 0

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def _positive(name: str, value: Any, *, allow_none: bool = False, allow_zero: bool = False) -> Any:
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        what = ">= 0" if allow_zero else "> 0"
        none = "None or " if allow_none else ""
        raise ValueError(f"{name} must be {none}a finite number {what}, got {value!r}")
    return value


def _kind(source: Any) -> tuple[str, Any]:
    """``(kind, what to open)``: ``("network", url)``, ``("webcam", index)``, ``("stdin", 0)`` or
    ``("file", Path)``; anything else raises naming ``source``."""
    if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
        if source < 0:
            raise ValueError(f"source: a webcam index must be an int >= 0, got {source!r}")
        return "webcam", int(source)
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise TypeError(f"source must be a URL, a webcam index, '-' (stdin) or a file path, got "
                        f"{type(source).__name__}")
    if source == "-":
        return "stdin", 0
    if source.isdigit():
        return "webcam", int(source)
    m = _URL.match(source)
    if m:
        scheme = m.group(1).lower()
        if scheme == "file":
            return _kind(source[len("file://"):])
        if scheme not in NETWORK_SCHEMES:
            raise ValueError(f"source: unknown URL scheme {scheme!r} in {source!r}; expected one of "
                             f"{', '.join(s + '://' for s in NETWORK_SCHEMES)}, a webcam index, '-' "
                             f"or a file path")
        return "network", source
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"source not found: {source!r} is not a URL "
                                f"({', '.join(s + '://' for s in NETWORK_SCHEMES)}), a webcam index, "
                                f"'-' (stdin) or an existing file")
    if not path.is_file():
        raise ValueError(f"source: {source!r} is not a file (a frame folder is a finished video: "
                         f"read it with vadx.io.open_video)")
    return "file", path


class _Tail(threading.Thread):
    """Copies a growing file into a pipe, like ``tail -f``, until it has not grown for
    ``idle_timeout`` seconds or :meth:`stop` is called; then closes the pipe (FFmpeg sees the end)."""

    def __init__(self, path: Path, fd: int, idle_timeout: float | None, poll: float = 0.05):
        super().__init__(daemon=True, name=f"vadx-tail-{path.name}")
        self.path, self.fd, self.idle_timeout, self.poll = path, fd, idle_timeout, poll
        self._halt = threading.Event()
        self.error: BaseException | None = None

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        try:
            with open(self.path, "rb") as f, os.fdopen(self.fd, "wb", buffering=0) as pipe:
                idle_since = time.monotonic()
                while not self._halt.is_set():
                    data = f.read(1 << 16)
                    if data:
                        idle_since = time.monotonic()
                        view = memoryview(data)
                        while view and not self._halt.is_set():
                            try:  # a short wait: stop() must not hang on a full pipe
                                n = os.write(pipe.fileno(), view)
                            except BlockingIOError:
                                time.sleep(0.005)
                                continue
                            view = view[n:]
                        continue
                    if self.idle_timeout is not None and time.monotonic() - idle_since > self.idle_timeout:
                        return
                    self._halt.wait(self.poll)
        except BrokenPipeError:  # the reader went away (closed): nothing more to feed
            pass
        except BaseException as e:  # noqa: BLE001 - reported by the stream as its error
            self.error = e


class LiveStream:
    """A live source read on a background thread into a bounded queue; see the module docstring.

    Use :func:`open_stream` to create one. :meth:`chunks` yields :class:`StreamChunk` objects
    (frames with their indices and capture times); iterating the stream itself yields only the
    frame tensors, so it can be passed wherever a video is accepted (``detector.score_chunks``).
    Counters (read them at any time, from any thread): :attr:`frames` (captured),
    :attr:`delivered`, :attr:`dropped`, :attr:`discarded` (:meth:`discard`),
    :attr:`reconnects`; :attr:`state` is ``"connecting"``, ``"streaming"``, ``"reconnecting"``,
    ``"ended"`` (the source ended, or :meth:`close`) or ``"failed"`` (:attr:`error` says why).
    """

    def __init__(self, source: Any, *, chunk_size: int = 8, grayscale: bool | None = None,
                 size: tuple[int, int] | None = None, fps: float | None = None,
                 queue_size: int = 64, drop: str | None = None, reconnect: bool = True,
                 max_reconnects: int | None = None, backoff: float = 0.5, max_backoff: float = 30.0,
                 follow: bool | None = None, idle_timeout: float | None = 5.0,
                 open_timeout: float = 10.0, read_timeout: float = 10.0,
                 max_pixels: int | None = None, name: str | None = None,
                 wakeup: threading.Event | None = None):
        self.kind, self._target = _kind(source)
        self.source = source
        self.chunk_size = check_chunk_size(chunk_size)
        self.grayscale = _check_grayscale(grayscale)
        self.size = check_size(size)
        self._fps = check_fps(fps)
        if not isinstance(queue_size, (int, np.integer)) or isinstance(queue_size, bool) or queue_size < 1:
            raise ValueError(f"queue_size must be an int >= 1 (frames), got {queue_size!r}")
        self.queue_size = int(queue_size)
        live = self.kind != "file"
        if drop is None:
            drop = "oldest" if live else "never"
        if drop not in ("oldest", "never"):
            raise ValueError(f"drop must be None (by source), 'oldest' or 'never', got {drop!r}")
        self.drop = drop
        if not isinstance(reconnect, bool):
            raise ValueError(f"reconnect must be True or False, got {reconnect!r}")
        self.reconnect = reconnect and self.kind in ("network", "webcam")
        if max_reconnects is not None and (not isinstance(max_reconnects, (int, np.integer))
                                           or isinstance(max_reconnects, bool) or max_reconnects < 0):
            raise ValueError(f"max_reconnects must be None (no limit) or an int >= 0, got "
                             f"{max_reconnects!r}")
        self.max_reconnects = max_reconnects
        self.backoff = float(_positive("backoff", backoff))
        self.max_backoff = float(_positive("max_backoff", max_backoff))
        if self.max_backoff < self.backoff:
            raise ValueError(f"max_backoff must be >= backoff ({backoff}), got {max_backoff!r}")
        if follow not in (None, True, False):
            raise ValueError(f"follow must be None (by file type), True or False, got {follow!r}")
        if follow and self.kind != "file":
            raise ValueError(f"follow applies to file sources; source {source!r} is a {self.kind}")
        self.follow = self.kind == "file" and (
            follow if follow is not None else self._target.suffix.lower() in FOLLOW_EXTENSIONS)
        self.idle_timeout = _positive("idle_timeout", idle_timeout, allow_none=True)
        self.open_timeout = float(_positive("open_timeout", open_timeout))
        self.read_timeout = float(_positive("read_timeout", read_timeout))
        self.max_pixels = check_max_pixels(max_pixels)
        self.name = name if name is not None else (
            self._target.name if self.kind == "file" else str(source))
        self._wakeup = wakeup

        self._queue: collections.deque = collections.deque()
        self._lock = threading.Condition()
        self._incidents: list[dict[str, Any]] = []
        self._dropped_since = 0  # dropped since the last chunk taken
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tail: _Tail | None = None
        self.frames = self.delivered = self.dropped = self.discarded = self.reconnects = 0
        self.state = "connecting"
        self.error: str | None = None
        self.opened_at: float | None = None
        self._rate: collections.deque = collections.deque(maxlen=64)  # recent capture instants

    # ------------------------------------------------------------------ properties
    @property
    def fps(self) -> float | None:
        """The frame rate given, else the one the source announced once open (None: unknown)."""
        return self._fps

    @property
    def live(self) -> bool:
        return self.kind != "file"

    def capture_fps(self) -> float:
        """Frames per second captured over the last (up to 64) frames; 0 before two frames."""
        with self._lock:
            if len(self._rate) < 2:
                return 0.0
            span = self._rate[-1] - self._rate[0]
            return (len(self._rate) - 1) / span if span > 0 else 0.0

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def ended(self) -> bool:
        """The source is finished (ended, failed or closed) and every queued frame was taken."""
        with self._lock:
            return self.state in ("ended", "failed") and not self._queue

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LiveStream:
        """Start capturing (once; :func:`open_stream` does it). Returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"vadx-capture-{self.name}")
            self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop capturing and release the source; frames still queued can still be taken."""
        self._stop.set()
        if self._tail is not None:  # the decoder then sees the end of a followed file
            self._tail.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            if self.state not in ("failed",):
                self.state = "ended"
            self._lock.notify_all()

    def __enter__(self) -> LiveStream:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ consumer side
    def get(self, timeout: float | None = None) -> StreamChunk | None:
        """Take up to ``chunk_size`` queued frames, waiting up to ``timeout`` seconds (None:
        until a frame or the end) for the first; never waits for a full chunk, so a frame is
        scored as soon as the scorer is free. None: no frame in time, or the stream ended."""
        self.start()
        with self._lock:
            if not self._queue:
                self._lock.wait_for(lambda: self._queue or self.state in ("ended", "failed"),
                                    timeout)
            if not self._queue:
                return None
            items = [self._queue.popleft() for _ in range(min(self.chunk_size, len(self._queue)))]
            dropped, self._dropped_since = self._dropped_since, 0
            self.delivered += len(items)
            self._lock.notify_all()  # a capture thread waiting for room (drop="never")
        frames = torch.from_numpy(np.ascontiguousarray(np.stack([f for f, *_ in items])
                                                       .transpose(0, 3, 1, 2)))
        return StreamChunk(frames, torch.tensor([i for _, i, _, _ in items], dtype=torch.int64),
                           torch.tensor([t for *_, t, _ in items], dtype=torch.float64),
                           torch.tensor([m for *_, m in items], dtype=torch.float64), dropped)

    def chunks(self) -> Iterator[StreamChunk]:
        """Chunks until the source ends (or :meth:`close`); see :meth:`get`."""
        self.start()
        while True:
            chunk = self.get(0.5)
            if chunk is not None:
                yield chunk
            elif self.ended:
                return

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (c.frames for c in self.chunks())

    def discard(self) -> int:
        """Empty the queue (e.g. at shutdown); returns how many frames were discarded, also
        added to :attr:`discarded`, so that frames == delivered + dropped + discarded + queued."""
        with self._lock:
            n = len(self._queue)
            self._queue.clear()
            self.discarded += n
            self._lock.notify_all()
        return n

    def pop_incidents(self) -> list[dict[str, Any]]:
        """Drops and reconnects recorded since the last call, oldest first; each a dict with
        ``type`` (``"drop"``, ``"disconnected"``, ``"reconnect"``, ``"reconnected"``,
        ``"failed"``), ``time`` (Unix seconds) and details."""
        with self._lock:
            out, self._incidents = self._incidents, []
        return out

    def stats(self) -> dict[str, Any]:
        """The counters as one dict: state, frames (captured), delivered, dropped, discarded,
        reconnects, queued, capture fps, error."""
        with self._lock:
            queued = len(self._queue)
        return {"state": self.state, "frames": self.frames, "delivered": self.delivered,
                "dropped": self.dropped, "discarded": self.discarded,
                "reconnects": self.reconnects, "queued": queued,
                "fps": round(self.capture_fps(), 3), "error": self.error}

    # ------------------------------------------------------------------ capture thread
    def _incident(self, kind: str, **info: Any) -> None:
        with self._lock:
            self._incidents.append({"type": kind, "time": time.time(), **info})

    def _open(self) -> tuple[cv2.VideoCapture | None, _Tail | None, int | None, str]:
        """(capture or None, tail thread, pipe fd we must close, why it failed)."""
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout * 1000)]
        tail = fd = None
        if self.kind == "webcam":
            cap = cv2.VideoCapture(self._target)
        elif self.kind == "stdin":
            cap = cv2.VideoCapture("pipe:0", cv2.CAP_FFMPEG, params)
        elif self.kind == "file" and self.follow:
            fd, wfd = os.pipe()
            os.set_blocking(wfd, False)  # so that _Tail.stop() never waits on a full pipe
            tail = self._tail = _Tail(self._target, wfd, self.idle_timeout)
            tail.start()
            cap = cv2.VideoCapture(f"pipe:{fd}", cv2.CAP_FFMPEG, params)
        else:
            cap = cv2.VideoCapture(str(self._target), cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            return None, tail, fd, "cannot be opened (unreachable, refused, or not a video)"
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if w * h > self.max_pixels:  # no reconnect changes that: fail (_run reports it)
            cap.release()
            if tail is not None:
                tail.stop()
            if fd is not None:
                os.close(fd)
            raise ValueError(f"frames of {w}x{h} (W x H) = {w * h} pixels exceed max_pixels "
                             f"({self.max_pixels})")
        announced = cap.get(cv2.CAP_PROP_FPS)
        if self._fps is None and 0 < announced < 1000:
            self._fps = float(announced)
        return cap, tail, fd, ""

    def _convert(self, frame: np.ndarray) -> np.ndarray:
        if frame.ndim == 2:
            frame = frame if self.grayscale is not False else cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        elif self.grayscale:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        else:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        frame = _resize(frame, self.size)
        return frame[:, :, None] if frame.ndim == 2 else frame

    def _put(self, frame: np.ndarray) -> bool:
        """Queue one converted frame (policy in the module docstring); False if stopped."""
        now, mono = time.time(), time.monotonic()
        with self._lock:
            if self._stop.is_set():  # closed: the consumer has counted what it will get
                return False
            if len(self._queue) >= self.queue_size:
                if self.drop == "never":
                    self._lock.wait_for(lambda: len(self._queue) < self.queue_size
                                        or self._stop.is_set())
                    if self._stop.is_set():
                        return False
                else:
                    _, old_index, _, _ = self._queue.popleft()
                    self.dropped += 1
                    self._dropped_since += 1
                    last = self._incidents[-1] if self._incidents else None
                    if last is not None and last["type"] == "drop" and last["last_frame"] == old_index - 1:
                        last["frames"] += 1  # one incident per run of consecutive drops
                        last["last_frame"] = old_index
                    else:
                        self._incidents.append({"type": "drop", "time": now, "frames": 1,
                                                "first_frame": old_index, "last_frame": old_index})
            self._queue.append((frame, self.frames, now, mono))
            self.frames += 1
            self._rate.append(mono)
            self._lock.notify_all()
        if self._wakeup is not None:
            self._wakeup.set()
        return True

    def _finish(self, state: str, error: str | None = None) -> None:
        with self._lock:
            self.state, self.error = state, error
            self._lock.notify_all()
        if error:
            self._incident("failed", error=error)
        if self._wakeup is not None:
            self._wakeup.set()

    def _run(self) -> None:
        try:
            self._capture()
        except BaseException as e:  # noqa: BLE001 - a consumer must never wait on a dead thread
            self._finish("failed", f"{self.name}: {type(e).__name__}: {e}")

    def _capture(self) -> None:
        failures = 0  # consecutive connections that delivered no frame
        streak = 0  # reconnect attempts since the last frame
        down_since: float | None = None
        first = True
        while not self._stop.is_set():
            if not first:
                if not self.reconnect:
                    break
                if self.max_reconnects is not None and streak >= self.max_reconnects:
                    self._finish("failed", f"{self.name}: gave up after {streak} reconnect "
                                           f"attempts without a frame (max_reconnects)")
                    return
                streak += 1
                wait = min(self.max_backoff, self.backoff * 2 ** failures)
                self.reconnects += 1
                self.state = "reconnecting"
                self._incident("reconnect", attempt=self.reconnects, wait_s=wait)
                if self._wakeup is not None:
                    self._wakeup.set()
                if self._stop.wait(wait):
                    break
            cap, tail, fd, why = self._open()
            try:
                if cap is None:
                    if first and not self.reconnect:
                        self._finish("failed", f"{self.name}: {why}")
                        return
                    if down_since is None:
                        down_since = time.time()
                        self._incident("disconnected", reason=why)
                    failures += 1
                    first = False
                    continue
                if self.opened_at is None:
                    self.opened_at = time.time()
                self.state = "streaming"
                got = 0
                while not self._stop.is_set():
                    ok, frame = cap.read()
                    if not ok or frame is None:
                        break
                    if got == 0 and down_since is not None:
                        self._incident("reconnected", down_s=round(time.time() - down_since, 3))
                        down_since = None
                    got += 1
                    if not self._put(self._convert(frame)):
                        break
                if tail is not None and tail.error is not None:
                    self._finish("failed", f"{self.name}: reading the file failed: {tail.error}")
                    return
                if got:
                    failures = streak = 0
                else:
                    failures += 1
                if not self._stop.is_set() and self.reconnect:
                    down_since = time.time()
                    self._incident("disconnected", reason="the stream ended or stopped "
                                                          "delivering frames")
            finally:
                if cap is not None:
                    cap.release()
                if tail is not None:
                    tail.stop()
                    tail.join(5.0)
                if fd is not None:
                    try:  # FFmpeg's pipe protocol leaves the descriptor to us
                        os.close(fd)
                    except OSError:
                        pass
            first = False
        self._finish("ended")


def open_stream(source: Any, *, chunk_size: int = 8, grayscale: bool | None = None,
                size: tuple[int, int] | None = None, fps: float | None = None,
                queue_size: int = 64, drop: str | None = None, reconnect: bool = True,
                max_reconnects: int | None = None, backoff: float = 0.5,
                max_backoff: float = 30.0, follow: bool | None = None,
                idle_timeout: float | None = 5.0, open_timeout: float = 10.0,
                read_timeout: float = 10.0, max_pixels: int | None = None,
                name: str | None = None, wakeup: threading.Event | None = None) -> LiveStream:
    """Open a live source and start capturing it on a background thread.

    Args:
        source: a URL (``rtsp://``, ``http://``, ... :data:`NETWORK_SCHEMES`), a webcam index
            (``0`` or ``"0"``), ``"-"`` (standard input) or a file path (followed while it grows
            where its container allows, see ``follow``).
        chunk_size: the most frames one :meth:`LiveStream.get` returns.
        grayscale, size, max_pixels: as for :func:`vadx.io.open_video`.
        fps: the frame rate, when the source does not announce it (or announces it wrongly).
        queue_size: frames held between capture and the consumer (>= 1).
        drop: when the queue is full: ``"oldest"`` drops the oldest frame (counted), ``"never"``
            makes capture wait; None: ``"oldest"`` for live sources, ``"never"`` for files.
        reconnect: re-open a network source or webcam that fails or stops (files never).
        max_reconnects: give up (state ``"failed"``) after this many re-open attempts in a row
            that brought no frame; None: never give up.
        backoff, max_backoff: seconds before the first re-open attempt, doubled after each
            attempt that delivered no frame, up to ``max_backoff``.
        follow: for a file: feed it to the decoder as it grows (``tail -f``); None: for the
            appendable containers of :data:`FOLLOW_EXTENSIONS`.
        idle_timeout: a followed file has ended once it has not grown for this many seconds
            (None: follow until :meth:`LiveStream.close`).
        open_timeout, read_timeout: seconds FFmpeg waits to connect and for data before it
            gives up (network sources; a give-up then counts as a disconnection).
        name: the name in messages and events (default: the file name or the source as given).
        wakeup: an event set whenever a frame is queued or the state changes (to wait on
            several streams at once, as ``vadx watch`` does).

    Raises:
        ValueError, TypeError: an unknown kind of source or a bad option, naming it.
        FileNotFoundError: a path that does not exist and is not a URL or a webcam index.
    """
    stream = LiveStream(source, chunk_size=chunk_size, grayscale=grayscale, size=size, fps=fps,
                        queue_size=queue_size, drop=drop, reconnect=reconnect,
                        max_reconnects=max_reconnects, backoff=backoff, max_backoff=max_backoff,
                        follow=follow, idle_timeout=idle_timeout, open_timeout=open_timeout,
                        read_timeout=read_timeout, max_pixels=max_pixels, name=name, wakeup=wakeup)
    return stream.start()
