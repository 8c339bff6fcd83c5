"""Scoring whole archives: many videos, one process or a Ray cluster, resumable.

``vadx score MODEL --many MANIFEST --out DIR [--ray [ADDRESS]]`` runs :func:`score_archive`:

>>> summary = vadx.distributed.score_archive("model.vadx", "archive.txt", "scores/", ray=True)

What it writes to ``out`` (every file atomically, :mod:`vadx.outputs`):

- ``<name>.csv`` per video: ``video,frame,score,alarm``, the columns and number format of
  ``vadx score`` (``alarm`` = score > the model's ``threshold_``); ``<name>`` is the file stem or
  folder name, ``-2``, ``-3``... on repeats, in manifest order;
- optional per-video plots and overlays (``plot``/``overlay`` templates, ``{name}`` replaced);
- ``.vadx/<name>.json``: the record of a finished video (written last, after its outputs);
- ``summary.json`` and ``summary.csv``: one row per video: status (``scored``, ``skipped``:
  finished by an earlier run, or ``failed``), frames, alarms, max score, attempts, seconds, worker,
  error.

Resume rule: a video is skipped when its record exists and says it was scored from the same
input file (size and modification time), with the same model file (SHA-256) and the same options
(channels, plot and overlay paths), and its outputs still exist. Anything else is scored again, so
a run that was killed, or that failed on some videos, is finished by running the same command
again. A video whose scoring raises is retried ``retries`` more times (after the others queued
before it); if it still fails it is reported in the summary (and the command exits 1), and the
other videos are unaffected.

Ray (``ray=True``, the optional extra ``pip install vadx[ray]``): ``workers`` actors, each
loading the model once (the model file's bytes are sent through Ray's object store, so workers
need no copy of it) and scoring one video at a time with ``threads`` torch threads; the driver
hands the next video to whichever worker is free (longest videos first, so that a long video
does not start last), writes every output except overlays (which need the frames: workers write
those, so ``out`` must then be on a file system the workers share) and shows one progress bar
(frames) for the archive. Videos are read by the workers: on a cluster, their paths must be valid
on every node (a shared file system). Scores are identical to the single-process run: the same
:meth:`Detector.score` over the same chunks, and the CSV written by the same code on the driver.
``address``: None starts a local cluster on this machine (``num_cpus`` = ``workers``); ``"auto"``
or ``"ray://HOST:10001"`` joins an existing one. An already initialised Ray is used as it is.
"""

from __future__ import annotations

import csv
import io as _io
import json
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vadx.features import sha256_file
from vadx.outputs import input_name, per_input_path, unique_names

__all__ = ["ArchiveItem", "read_manifest", "score_archive", "archive_names"]

STATE_DIR = ".vadx"


@dataclass(frozen=True)
class ArchiveItem:
    """One video of an archive: its output ``name``, its ``path`` (as the manifest resolves it)
    and where it was listed (``line`` of the manifest, 0 when given as a list)."""

    name: str
    path: str
    line: int = 0


def archive_names(paths: list[str]) -> list[str]:
    """Output names: file stem or folder name, ``-2``, ``-3``... on repeats (as ``vadx score``)."""
    return unique_names([input_name(p) for p in paths])


def read_manifest(manifest: str | os.PathLike) -> list[ArchiveItem]:
    """The videos a manifest lists: one video file or frame folder per line, relative paths
    relative to the manifest's folder; blank lines and lines starting with ``#`` are skipped.

    Raises:
        FileNotFoundError: the manifest does not exist.
        ValueError: a line names no existing file or folder, or the manifest lists no video
            (the message names the manifest, the line number and what it holds).
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest (--many) not found: {manifest}")
    paths, lines = [], []
    with open(manifest, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            path = Path(text).expanduser()
            if not path.is_absolute():
                path = manifest.parent / path
            if not path.exists():
                raise ValueError(f"manifest {manifest} line {n}: expected a video file or frame "
                                 f"folder, got {text!r} (not found: {path})")
            paths.append(str(path))
            lines.append(n)
    if not paths:
        raise ValueError(f"manifest {manifest}: expected one video path per line, got no video "
                         f"(only blank lines or # comments)")
    return [ArchiveItem(name, p, n) for name, p, n in zip(archive_names(paths), paths, lines)]


def _items(videos: Any) -> list[ArchiveItem]:
    if isinstance(videos, (str, os.PathLike)):
        return read_manifest(videos)
    if not isinstance(videos, (list, tuple)) or not videos:
        raise ValueError(f"videos must be a manifest path or a non-empty list of video paths, got "
                         f"{videos!r}")
    paths = []
    for i, p in enumerate(videos):
        if not isinstance(p, (str, os.PathLike)) or not os.path.exists(p):
            raise ValueError(f"videos[{i}]: expected an existing video file or frame folder, got "
                             f"{p!r}")
        paths.append(os.fspath(p))
    return [ArchiveItem(n, p) for n, p in zip(archive_names(paths), paths)]


def _template(template: str | None, name: str, out: Path) -> Path | None:
    """A per-video output path: ``{name}`` replaced (else ``_<name>`` before the suffix);
    relative paths are inside ``out``."""
    if template is None:
        return None
    path = per_input_path(template, name)
    return path if path.is_absolute() else out / path


def _input_id(path: str) -> dict[str, Any]:
    """What identifies an input's content cheaply: size and mtime (of a folder: of its files)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file())
        return {"files": len(files), "size": sum(f.stat().st_size for f in files),
                "mtime_ns": max((f.stat().st_mtime_ns for f in files), default=0)}
    st = p.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


