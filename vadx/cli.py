"""The `vadx` command line.

Commands (``vadx COMMAND --help`` for each):

- ``vadx plugins [--json]``: the installed plugins and the detectors (and object detectors) they provide.
- ``vadx info DETECTOR [--json]``: its plugin, paper, parameters (type, default, allowed values,
  doc) and presets.
- ``vadx fit METHOD --train PATH... --out MODEL``: learn normality from normal videos.
- ``vadx score MODEL INPUT... [--out CSV] [--overlay MP4] [--plot PNG|JPG|SVG|PDF]``: frame scores,
  alarms.
- ``vadx evaluate (MODEL | METHOD) --dataset NAME --root PATH [--json]``: benchmark metrics.
- ``vadx demo [--out DIR]``: every installed detector on the synthetic scene.
- ``vadx watch MODEL SOURCE...``: live cameras, streams and growing files; anomaly events
  (:mod:`vadx.watch`).
- ``vadx score MODEL --many MANIFEST --out DIR [--ray [ADDRESS]]``: a whole archive, resumable,
  optionally on a Ray cluster (:mod:`vadx.distributed`).

Conventions: results go to stdout, progress (:mod:`vadx.progress`: fitting and scoring, in
frames, and the detectors' own training bars, with loss and ETA; bars on a terminal, one line per
stage otherwise) and messages to stderr; ``--quiet`` turns all progress off. Fitting, scoring,
metrics and timings come from :mod:`vadx.evaluation`, which the benchmark scripts share; this
module parses arguments, reads files and prints. Exit status: 0 success; 2 usage error
(argparse: a missing or malformed argument); 1 runtime error, reported as the single line
``vadx: error: <message>`` on stderr. ``--debug`` (before or after the command) shows the
traceback instead.

Outputs never destroy inputs: before anything is read or written, every output path (``--out``,
each ``--overlay``/``--plot`` file, ``--plot-dir``'s plots) is compared with every input path
(model, videos, frame folders, dataset root) and with the other outputs, as files (device and
inode, so links and other spellings count); a clash is an error naming both arguments. Every
output is written to a temporary file in its folder and renamed when complete
(:mod:`vadx.outputs`), so a failing run leaves the previous file or none, never a truncated one.

Detector parameters are given as ``--set KEY=VALUE``; VALUE is read as JSON when it parses
(``3``, ``0.5``, ``true``, ``null``, ``[64, 64]``, ``"text"``), else as a string. ``--preset NAME``
starts from one of the detector's presets (``vadx info`` lists them), ``--set`` overriding it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from vadx.outputs import input_name, per_input_path, unique_names

DEMO_DIR = "vadx-demo"


class CLIError(Exception):
    """A runtime error whose message is complete as it is (exit status 1)."""


# ---------------------------------------------------------------------------- small helpers
def _key_value(text: str) -> tuple[str, Any]:
    """argparse type of ``--set``: ``KEY=VALUE``, VALUE parsed as JSON when possible."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY a parameter name, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _one_line(e: BaseException) -> str:
    """An exception as one line: its message's lines joined, its type where the message is bare,
    after the stage it failed in (``vadx_stage``, set by vadx.evaluation: "fitting frame-diff")."""
    msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    text = ""
    for line in (ln.strip() for ln in msg.splitlines()):
        if line:
            text += line if not text else (" " if text.endswith(":") else "; ") + line
    expected = (CLIError, OSError, ValueError, TypeError, LookupError, RuntimeError)
    if not text or not isinstance(e, expected) or isinstance(e, (KeyError, IndexError)):
        text = f"{type(e).__name__}: {text}" if text else type(e).__name__
        text += " (run with --debug for the traceback)"
    stage = getattr(e, "vadx_stage", None)
    return f"{stage}: {text}" if stage else text


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"vadx: warning: {message}", file=sys.stderr)