# ---------------------------------------------------------------------------- one video
def _score_video(det: Any, path: str, grayscale: bool | None, overlay: str | None) -> dict[str, Any]:
    """Score one video (in a worker or in this process): its frame scores as float32 bytes, and
    the overlay written where asked. What the driver needs to write the rest."""
    from vadx import io

    t0 = time.perf_counter()
    if overlay and getattr(det, "map_params", None):  # maps a detector makes only when asked
        det.set_params(**det.map_params)
    reader = io.open_video(path, chunk_size=det.chunk_size, grayscale=grayscale)
    scores = det.score(reader, maps=True if overlay else False)
    if overlay:
        io.write_overlay(overlay, reader, scores, threshold=det.threshold_)
    frame = scores.frame.numpy().astype(np.float32, copy=False)
    return {"scores": frame.tobytes(), "fps": reader.fps, "seconds": time.perf_counter() - t0,
            "worker": f"{os.uname().nodename}:{os.getpid()}"}


def _write_csv(path: Path, video: str, frame: np.ndarray, threshold: float) -> None:
    """The CSV of ``vadx score`` for one video, written atomically."""
    from vadx import outputs

    buf = _io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(["video", "frame", "score", "alarm"])
    writer.writerows((video, i, f"{s:.9g}", int(s > threshold)) for i, s in enumerate(frame))
    with outputs.atomic_open(path, "w", newline="") as f:
        f.write(buf.getvalue())


# ---------------------------------------------------------------------------- executors
class _Local:
    """Scores in this process, one video at a time (the reference for the Ray run)."""

    def __init__(self, det: Any, threads: int | None):
        self.det = det
        self.threads = threads
        self.queue: deque = deque()
        self.workers = 1

    def free(self) -> bool:
        return not self.queue

    def submit(self, key: Any, path: str, grayscale: bool | None, overlay: str | None) -> None:
        self.queue.append((key, path, grayscale, overlay))

    def wait(self) -> tuple[Any, dict[str, Any] | None, BaseException | None]:
        from vadx.threads import intra_op_threads

        key, path, grey, overlay = self.queue.popleft()
        try:
            with intra_op_threads(self.threads or None):
                return key, _score_video(self.det, path, grey, overlay), None
        except Exception as e:  # noqa: BLE001 - reported and retried by the scheduler
            return key, None, e

    def close(self) -> None:
        pass


def _ray_worker_class():
    import ray

    @ray.remote
    class ScoreWorker:
        """One model load per worker process; scores one video per call."""

        def __init__(self, model_bytes: bytes, device: str, threads: int):
            import tempfile

            import torch

            import vadx

            torch.set_num_threads(threads)
            with tempfile.TemporaryDirectory() as tmp:  # vadx.load reads a file, once
                path = Path(tmp) / "model.vadx"
                path.write_bytes(model_bytes)
                self.det = vadx.load(path, device=device)

        def score(self, path: str, grayscale: bool | None, overlay: str | None) -> dict[str, Any]:
            return _score_video(self.det, path, grayscale, overlay)

    return ScoreWorker