def _existing(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise CLIError(f"{what} not found: {path}")
    return path


def _create(name: str, params: dict[str, Any], preset: str | None = None):
    """A new detector ``name`` from ``preset`` (None: the defaults) with ``params`` over it, or
    an error naming the unknown parameter or preset."""
    from vadx import plugins

    entry = plugins.get_detector(name)  # LookupError: names the installed detectors
    known = entry.cls.param_names()
    for key in params:
        if key not in known:
            raise CLIError(f"detector {name!r} has no parameter {key!r} (--set); its parameters: "
                           f"{', '.join(known)} (`vadx info {name}` shows their defaults and "
                           f"allowed values)")
    offered = entry.cls.presets()
    if preset is not None and preset not in offered:
        raise CLIError(f"detector {name!r} has no preset {preset!r} (--preset); its presets: "
                       f"{', '.join(offered) or '(none)'} (`vadx info {name}` describes them)")
    return entry.cls.from_preset(preset, **params)


def _grayscale(det, force_grey: bool) -> bool | None:
    """Reader channels for a fitted detector: those of its training frames where recorded."""
    if force_grey:
        return True
    shape = getattr(det, "input_shape_", None)  # (C, H, W) of the training frames
    return {1: True, 3: False}.get(shape[0] if shape else None)


def _names(paths: list[str]) -> list[str]:
    """Short unique names of inputs: file stem or folder name, ``-2``, ``-3``... on repeats."""
    return unique_names([input_name(p) for p in paths])


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


# ---------------------------------------------------------------------------- plugins
def _cmd_plugins(args: argparse.Namespace) -> int:
    from vadx import plugins

    found = plugins.list_plugins()
    if args.json:
        # "object_detectors" is added only where a plugin provides some, so the entries of
        # detector-only plugins keep the keys they always had.
        print(json.dumps([{k: v for k, v in vars(p).items() if k != "object_detectors" or v}
                          for p in found], indent=2))
        return 0
    if not found:
        print("No vadx plugins installed (entry-point group 'vadx').")
        return 0
    rows = [("PLUGIN", "DISTRIBUTION", "VERSION", "DETECTORS")]
    for p in found:
        provides = p.detectors + [f"{o} (object detector)" for o in p.object_detectors]
        what = f"FAILED: {p.error}" if p.error else (", ".join(provides) or "(none)")
        rows.append((p.name, p.distribution or "-", p.version or "-", what))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
    return 0


# ---------------------------------------------------------------------------- info
def _cmd_info(args: argparse.Namespace) -> int:
    from vadx import plugins

    d = plugins.describe_detector(args.detector)
    if args.json:
        print(json.dumps(d, indent=2, default=repr))
        return 0
    p = d["plugin"]
    print(f"{d['name']}: {d['summary'] or '(no description)'}")
    print(f"  plugin {p['name']} ({p['distribution'] or '-'} {p['version'] or '-'}), class {d['class']}")
    if d["paper"]:
        print(f"  paper: {d['paper']}")
    traits = ["supervised: fit needs frame labels" if d["supervised"] else "learns from normal video"]
    if d["fixed_frame_size"]:
        traits.append("scores frames of the training size only")
    print(f"  {'; '.join(traits)}")
    print("\nParameters (vadx fit --set NAME=VALUE; vadx.create(..., NAME=VALUE)):")
    for q in d["parameters"]:
        default = "required" if q["required"] else f"default {json.dumps(q['default'], default=repr)}"
        allowed = f"; {q['allowed']}" if q["allowed"] else ""
        print(f"  {q['name']} ({q['type'] or '?'}, {default}{allowed})")
        print(f"      {q['doc'] or '(not documented in the class docstring)'}")
    name = args.detector
    print(f"\nPresets (vadx fit {name} --preset NAME; vadx.create({name!r}, preset=NAME)):")
    if not d["presets"]:
        print("  (none)")
    for pname, pre in d["presets"].items():
        print(f"  {pname}: {pre['doc'] or '(no description)'}")
        values = " ".join(f"{k}={json.dumps(v, default=repr)}" for k, v in pre["params"].items())
        same = " (all equal to the defaults)" if pre["all_defaults"] and pre["params"] else ""
        print(f"      {values or '(the defaults)'}{same}")
    return 0


# ---------------------------------------------------------------------------- fit
def _cmd_fit(args: argparse.Namespace) -> int:
    from vadx import evaluation, io, outputs

    det = _create(args.method, dict(args.set or []), args.preset)  # opens no file
    if det.supervised:
        raise CLIError(f"detector {det.name!r} is supervised (needs frame labels): fit it with "
                       f"`vadx evaluate` on a labelled dataset, or from Python")
    paths = [_existing(p, "training video (--train)") for p in args.train]
    outputs.check_outputs([("--train", p) for p in paths], [("--out", args.out)])
    det.to(args.device)
    readers = [io.open_video(p, chunk_size=det.chunk_size, grayscale=True if args.grayscale else None)
               for p in paths]
    channels = {r.shape[0] for r in readers}
    if len(channels) > 1:
        raise CLIError("the training videos mix grey and colour frames; pass --grayscale to read "
                       "them all as grey")
    seconds = evaluation.fit(det, readers)
    out = Path(args.out)
    det.save(out)  # atomic: a temporary file renamed when complete
    frames = evaluation.count_frames(readers)
    recipe = f" (preset {args.preset})" if args.preset else ""
    print(f"fitted {det.name}{recipe} on {len(readers)} video{'s' * (len(readers) != 1)} ({frames} frames) "
          f"in {seconds:.1f} s; threshold_ = {det.threshold_:.6g} (false_alarm_rate "
          f"{det.false_alarm_rate:g})")
    print(f"wrote {out}")
    return 0


# ---------------------------------------------------------------------------- score
def _cmd_score(args: argparse.Namespace) -> int:
    import vadx
    from vadx import evaluation, io, outputs

    if args.many is not None or args.ray is not None:  # an archive: vadx.distributed
        from vadx import distributed

        return distributed.cli_score_many(args)
    if not args.inputs:
        args.parser.error("the following arguments are required: INPUT (or --many MANIFEST)")
    for p in args.inputs:  # a camera is no file: say where it goes instead of "not found"
        if "://" in p or (p.isdigit() and not os.path.exists(p)) or p == "-":
            raise CLIError(f"INPUT {p!r} is a live source (stream URL, webcam or stdin): score it "
                           f"with `vadx watch MODEL {p}`")
    if args.overlay and Path(args.overlay).suffix.lower() not in io.FOURCC:
        args.parser.error(f"argument --overlay: the file must end in one of {', '.join(io.FOURCC)}, "
                          f"got {args.overlay!r}")
    model = _existing(args.model, "model file")
    paths = [_existing(p, "input video") for p in args.inputs]
    names, several = _names(paths), len(paths) > 1
    overlays = [per_input_path(args.overlay, n, several) if args.overlay else None for n in names]
    plots = [per_input_path(args.plot, n, several) if args.plot else None for n in names]
    outputs.check_outputs(
        [("MODEL", model)] + [("INPUT", p) for p in paths],
        ([("--out", args.out)] if args.out else []) + [("--overlay", o) for o in overlays if o]
        + [("--plot", p) for p in plots if p])
    # after the clash check, whose error (an input about to be replaced) matters more
    if args.plot and Path(args.plot).suffix.lower() not in io.PLOT_FORMATS:
        args.parser.error(f"argument --plot: the file must end in one of "
                          f"{', '.join(io.PLOT_FORMATS)} (the extension decides the format), got "
                          f"{args.plot!r}")
    det = vadx.load(model, device=args.device)
    if args.overlay and det.map_params:  # maps this detector makes only when asked
        det.set_params(**det.map_params)
    grey = _grayscale(det, args.grayscale)
    readers = [io.open_video(p, chunk_size=det.chunk_size, grayscale=grey) for p in paths]
    summary = [("VIDEO", "FRAMES", "ALARMS", "MAX SCORE")]
    written: list[Path] = []
    # the CSV replaces --out only once every input is scored: a failure keeps the old file
    csv_file = outputs.atomic_open(args.out, "w", newline="") if args.out else nullcontext(sys.stdout)
    with csv_file as out:
        writer = csv.writer(out)
        writer.writerow(["video", "frame", "score", "alarm"])
        with evaluation.Meter(f"scoring with {det.name}", evaluation.count_frames(readers)) as meter:
            for path, overlay, plot, reader in zip(paths, overlays, plots, readers):
                scores, _ = evaluation.score(det, reader, keep_maps=bool(args.overlay), meter=meter)
                frame = scores.frame.numpy()
                alarm = frame > det.threshold_
                writer.writerows((path, i, f"{s:.9g}", int(a))
                                 for i, (s, a) in enumerate(zip(frame, alarm)))
                if overlay:
                    written.append(io.write_overlay(overlay, reader, scores, threshold=det.threshold_))
                if plot:
                    written.append(io.plot_scores(plot, scores, threshold=det.threshold_,
                                                  fps=reader.fps, title=f"{det.name}: {path}"))
                summary.append((path, str(len(frame)), str(int(alarm.sum())),
                                f"{frame.max():.6g}" if len(frame) else "-"))
        out.flush()
    report = sys.stdout if args.out else sys.stderr  # stdout carries the CSV without --out
    if args.out or not args.quiet:
        print(_table(summary), file=report)
        print(f"threshold_ = {det.threshold_:.6g}; alarm = score > threshold_", file=report)
        for p in ([Path(args.out)] if args.out else []) + written:
            print(f"wrote {p}", file=report)
    return 0


# ---------------------------------------------------------------------------- evaluate
def _resolve(args: argparse.Namespace):
    """(detector, model path or None): load MODEL if it is a file, else create METHOD."""
    import vadx
    from vadx import plugins

    what = args.detector
    if os.path.isfile(what):
        if args.set or args.preset:
            args.parser.error(f"{'--set' if args.set else '--preset'} applies when fitting a "
                              f"METHOD, not to a saved model file")
        return vadx.load(what, device=args.device), what
    if what not in plugins.detectors() and (os.sep in what or Path(what).suffix):
        raise CLIError(f"model file not found: {what} (and it is not an installed detector name)")
    det = _create(what, dict(args.set or []), args.preset)
    return det.to(args.device), None


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vadx import data, evaluation, outputs
    from vadx.postprocess import PostProcess

    if (args.normalize == "window") != (args.window is not None):
        args.parser.error("--window FRAMES goes with --normalize window (and it needs one)")
    if args.sigma < 0:
        args.parser.error(f"argument --sigma: must be >= 0, got {args.sigma}")
    if args.dataset == "synthetic":
        if args.root is not None:
            args.parser.error("the synthetic dataset is generated: drop --root")
    elif args.root is None:
        args.parser.error(f"--root PATH is required for --dataset {args.dataset}")
    det, model = _resolve(args)
    options = dict(args.dataset_opt or [])
    if model is not None and args.dataset != "synthetic" and "grayscale" not in options:
        grey = _grayscale(det, False)
        if grey is not None:  # read the test videos as the model's training frames were read
            options["grayscale"] = grey
    if args.root is not None:
        _existing(args.root, f"dataset root of {args.dataset} (--root)")
    ds = data.load(args.dataset, args.root, **options)
    if args.plot_dir is not None:  # the plots' names come from the dataset's videos
        inputs = [("MODEL", model)] if model is not None else []
        inputs += [("--root", args.root)] if args.root is not None else []
        outputs.check_outputs(inputs, [("--plot-dir", Path(args.plot_dir) / f"{v.name}.png")
                                       for v in ds.test])
    post = PostProcess(normalize=args.normalize, sigma=args.sigma, window=args.window)
    result = evaluation.evaluate(det, ds, fit=model is None, postprocess=post, average=args.average,
                                 plot_dir=args.plot_dir)
    result["options"]["model"] = model
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    o = result["options"]
    post = ", ".join(f"{k} {o[k]}" for k in ("normalize", "sigma", "window") if o[k]) or "raw scores"
    print(f"{result['detector']} on {result['dataset']}: {result['n_videos']} test videos, "
          f"{result['n_frames']} frames ({o['average']} average, {post})")
    print(f"  frame AUC {_fmt(result['frame_auc'])}  EER {_fmt(result['frame_eer'])}")
    if result["pixel_auc"] is not None:
        print(f"  pixel AUC {_fmt(result['pixel_auc'])}  EER {_fmt(result['pixel_eer'])}  "
              f"(40 % rule, {o['pixel_videos']} videos with masks and maps)")
    if result["video_f1"] is not None:
        print(f"  video F1  {_fmt(result['video_f1'])}  (alarm: a score > threshold_ "
              f"{result['threshold']:.6g})")
    sec = result["seconds"]
    fit = f"fit {sec['fit']:.1f} s, " if sec["fit"] is not None else ""
    print(f"  speed     {result['fps']:.0f} frames/s scoring ({fit}score {sec['score']:.1f} s, "
          f"frame reading {sec['read']:.1f} s)" if result["fps"] else "  speed     -")
    rows = [("VIDEO", "FRAMES", "ANOMALOUS", "AUC", "EER")]
    rows += [(r["name"], str(r["n_frames"]), str(r["n_anomalous"]), _fmt(r["auc"]), _fmt(r["eer"]))
             for r in result["per_video"]]
    print(_table(rows))
    if result["plots"]:
        print(f"wrote {len(result['plots'])} score plots to {args.plot_dir}")
    return 0


# ---------------------------------------------------------------------------- watch
def _cmd_watch(args: argparse.Namespace) -> int:
    from vadx import watch

    return watch.cli_watch(args)


# ---------------------------------------------------------------------------- demo
def _scene_preview(path: Path, ds) -> Path:
    """One frame of each synthetic test clip (the one showing most of the anomaly), outlined."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from vadx import outputs

    cols = min(3, len(ds.test))
    rows = -(-len(ds.test) // cols)
    fig = Figure(figsize=(3.2 * cols, 2.7 * rows), dpi=100)
    FigureCanvasAgg(fig)
    for i, video in enumerate(ds.test):
        masks = video.masks.read()
        area = masks.reshape(len(masks), -1).sum(1)
        most = np.flatnonzero(area == area.max())
        t = int(most[len(most) // 2])  # the middle of the frames showing all of it
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(video.read(t, t + 1)[0, 0].numpy(), cmap="gray", vmin=0, vmax=255)
        if masks[t].any():
            ax.contour(masks[t].astype(np.float32), levels=[0.5], colors="red", linewidths=1)
        ax.set_title(f"{video.name}, frame {t}", fontsize="small")
        ax.set_axis_off()
    fig.suptitle("synthetic test clips: the anomaly outlined in red", fontsize="medium")
    fig.tight_layout()
    with outputs.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _demo_one(name: str, ds, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from vadx import evaluation, io, plugins
    from vadx.data import synthetic

    cls = plugins.get_detector(name).cls
    det = cls(**cls.demo_params()).to(args.device)
    train, labels = ds.train, None
    if cls.supervised:  # extra labelled clips of the same scene, disjoint from the test clips
        extra = synthetic.make_dataset(ds.options["seed"], n_test=2 * len(ds.test)).test[len(ds.test):]
        train = [*ds.train, *extra]
        labels = [np.zeros(len(v), np.int64) for v in ds.train] + [v.labels for v in extra]
    fit_s = evaluation.fit(det, train, labels)
    folder = out / name
    plots, overlay = [], []

    def outputs(video, scores) -> None:  # a score plot per clip, an overlay video of the first
        plots.append(str(io.plot_scores(folder / f"{video.name}.png", scores, video.labels,
                                        threshold=det.threshold_, title=f"{name}: {video.name}")))
        if not overlay:
            overlay.append(str(io.write_overlay(folder / f"{video.name}.mp4", video, scores,
                                                threshold=det.threshold_)))

    r = evaluation.evaluate(det, ds, fit=False, keep_maps=True, on_video=outputs)
    return {"detector": name, "frame_auc": r["frame_auc"], "frame_eer": r["frame_eer"],
            "pixel_auc": r["pixel_auc"], "pixel_eer": r["pixel_eer"], "video_f1": r["video_f1"],
            "fps": r["fps"], "n_frames": r["n_frames"], "fit_seconds": fit_s,
            "score_seconds": r["seconds"]["score"], "threshold": det.threshold_,
            "params": det.get_params(), "plots": plots, "overlay": overlay[0] if overlay else None,
            "error": None}


def _cmd_demo(args: argparse.Namespace) -> int:
    from vadx import outputs, plugins
    from vadx.data import synthetic

    installed = list(plugins.detectors())
    names = installed
    if args.detector:
        unknown = [n for n in args.detector if n not in installed]
        if unknown:
            raise CLIError(f"unknown detector {unknown[0]!r} (--detector); installed: "
                           f"{', '.join(installed) or '(none)'}")
        names = list(dict.fromkeys(args.detector))
    out = Path(args.out)
    ds = synthetic.make_dataset(args.seed)
    o = ds.options
    print(f"vadx demo: a synthetic street scene (seed {args.seed}): {o['n_train']} normal training "
          f"clips, {o['n_test']} test clips with one anomaly each ({', '.join(o['kinds'])}); "
          f"{o['n_frames']} frames of {o['height']}x{o['width']} per clip")
    scene = _scene_preview(out / "scene.png", ds)
    rows = []
    for name in names:
        try:
            rows.append(_demo_one(name, ds, out, args))
        except Exception as e:
            if args.debug:
                raise
            rows.append({"detector": name, "error": _one_line(e)})
    results = out / "results.json"
    with outputs.atomic_open(results) as f:
        f.write(json.dumps({"dataset": {"name": ds.name, **o}, "scene": str(scene),
                            "detectors": rows}, indent=2, default=str) + "\n")
    if not names:
        print("No detectors are installed, so there is nothing to fit and score. Detectors come "
              "from plugins: `vadx plugins` lists what is installed (and any plugin that failed to "
              "load); README.md, \"Writing a detector plugin\", shows how to write one, and "
              "tests/fixtures/vadx-frame-diff is a complete example to `pip install`.")
        print(f"wrote {scene} (the test clips, anomalies outlined) and {results} to {out}/")
        return 0
    table = [("DETECTOR", "FRAME AUC", "EER", "PIXEL AUC", "FRAMES/S", "FIT S")]
    for r in rows:
        if r["error"]:
            table.append((r["detector"], f"FAILED: {r['error']}", "", "", "", ""))
        else:
            table.append((r["detector"], _fmt(r["frame_auc"], 3), _fmt(r["frame_eer"], 3),
                          _fmt(r["pixel_auc"], 3), f"{r['fps']:.0f}" if r["fps"] else "-",
                          f"{r['fit_seconds']:.1f}"))
    print(_table(table))
    print(f"wrote to {out}/: scene.png (the test clips, anomalies outlined), <detector>/<clip>.png "
          f"(score plots, ground truth shaded), <detector>/{ds.test[0].name}.mp4 (overlay), "
          f"results.json (this table)")
    return 0 if any(not r["error"] for r in rows) else 1


# ---------------------------------------------------------------------------- parser
def _flags(suppress: bool) -> argparse.ArgumentParser:
    """--debug and --quiet, accepted before the command (defaults) and after it (SUPPRESS keeps
    a subcommand from overwriting what was given before it)."""
    p = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress else False
    p.add_argument("--debug", action="store_true", default=default,
                   help="on an error, show the full traceback instead of one line")
    p.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="no progress output (bars or stage lines); results and errors still print")
    return p


def build_parser() -> argparse.ArgumentParser:
    from vadx import __version__
    from vadx.data import DATASETS
    from vadx.postprocess import NORMALIZATIONS

    parser = argparse.ArgumentParser(
        prog="vadx", description="Video anomaly detection.", parents=[_flags(False)],
        epilog="Exit status: 0 ok, 1 runtime error (one line on stderr; --debug: traceback), "
               "2 usage error. `vadx COMMAND --help` for each command.")
    parser.add_argument("--version", action="version", version=f"vadx {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_flags(True)]
    device = dict(default="cpu", help="torch device to run on (default: cpu)")
    params = dict(type=_key_value, action="append", metavar="KEY=VALUE",
                  help="a detector parameter (repeatable; `vadx info METHOD` lists them); VALUE "
                       "is parsed as JSON when it can be (3, 0.5, true, [64, 64]), else taken as "
                       "a string")
    preset = dict(metavar="NAME", help="start from this preset of the detector (demo, cpu, "
                                       "paper...; `vadx info METHOD` lists them); --set overrides")

    p = sub.add_parser("plugins", parents=common, help="list plugins and the detectors and object detectors they provide",
                       description="List the installed plugins and the detectors they provide.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser(
        "info", parents=common, help="a detector's paper, parameters and presets",
        description="Show detector DETECTOR's plugin, paper, every parameter (type, default, "
                    "allowed values, one line of doc) and its presets (demo: seconds on the "
                    "synthetic scene; cpu: the recipe measured on a 2-core CPU; paper: the "
                    "paper's values). A name several plugins register is given as "
                    "DISTRIBUTION:NAME.")
    p.add_argument("detector", metavar="DETECTOR", help="detector name (`vadx plugins` lists them)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser(
        "fit", parents=common, help="learn normality from normal videos and save a model file",
        description="Fit detector METHOD on normal training videos and save it to a model file "
                    "(safetensors tensors + a JSON header, whatever the file's extension). The "
                    "file also records the training frames' channel count, so `vadx score` reads "
                    "new video the same way.")
    p.add_argument("method", metavar="METHOD",
                   help="detector name (`vadx plugins` lists them, `vadx info METHOD` its parameters)")
    p.add_argument("--train", nargs="+", action="extend", required=True, metavar="PATH",
                   help="training videos, each a video file or a folder of frame images")
    p.add_argument("--preset", **preset)
    p.add_argument("--set", **params)
    p.add_argument("--out", required=True, metavar="MODEL", help="the model file to write")
    p.add_argument("--grayscale", action="store_true", help="read the videos as grey (C = 1)")
    p.add_argument("--device", **device)
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser(
        "score", parents=common, help="score videos with a saved model: CSV, overlays, plots",
        description="Score every frame of each INPUT with a saved model. CSV columns: video (the "
                    "INPUT as given), frame (0-based), score (higher = more anomalous), alarm (1 "
                    "when score > the model's threshold_, else 0). With several INPUTs, --overlay "
                    "and --plot write one file per input: `{name}` in the path is replaced by the "
                    "input's name (file stem or folder name), otherwise `_<name>` is inserted "
                    "before the suffix (out.png -> out_cam1.png); with one INPUT the path is used "
                    "as given.")
    p.add_argument("model", metavar="MODEL", help="a model file written by `vadx fit` or Detector.save")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="a video file or a folder of frame images")
    p.add_argument("--out", metavar="CSV", help="write the CSV here (default: stdout)")
    p.add_argument("--overlay", metavar="VIDEO", help="write the frames with anomaly heat maps and a "
                   "score bar (.mp4, .avi, .mkv or .mov), switching the detector's maps on where "
                   "they are optional; a detector without maps gets the label \"no localization "
                   "for this detector\" in the frame; holds the video's maps in memory")
    p.add_argument("--plot", metavar="FILE", help="write a plot of the frame scores over frames (as "
                   "the CSV; seconds on a second axis when the frame rate is known), the "
                   "threshold and the alarms shaded; .png, .jpg, .svg or .pdf by extension")
    p.add_argument("--grayscale", action="store_true",
                   help="read the inputs as grey (default: as the model's training frames)")
    p.add_argument("--device", **device)
    p.add_argument("--many", metavar="MANIFEST",
                   help="score an archive instead of INPUTs: MANIFEST lists one video file or frame "
                        "folder per line (relative to the manifest's folder; # comments); --out is "
                        "then a folder: DIR/<name>.csv per video, summary.json and summary.csv; "
                        "--plot/--overlay are per-video paths inside DIR ({name} as above); videos "
                        "finished by an earlier run with the same model are skipped")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="with --many: score on Ray, one model load per worker; no ADDRESS: a local "
                        "cluster on this machine; 'auto' or ray://HOST:PORT: an existing cluster")
    p.add_argument("--workers", type=int, metavar="N",
                   help="with --ray: worker processes (default: the cluster's CPUs)")
    p.add_argument("--retries", type=int, default=1, metavar="N",
                   help="with --many: tries after a video's first failure (default 1)")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser(
        "evaluate", parents=common, help="frame/pixel AUC and EER of a model or method on a dataset",
        description="Evaluate a saved MODEL, or fit METHOD on the dataset's training videos first, "
                    "then score the test videos: frame-level AUC/EER, pixel-level AUC/EER (UCSD 40 % "
                    "rule; where the dataset has masks and the detector maps), video-level F1 (with "
                    "raw scores, alarm = a frame above threshold_). fps = frames scored / seconds "
                    "spent in the detector's scoring (frame reading/decoding and fitting excluded; "
                    "both are reported under \"seconds\").")
    p.add_argument("detector", metavar="MODEL|METHOD", help="a model file, or a detector name to fit")
    p.add_argument("--dataset", required=True, choices=DATASETS, metavar="NAME",
                   help=f"one of: {', '.join(DATASETS)}")
    p.add_argument("--root", metavar="PATH", help="the dataset folder (not for synthetic)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--plot-dir", metavar="DIR",
                   help="write one score plot per test video (ground truth shaded) to DIR/<video>.png")
    p.add_argument("--preset", **preset)
    p.add_argument("--set", **params)
    p.add_argument("--dataset-opt", type=_key_value, action="append", metavar="KEY=VALUE",
                   help="a vadx.data.load option (repeatable), e.g. size=[120,180], grayscale=true, "
                        "labels=gt.mat; synthetic: seed=1, n_test=3")
    p.add_argument("--normalize", choices=[n for n in NORMALIZATIONS if n],
                   help="per-video score normalisation (default: raw scores)")
    p.add_argument("--window", type=int, metavar="FRAMES", help="window of --normalize window")
    p.add_argument("--sigma", type=float, default=0.0, metavar="S",
                   help="Gaussian smoothing of the scores over time, in frames (default 0: none)")
    p.add_argument("--average", choices=("micro", "macro"), default="micro",
                   help="frame metrics over all frames (micro, default) or averaged per video (macro)")
    p.add_argument("--device", **device)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "watch", parents=common, help="score live cameras, streams or growing files: anomaly events",
        description="Score one or more live SOURCEs with a saved model in one process and write "
                    "anomaly events as JSON lines (--events). SOURCE: rtsp://, http(s):// and other "
                    "stream URLs, a webcam index (0), - (standard input), or a file (MPEG-TS, MKV, "
                    "MJPEG files are followed while they grow). An event opens when a score is above "
                    "the threshold (--open-after frames in a row) and closes after --close-after "
                    "frames at or below it. A status line per camera goes to stderr. Streams that "
                    "drop are reconnected with back-off; frames dropped because scoring lags "
                    "(oldest first) and reconnects are counted in the status and the events file. "
                    "SIGINT/SIGTERM close open events and finish the files. Frames are resized to "
                    "the model's training size unless --native-size.")
    p.add_argument("model", metavar="MODEL", help="a model file written by `vadx fit` or Detector.save")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="a stream URL, webcam index, - or file")
    p.add_argument("--events", metavar="JSONL", help="append the events here (JSON lines)")
    p.add_argument("--name", action="append", metavar="NAME",
                   help="camera name, once per SOURCE in order (default: from the source)")
    p.add_argument("--threshold", type=float, help="alarm threshold (default: the model's threshold_)")
    p.add_argument("--open-after", type=int, default=1, metavar="N",
                   help="frames above the threshold in a row that open an event (default 1)")
    p.add_argument("--close-after", type=int, default=10, metavar="N",
                   help="frames at or below it in a row that close an event (default 10)")
    p.add_argument("--record", metavar="DIR", help="write each camera's scored frames to DIR/<camera>.mp4")
    p.add_argument("--snapshots", metavar="DIR", help="write the frame at each event's peak to DIR")
    p.add_argument("--queue-size", type=int, default=64, metavar="FRAMES",
                   help="capture queue per camera; when full the oldest frame is dropped (default 64)")
    p.add_argument("--chunk-size", type=int, default=8, metavar="FRAMES",
                   help="the most frames scored per camera in one step (default 8)")
    p.add_argument("--max-reconnects", type=int, metavar="N",
                   help="give a camera up after N failed reconnects in a row (default: never)")
    p.add_argument("--idle-timeout", type=float, default=5.0, metavar="S",
                   help="a followed file has ended when it has not grown for S seconds (default 5)")
    p.add_argument("--fps", type=float, help="frame rate of the sources, where they do not "
                   "announce it or announce it wrongly (MJPEG over HTTP always says 25)")
    p.add_argument("--status-interval", type=float, metavar="S",
                   help="seconds between status lines (default: 1 on a terminal, else 30)")
    p.add_argument("--native-size", action="store_true",
                   help="score frames at their captured size, not the model's training size")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch threads for scoring (default: one less than the CPUs, at least 1)")
    p.add_argument("--grayscale", action="store_true",
                   help="read the sources as grey (default: as the model's training frames)")
    p.add_argument("--device", **device)
    p.set_defaults(func=_cmd_watch)

    p = sub.add_parser(
        "demo", parents=common, help="run every installed detector on a synthetic scene",
        description="Generate the synthetic scene (vadx.data.synthetic), fit every installed "
                    "detector on its normal clips, score its test clips and print frame AUC, EER "
                    "and frames/s per detector. Writes to DIR: scene.png (the test clips, anomalies "
                    "outlined), <detector>/<clip>.png score plots, an overlay video of the first "
                    "clip per detector, and results.json (the table). With no detector installed "
                    "it says how to get one, writes scene.png and results.json, and exits 0; a "
                    "detector that fails is shown as FAILED (exit 1 only if all fail).")
    p.add_argument("--out", default=DEMO_DIR, metavar="DIR",
                   help=f"output folder (default: ./{DEMO_DIR})")
    p.add_argument("--seed", type=int, default=0, help="the synthetic scene's seed (default 0)")
    p.add_argument("--detector", action="append", metavar="NAME",
                   help="run only this detector (repeatable; default: all installed)")
    p.add_argument("--device", **device)
    p.set_defaults(func=_cmd_demo)

    for sp in sub.choices.values():
        sp.set_defaults(parser=sp)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # --quiet silences every bar, the detectors' own training bars included
        from vadx import progress

        quiet = progress.silenced() if args.quiet else nullcontext()
        with warnings.catch_warnings(), quiet:
            warnings.showwarning = _show_warning
            return args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("vadx: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `vadx score ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as e:
        if args.debug:
            raise
        print(f"vadx: error: {_one_line(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