class _Ray:
    """Ray actors, one video each at a time; a dead actor is replaced."""

    def __init__(self, model: str, device: str, threads: int, workers: int | None,
                 address: str | None):
        try:
            import ray
        except ImportError as e:
            raise ImportError("ray is not installed: pip install 'vadx[ray]' (or ray) to score "
                              "archives on Ray, or leave out --ray") from e
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            if address is None:
                ncpu = workers * threads if workers else os.cpu_count() or 1
                ray.init(num_cpus=ncpu, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            self.started = True
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
        self.workers, self.device, self.threads = workers, device, threads
        self.model_ref = ray.put(Path(model).read_bytes())
        self.cls = _ray_worker_class()
        self.idle = [self._actor() for _ in range(workers)]
        self.running: dict[Any, tuple[Any, Any]] = {}  # ref -> (key, actor)

    def _actor(self):
        return self.cls.options(num_cpus=self.threads).remote(self.model_ref, self.device,
                                                               self.threads)

    def free(self) -> bool:
        return bool(self.idle)

    def submit(self, key: Any, path: str, grayscale: bool | None, overlay: str | None) -> None:
        actor = self.idle.pop()
        self.running[actor.score.remote(path, grayscale, overlay)] = (key, actor)

    def wait(self) -> tuple[Any, dict[str, Any] | None, BaseException | None]:
        ray = self.ray
        (ref,), _ = ray.wait(list(self.running), num_returns=1)
        key, actor = self.running.pop(ref)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError as e:  # the worker process died: replace it
            self.idle.append(self._actor())
            return key, None, RuntimeError(f"the Ray worker died: {e}")
        except ray.exceptions.RayTaskError as e:  # the scoring raised: the worker lives on
            self.idle.append(actor)
            cause = getattr(e, "cause", None)
            return key, None, cause if isinstance(cause, BaseException) else e
        self.idle.append(actor)
        return key, result, None

    def close(self) -> None:
        for actor in self.idle:
            self.ray.kill(actor)
        if self.started:
            self.ray.shutdown()


# ---------------------------------------------------------------------------- the archive
def score_archive(model: str | os.PathLike, videos: Any, out: str | os.PathLike, *,
                  ray: bool = False, address: str | None = None, workers: int | None = None,
                  threads: int | None = None, retries: int = 1, plot: str | None = None,
                  overlay: str | None = None, grayscale: bool | None = None, device: str = "cpu",
                  progress: bool = True) -> dict[str, Any]:
    """Score every video of an archive; see the module docstring for outputs and resuming.

    Args:
        model: a model file (:meth:`Detector.save`).
        videos: a manifest file (:func:`read_manifest`) or a list of video paths.
        out: the output folder (created).
        ray: score on Ray; ``address`` None starts a local cluster, else joins that one.
        workers: Ray worker processes (default: the cluster's CPUs / ``threads``).
        threads: torch threads per worker (Ray default 1, one CPU each); in this process:
            None leaves torch's setting.
        retries: more tries of a video after its first failure (>= 0).
        plot, overlay: per-video output templates (``{name}``; relative to ``out``), e.g.
            ``"{name}.png"``, ``"{name}.mp4"``.
        grayscale: reader channels; None: as the model's training frames.
        device: torch device of every worker.
        progress: one progress bar (frames) for the archive (on a terminal).

    Returns:
        ``{"videos": [one row per video], "scored": n, "skipped": n, "failed": n, "workers": n,
        "seconds": s, "summary": path}``.
    """
    from vadx import io, outputs, progress as _progress

    for name, value, low in (("retries", retries, 0), ("workers", workers, 1), ("threads", threads, 1)):
        if value is None and name != "retries":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if address is not None and not ray:
        raise ValueError(f"address applies with ray=True, got address={address!r} and ray={ray!r}")
    if plot is not None and Path(plot).suffix.lower() not in io.PLOT_FORMATS:
        raise ValueError(f"plot must end in one of {', '.join(io.PLOT_FORMATS)}, got {plot!r}")
    if overlay is not None and Path(overlay).suffix.lower() not in io.FOURCC:
        raise ValueError(f"overlay must end in one of {', '.join(io.FOURCC)}, got {overlay!r}")
    model = os.fspath(model)
    if not os.path.isfile(model):
        raise FileNotFoundError(f"model file not found: {model}")
    items = _items(videos)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a folder, got the file {out}")
    files = {it.name: {"csv": out / f"{it.name}.csv", "plot": _template(plot, it.name, out),
                       "overlay": _template(overlay, it.name, out),
                       "record": out / STATE_DIR / f"{it.name}.json"} for it in items}
    outs = [("--out", out / "summary.json"), ("--out", out / "summary.csv")]
    for it in items:
        f = files[it.name]
        outs.append(("--out", f["csv"]))
        outs += [(flag, f[k]) for flag, k in (("--plot", "plot"), ("--overlay", "overlay")) if f[k]]
    inputs = [("MODEL", model)]
    inputs += [("--many", videos)] if isinstance(videos, (str, os.PathLike)) else []
    inputs += [(f"MANIFEST line {it.line}" if it.line else "VIDEO", it.path) for it in items]
    outputs.check_outputs(inputs, outs)  # before anything is read or written

    import vadx

    head = vadx.load(model)  # the threshold, the channels; checks the file before any work
    if grayscale is None:
        shape = getattr(head, "input_shape_", None)
        grayscale = {1: True, 3: False}.get(int(shape[0]) if shape else None)
    threshold = float(head.threshold_)
    model_sha = sha256_file(model)
    options = {"grayscale": grayscale, "plot": plot, "overlay": overlay}
    (out / STATE_DIR).mkdir(parents=True, exist_ok=True)

    rows: dict[str, dict[str, Any]] = {}
    todo: list[ArchiveItem] = []
    for it in items:
        ident = _input_id(it.path)
        rec = _read_record(files[it.name]["record"])
        f = files[it.name]
        done = (rec is not None and rec.get("model_sha256") == model_sha and rec.get("input") == ident
                and rec.get("video") == it.path and rec.get("options") == options
                and all(p is None or p.exists() for p in (f["csv"], f["plot"], f["overlay"])))
        if done:
            rows[it.name] = {**_row(rec), "status": "skipped"}
        else:
            todo.append(it)
    # longest first: a long video started last would leave the other workers idle at the end
    lengths = {it.name: _frames(it.path) for it in todo}
    todo.sort(key=lambda it: -(lengths[it.name] or 0))
    total = sum(n or 0 for n in lengths.values()) or None

    t0 = time.perf_counter()
    runner = None  # nothing to do (all finished earlier): no cluster started
    if todo:
        runner = (_Ray(model, device, threads or 1, workers, address) if ray
                  else _Local(head.to(device), threads))
    attempts: dict[str, int] = {}
    errors: dict[str, str] = {}
    pending = deque(todo)
    by_name = {it.name: it for it in items}
    bar = _progress.bar(total, f"scoring {len(todo)} of {len(items)} videos", "frame",
                        show=progress, leave=True)
    try:
        in_flight = 0
        while pending or in_flight:
            while pending and runner.free():
                it = pending.popleft()
                attempts[it.name] = attempts.get(it.name, 0) + 1
                f = files[it.name]
                runner.submit(it.name, it.path, grayscale,
                              str(f["overlay"]) if f["overlay"] else None)
                in_flight += 1
            name, result, error = runner.wait()
            in_flight -= 1
            it, f = by_name[name], files[name]
            if error is None:
                try:
                    rec = _finish(it, f, result, threshold, model, model_sha, options,
                                  attempts[name])
                except Exception as e:  # noqa: BLE001 - writing its outputs failed: retry it
                    error = e
                else:
                    rows[name] = {**_row(rec), "status": "scored"}
                    errors.pop(name, None)
                    bar.update(rec["frames"])
            if error is not None:
                errors[name] = _message(error)
                if attempts[name] <= retries:
                    pending.append(it)  # after the others: a passing problem may have passed
                else:
                    rows[name] = {"name": name, "video": it.path, "status": "failed",
                                  "frames": None, "alarms": None, "max_score": None,
                                  "attempts": attempts[name], "seconds": None, "worker": None,
                                  "error": errors[name]}
                    bar.update(lengths.get(name) or 0)
    finally:
        bar.close()
        n_workers = runner.workers if runner is not None else 0
        if runner is not None:
            runner.close()
    table = [rows[it.name] for it in items]
    summary = {"model": model, "model_sha256": model_sha, "threshold": threshold,
               "out": str(out), "workers": n_workers, "ray": bool(ray), "address": address,
               "seconds": round(time.perf_counter() - t0, 3),
               "scored": sum(r["status"] == "scored" for r in table),
               "skipped": sum(r["status"] == "skipped" for r in table),
               "failed": sum(r["status"] == "failed" for r in table), "videos": table}
    with outputs.atomic_open(out / "summary.json", "w") as fh:
        fh.write(json.dumps(summary, indent=2) + "\n")
    cols = ["name", "video", "status", "frames", "alarms", "max_score", "attempts", "seconds",
            "worker", "error"]
    with outputs.atomic_open(out / "summary.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        w.writerows([["" if r.get(c) is None else r.get(c) for c in cols] for r in table])
    summary["summary"] = str(out / "summary.json")
    return summary


def _frames(path: str) -> int | None:
    from vadx import io

    try:
        return len(io.open_video(path))
    except Exception:  # noqa: BLE001 - an unreadable video fails (and is reported) when scored
        return None


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _row(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: rec.get(k) for k in ("name", "video", "frames", "alarms", "max_score", "attempts",
                                    "seconds", "worker")} | {"error": None}


def _message(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return f"{type(e).__name__}: {text}"


def _finish(it: ArchiveItem, f: dict[str, Path | None], result: dict[str, Any], threshold: float,
            model: str, model_sha: str, options: dict[str, Any], attempts: int) -> dict[str, Any]:
    """Write a scored video's CSV and plot, then its record (last: it marks the video done)."""
    from vadx import io, outputs

    frame = np.frombuffer(result["scores"], dtype=np.float32)
    _write_csv(f["csv"], it.path, frame, threshold)
    if f["plot"] is not None:
        io.plot_scores(f["plot"], frame, threshold=threshold, fps=result["fps"],
                       title=f"{it.name}: {it.path}")
    rec = {"name": it.name, "video": it.path, "input": _input_id(it.path), "model": model,
           "model_sha256": model_sha, "options": options, "frames": int(len(frame)),
           "alarms": int((frame > threshold).sum()),
           "max_score": float(frame.max()) if len(frame) else None,
           "attempts": attempts, "seconds": round(result["seconds"], 3), "worker": result["worker"],
           "outputs": [str(p) for p in (f["csv"], f["plot"], f["overlay"]) if p is not None]}
    with outputs.atomic_open(f["record"], "w") as fh:
        fh.write(json.dumps(rec, indent=2) + "\n")
    return rec


def cli_score_many(args: Any) -> int:
    """``vadx score MODEL --many MANIFEST --out DIR [--ray [ADDRESS]]`` (parsed by
    :mod:`vadx.cli`): prints the per-video table; exit status 1 when a video failed."""
    if args.many is None:
        args.parser.error("argument --ray: applies with --many MANIFEST")
    if args.inputs:
        args.parser.error("give INPUTs or --many MANIFEST, not both")
    if not args.out:
        args.parser.error("argument --out: required with --many (the output folder)")
    if args.workers is not None and args.ray is None:
        args.parser.error("argument --workers: applies with --ray")
    if args.workers is not None and args.workers < 1:
        args.parser.error(f"argument --workers: must be >= 1, got {args.workers}")
    if args.retries < 0:
        args.parser.error(f"argument --retries: must be >= 0, got {args.retries}")
    address = None if args.ray in (None, "local") else args.ray
    summary = score_archive(args.model, args.many, args.out, ray=args.ray is not None,
                            address=address, workers=args.workers, retries=args.retries,
                            plot=args.plot, overlay=args.overlay,
                            grayscale=True if args.grayscale else None, device=args.device,
                            progress=not args.quiet)
    rows = [("VIDEO", "STATUS", "FRAMES", "ALARMS", "MAX SCORE", "TRIES")]
    for r in summary["videos"]:
        rows.append((r["name"], r["status"] if not r["error"] else f"failed: {r['error']}",
                     "-" if r["frames"] is None else str(r["frames"]),
                     "-" if r["alarms"] is None else str(r["alarms"]),
                     "-" if r["max_score"] is None else f"{r['max_score']:.6g}",
                     "-" if r["attempts"] is None else str(r["attempts"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print("\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows))
    print(f"{summary['scored']} scored, {summary['skipped']} skipped (finished earlier), "
          f"{summary['failed']} failed, on {summary['workers']} worker"
          f"{'s' * (summary['workers'] != 1)}{' (Ray)' if summary['ray'] else ''} in "
          f"{summary['seconds']:.1f} s; threshold_ = {summary['threshold']:.6g}")
    print(f"wrote {summary['summary']} and the per-video CSVs to {args.out}")
    return 1 if summary["failed"] else 0
