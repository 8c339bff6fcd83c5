"""Issue 21 part A, "Nothing lost, nothing crashes": each test is named after the failure it
guards against, probed as an attacker or a careless user would.

1. outputs never overwrite inputs, and are written atomically (vadx.outputs, the CLI, vadx.io);
2. a loaded model owns its tensors (the file is not memory-mapped);
4. crafted model files fail with ModelFileError naming the file and the field, before any
   allocation the file's tensors do not justify;
5. a plugin calling sys.exit() (or registering wrongly) is reported, the host goes on;
8. model files honour the umask, and symlinks at the destination are written through unless
   replace_symlink=True.
"""

import json
import os
import re
import stat
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_dist, make_video
from safetensors.torch import save as st_save

import vadx
from vadx import evaluation, io, model_file, outputs, plugins
from vadx.cli import main

WIDE_DETECTOR = '''
import torch, vadx

class Wide(vadx.Detector):
    """A linear map whose size is a fitted JSON value, as real detectors size their networks."""
    name = "wide"

    def __init__(self, *, gain: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.gain = gain

    @property
    def summary_(self):  # a name a model file must not be able to overwrite
        return "wide"

    def _fit(self, videos, labels):
        self.width_ = 2
        self._build_modules()
        return torch.cat([c.float().mean(dim=(1, 2, 3)) for v in videos for c in v]) * self.gain

    def _build_modules(self):
        self.proj_ = torch.nn.Linear(self.width_, self.width_)

    def _update(self, state, frames):
        return vadx.Scores(frames.float().mean(dim=(1, 2, 3)) * self.gain)

@vadx.hookimpl
def vadx_register_detectors(register):
    register(Wide)
'''


@pytest.fixture
def wide(plugin_env, tmp_path):
    make_dist(tmp_path / "site", "vadx-wide", "1.0", {"wide": "wide_mod"}, {"wide_mod.py": WIDE_DETECTOR})
    plugin_env(tmp_path / "site")
    det = vadx.create("wide").fit([make_video(10)])
    path = tmp_path / "wide.vadx"
    det.save(path)
    return det, path


@pytest.fixture
def frame_diff(example_plugin_site, plugin_env):
    plugin_env(example_plugin_site)


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _leftovers(folder: Path) -> list[str]:
    """Temporary files an atomic write left behind (there must be none)."""
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


@pytest.fixture
def scene(frame_diff, tmp_path, capsys):
    """A fitted frame-diff model file and a test video file, both in tmp_path."""
    train = io.write_frames(tmp_path / "train", make_video(30, seed=1))
    cam = io.write_video(tmp_path / "cam.mp4", make_video(20, fast={10}, seed=1), fps=10)
    model = tmp_path / "m.vadx"
    assert _run(capsys, "fit", "frame-diff", "--train", train, "--out", model)[0] == 0
    return model, cam, train


# ---------------------------------------------------------------------------- 1. outputs
@pytest.mark.parametrize("flag,target,input_label", [
    ("--out", "model", "MODEL"),        # was: SIGBUS, model left at 0 bytes
    ("--out", "cam", "INPUT"),          # was: the footage replaced by a CSV header
    ("--overlay", "cam", "INPUT"),      # was: the footage replaced by an overlay
    ("--plot", "model", "MODEL"),       # was: the model replaced by a PNG
])
def test_score_output_that_is_an_input_is_refused(scene, capsys, flag, target, input_label):
    model, cam, _ = scene
    path = {"model": model, "cam": cam}[target]
    before = {p: p.read_bytes() for p in (model, cam)}
    rc, _, err = _run(capsys, "score", model, cam, flag, path)
    assert rc == 1
    assert f"{flag} {path} is the same file as {input_label} {path}" in err
    assert {p: p.read_bytes() for p in (model, cam)} == before


@pytest.mark.parametrize("spelling", ["hardlink", "symlink", "dotdot"])
def test_score_output_is_compared_by_inode_not_by_name(scene, capsys, tmp_path, spelling):
    model, cam, _ = scene
    other = tmp_path / "other"
    other.mkdir()
    if spelling == "hardlink":
        out = other / "link.mp4"
        os.link(cam, out)
    elif spelling == "symlink":
        out = other / "link.mp4"
        out.symlink_to(cam)
    else:  # a folder that does not exist yet: "new/../cam.mp4" is cam.mp4 once it is created
        out = tmp_path / "new" / ".." / "cam.mp4"
    before = cam.read_bytes()
    rc, _, err = _run(capsys, "score", model, cam, "--overlay", out)
    assert rc == 1 and "is the same file as INPUT" in err and "--overlay" in err
    assert cam.read_bytes() == before


def test_fit_out_that_is_a_training_video_is_refused(frame_diff, tmp_path, capsys):
    cam = io.write_video(tmp_path / "cam.mp4", make_video(20, seed=2), fps=10)
    before = cam.read_bytes()
    rc, _, err = _run(capsys, "fit", "frame-diff", "--train", cam, "--out", cam)
    assert rc == 1 and f"--out {cam} is the same file as --train {cam}" in err
    assert cam.read_bytes() == before


def test_output_inside_an_input_frame_folder_is_refused(scene, capsys):
    model, _, train = scene
    rc, _, err = _run(capsys, "score", model, train, "--plot", train / "scores.png")
    assert rc == 1 and "is inside the input folder INPUT" in err
    assert not (train / "scores.png").exists()


def test_two_outputs_that_are_one_file_are_refused(scene, capsys, tmp_path):
    model, cam, _ = scene
    rc, _, err = _run(capsys, "score", model, cam, "--out", tmp_path / "x.mp4", "--overlay", tmp_path / "x.mp4")
    assert rc == 1 and "are the same file" in err and not (tmp_path / "x.mp4").exists()


def test_failed_score_keeps_the_previous_csv(scene, capsys, tmp_path, monkeypatch):
    """--out used to be truncated before scoring: a later failing input left a short CSV."""
    model, cam, _ = scene
    results = tmp_path / "results.csv"
    results.write_text("previous results\n")
    real, calls = evaluation.score, []

    def fail_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("decoder crashed")
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "score", fail_on_second)
    rc, _, err = _run(capsys, "score", model, cam, cam, "--out", results, "--plot", tmp_path / "p.png")
    assert rc == 1 and "decoder crashed" in err
    assert results.read_text() == "previous results\n"
    assert _leftovers(tmp_path) == []
    monkeypatch.setattr(evaluation, "score", real)
    assert _run(capsys, "score", model, cam, "--out", results)[0] == 0
    assert results.read_text().startswith("video,frame,score,alarm")


def test_failed_overlay_and_plot_leave_the_previous_file(tmp_path):
    video = make_video(6)
    old = tmp_path / "overlay.mp4"
    old.write_bytes(b"previous")
    with pytest.raises(ValueError, match="video has 6 frames but scores has 7"):
        io.write_overlay(old, video, torch.zeros(7))
    assert old.read_bytes() == b"previous"
    plot = tmp_path / "plot.png"
    plot.write_bytes(b"previous")
    with pytest.raises(ValueError):
        io.plot_scores(plot, torch.zeros(6), fps=-1)
    assert plot.read_bytes() == b"previous" and _leftovers(tmp_path) == []
    io.write_overlay(old, video, torch.zeros(6))
    assert old.read_bytes() != b"previous"


def test_atomic_open_removes_the_temporary_file_on_error(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with pytest.raises(KeyboardInterrupt):
        with outputs.atomic_open(target) as f:
            f.write("partial")
            raise KeyboardInterrupt
    assert not target.exists() and _leftovers(target.parent) == []
    with outputs.atomic_open(target) as f:
        f.write("complete")
    assert target.read_text() == "complete"


# ---------------------------------------------------------------------------- 2. memory-mapping
OWNS = '''
import os, sys, torch, vadx

class Big(vadx.Detector):
    name = "big"
    def _fit(self, videos, labels):
        self.table_ = torch.arange(1 << 20, dtype=torch.float32)
        return torch.cat([c.float().mean(dim=(1, 2, 3)) for v in videos for c in v])
    def _update(self, state, frames):
        return vadx.Scores(frames.float().mean(dim=(1, 2, 3)) + self.table_[0])

a, b = sys.argv[1], sys.argv[2]
video = torch.randint(0, 255, (8, 1, 16, 16), dtype=torch.uint8)
Big().fit([video]).save(a)
other = Big().fit([video])
other.table_ += 1
other.save(b)
det = vadx.load(a, cls=Big)
expected = det.score(video).frame.clone()
with open(a, "r+b") as f:            # cp / rsync --inplace: new bytes in the same inode
    f.write(open(b, "rb").read())
assert torch.equal(det.score(video).frame, expected), "weights changed with the file"
os.truncate(a, 100)                 # a shorter file: SIGBUS if the tensors were mapped
assert torch.equal(det.score(video).frame, expected) and float(det.table_.sum()) > 0
print("ok")
'''


def test_loaded_model_owns_its_tensors(tmp_path):
    """Run in a child process: a mapped file shortened under it dies of SIGBUS."""
    script = tmp_path / "owns.py"
    script.write_text(OWNS)
    p = subprocess.run([sys.executable, str(script), str(tmp_path / "a.vadx"), str(tmp_path / "b.vadx")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", (p.returncode, p.stderr[-2000:])


# ---------------------------------------------------------------------------- 4. crafted files
def _file(path: Path, header, tensors=None, raw_meta: str | None = None) -> Path:
    """A safetensors file with ``header`` as its vadx metadata (or ``raw_meta`` verbatim)."""
    tensors = {"decision_scores_": torch.zeros(4)} if tensors is None else tensors
    meta = raw_meta if raw_meta is not None else json.dumps(header)
    path.write_bytes(st_save(tensors, metadata={"vadx": meta}))
    return path


def _header(path: Path) -> dict:
    return model_file.read_header(path)


def test_crafted_size_is_refused_before_allocating(wide, tmp_path):
    """A 288-byte file declaring a huge fitted size used to allocate gigabytes on load."""
    _, good = wide
    header = _header(good)
    header["fitted"]["width_"] = 100_000  # nn.Linear(100000, 100000): 40 GB of float32
    crafted = _file(tmp_path / "crafted.vadx", header)
    assert crafted.stat().st_size < 1000
    with pytest.raises(vadx.ModelFileError, match=r"crafted.vadx: the module 'proj_' needs the "
                                                  r"tensor 'proj_.bias', which the file lacks"):
        vadx.load(crafted)
    # with tensors present but of the wrong shape: refused by shape, still nothing allocated
    state = {"proj_.weight": torch.zeros(2, 2), "proj_.bias": torch.zeros(2)}
    crafted = _file(tmp_path / "crafted2.vadx", header, {"decision_scores_": torch.zeros(4), **state})
    with pytest.raises(vadx.ModelFileError, match=r"field 'tensors.proj_.weight' must have the "
                                                  r"shape \[100000, 100000\].*got \[2, 2\]"):
        vadx.load(crafted)


def test_crafted_sparse_rnn_feature_dim_is_refused():
    """The issue's own example: sparse-rnn's coders sized by feature_dim_ = 100000."""
    from vadx_sparse_rnn import TSC

    header = {"format": "vadx.detector", "format_version": 1, "detector": "tsc",
              "plugin": TSC._vadx_plugin_of(), "params": {"weights": "random"},
              "fitted": {"threshold_": 1.0, "feature_dim_": 100_000, "backbone_kwargs_": {}}}
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"vadx-crafted-{os.getpid()}.vadx"
    try:
        _file(path, header)
        with pytest.raises(vadx.ModelFileError, match=str(path)):
            vadx.load(path, cls=TSC)
    finally:
        path.unlink(missing_ok=True)


def test_files_without_tensors_or_threshold_are_refused(wide, tmp_path):
    _, good = wide
    header = _header(good)
    with pytest.raises(vadx.ModelFileError, match=r"the tensor 'decision_scores_' .* is missing"):
        vadx.load(_file(tmp_path / "empty.vadx", header, tensors={}))
    del header["fitted"]["threshold_"]
    with pytest.raises(vadx.ModelFileError, match=r"field 'fitted.threshold_' must be a finite number .*, got None"):
        vadx.load(_file(tmp_path / "nothreshold.vadx", header))
    header["fitted"]["threshold_"] = float("nan")
    with pytest.raises(vadx.ModelFileError, match=r"field 'fitted.threshold_' must be a finite number .*, got nan"):
        vadx.load(_file(tmp_path / "nanthreshold.vadx", header))


def _malformed(good: dict):
    """(description, header or raw metadata, expected message) for each malformed header."""
    def edit(**changes):
        h = json.loads(json.dumps(good))
        for k, v in changes.items():
            if "." in k:
                outer, inner = k.split(".")
                h[outer][inner] = v
            else:
                h[k] = v
        return h

    deep = "[" * 100_000 + "]" * 100_000
    return [
        ("header is a list", [1, 2], r"field 'vadx' must be a JSON object"),
        ("params is a list", edit(params=[1]), r"field 'params' must be a JSON object"),
        ("fitted is a string", edit(fitted="x"), r"field 'fitted' must be a JSON object"),
        ("plugin is a string", edit(plugin="vadx-wide"), r"field 'plugin' must be null or an object"),
        ("plugin version is a number", edit(**{"plugin.version": 3}), r"field 'plugin.version' must be a string or null"),
        ("NaN format version", edit(format_version=float("nan")), r"field 'format_version' must be an integer"),
        ("format version as text", edit(format_version="1"), r"field 'format_version' must be an integer"),
        ("detector is a number", edit(detector=7), r"field 'detector' must be a detector name"),
        ("deeply nested JSON", None, r"field 'vadx' is not valid JSON: RecursionError"),
        ("nested fitted value", edit(**{"fitted.deep_": json.loads("[" * 40 + "]" * 40)}),
         r"field 'fitted.deep_' must be nested at most 32 deep"),
        ("fitted sets a method", edit(**{"fitted.score": 1}), r"field 'fitted.score' must be a fitted attribute name"),
        ("fitted sets a property", edit(**{"fitted.summary_": "x"}), r"field 'summary_' names an attribute Wide defines"),
        ("fitted sets a parameter", edit(**{"fitted.gain": 2}), r"field 'fitted.gain' must be a fitted attribute name"),
        ("unknown parameter", edit(**{"params.bogus": 1}), r"field 'params.bogus' is not a parameter of Wide"),
        ("invalid parameter", edit(**{"params.chunk_size": -1}), r"field 'params' is not valid for Wide: .*chunk_size"),
        ("bad input shape", edit(**{"fitted.input_shape_": [1, -5]}), r"field 'fitted.input_shape_' must be null or \[C, H, W\]"),
    ], deep


def test_malformed_headers_raise_model_file_error(wide, tmp_path):
    """They used to raise AttributeError, TypeError, KeyError or RecursionError."""
    _, good = wide
    cases, deep = _malformed(_header(good))
    for i, (what, header, expected) in enumerate(cases):
        path = tmp_path / f"bad{i}.vadx"
        _file(path, header, raw_meta=deep if header is None else None)
        with pytest.raises(vadx.ModelFileError, match=expected) as exc:
            vadx.load(path)
        assert str(path) in str(exc.value), what


def test_malformed_tensor_tables_raise_model_file_error(wide, tmp_path):
    _, good = wide
    data = good.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    table = json.loads(data[8:8 + n])

    def rewrite(name, table, tail=None):
        raw = json.dumps(table).encode()
        path = tmp_path / name
        path.write_bytes(struct.pack("<Q", len(raw)) + raw + (data[8 + n:] if tail is None else tail))
        return path

    t = json.loads(json.dumps(table))
    t["decision_scores_"]["data_offsets"][1] += 10 ** 12
    with pytest.raises(vadx.ModelFileError, match=r"field 'tensors.decision_scores_.data_offsets' must be"):
        vadx.load(rewrite("offsets.vadx", t))
    t = json.loads(json.dumps(table))
    t["decision_scores_"]["dtype"] = "PICKLE"
    with pytest.raises(vadx.ModelFileError, match=r"field 'tensors.decision_scores_.dtype' must be one of"):
        vadx.load(rewrite("dtype.vadx", t))
    t = json.loads(json.dumps(table))
    t["score"] = t.pop("decision_scores_")  # a tensor that would replace the method
    with pytest.raises(vadx.ModelFileError, match=r"field 'tensors.score' must be named"):
        vadx.load(rewrite("method.vadx", t))
    huge = tmp_path / "huge-header.vadx"
    huge.write_bytes(struct.pack("<Q", 2 ** 62) + b"{}")
    with pytest.raises(vadx.ModelFileError, match=r"header length .* over vadx.model_file.MAX_HEADER_BYTES"):
        vadx.load(huge)
    cut = tmp_path / "cut.vadx"
    cut.write_bytes(data[:8 + n // 2])
    with pytest.raises(vadx.ModelFileError, match=r"header length \d+ bytes, but the file has"):
        vadx.load(cut)
    with pytest.raises(vadx.ModelFileError, match=r"field 'tensors.decision_scores_.data_offsets'"):
        vadx.load(rewrite("no-data.vadx", table, tail=b""))


def _rewrite_table(good: Path, path: Path, edit) -> Path:
    """A copy of the model file ``good`` whose safetensors tensor table ``edit(table)`` changed."""
    data = good.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    table = json.loads(data[8:8 + n])
    edit(table)
    raw = json.dumps(table).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])
    return path


@pytest.mark.parametrize("dtype", [["F32"], {"F32": 1}, []])
def test_tensor_table_dtype_that_is_a_list_or_dict_raises_model_file_error(wide, tmp_path, dtype):
    """A list or dict as a tensor's dtype raised TypeError: unhashable type (fuzz: 58 cases)."""
    _, good = wide
    path = _rewrite_table(good, tmp_path / "dtype.vadx",
                          lambda t: t["proj_.weight"].__setitem__("dtype", dtype))
    with pytest.raises(vadx.ModelFileError, match=r"dtype.vadx: field 'tensors.proj_.weight.dtype' "
                                                  r"must be one of F64, F32, .*, got " + re.escape(repr(dtype))):
        vadx.load(path)


@pytest.mark.parametrize("shape", [[2 ** 63, 8, 8], [3, 8, 2 ** 63], [3, model_file.MAX_FRAME_SIDE + 1, 8],
                                   [2, 8, 8], [0, 8, 8], [3, 8, 8.0], [3, True, 8], [3, 8], "3x8x8"])
def test_crafted_input_shape_is_refused_at_load(wide, tmp_path, shape):
    """fitted.input_shape_ = [2**63, ...] loaded, then score() raised KeyError: 2**63."""
    _, good = wide
    header = _header(good)
    header["fitted"]["input_shape_"] = shape
    path = _file(tmp_path / "shape.vadx", header, model_file.read(good)[1])
    with pytest.raises(vadx.ModelFileError, match=r"shape.vadx: field 'fitted.input_shape_' must be "
                                                  r"null or \[C, H, W\] with C = 1 or 3 and H, W integers "
                                                  r"from 1 to 65536 \(vadx.model_file.MAX_FRAME_SIDE\), "
                                                  r"got " + re.escape(repr(shape))):
        vadx.load(path)


def test_input_shape_at_the_limit_loads(wide, tmp_path):
    det, good = wide
    header = _header(good)
    side = model_file.MAX_FRAME_SIDE
    header["fitted"]["input_shape_"] = [1, side, side]
    loaded = vadx.load(_file(tmp_path / "limit.vadx", header, model_file.read(good)[1]))
    assert loaded.input_shape_ == [1, side, side] and loaded.threshold_ == det.threshold_


def test_model_of_another_plugin_distribution_is_refused(wide, tmp_path):
    """A file saved by one plugin used to load into another plugin's same-named class."""
    det, good = wide
    header = _header(good)
    header["plugin"]["distribution"] = "vadx-evil"
    _, tensors = model_file.read(good)
    other = _file(tmp_path / "other.vadx", header, tensors)
    with pytest.raises(vadx.ModelFileError, match=r"saved by the plugin distribution vadx-evil, but "
                                                  r"'wide' is provided by vadx-wide"):
        vadx.load(other)
    loaded = vadx.load(other, allow_other_plugin=True)
    assert loaded.threshold_ == det.threshold_ and torch.equal(loaded.proj_.weight, det.proj_.weight)


# ---------------------------------------------------------------------------- 5. plugins
@pytest.mark.parametrize("module", [
    "import sys\nsys.exit(3)\n",
    "import sys, vadx\n@vadx.hookimpl\ndef vadx_register_detectors(register):\n    sys.exit(3)\n",
])
def test_plugin_calling_sys_exit_is_reported_and_the_host_goes_on(example_plugin_site, plugin_env,
                                                                  tmp_path, capsys, module):
    make_dist(tmp_path, "vadx-quitter", "1.0", {"quitter": "quitter_mod"}, {"quitter_mod.py": module})
    with pytest.warns(vadx.PluginWarning, match="quitter"):
        plugin_env(tmp_path, example_plugin_site)
    found = {p.name: p for p in plugins.list_plugins()}
    assert "SystemExit: 3" in found["quitter"].error
    assert found["frame_diff"].detectors == ["frame-diff"]
    rc, out, _ = _run(capsys, "plugins")
    assert rc == 0 and "FAILED" in out and "frame-diff" in out


def test_wrapper_hook_is_reported(example_plugin_site, plugin_env, tmp_path):
    module = ("import vadx\nclass D(vadx.Detector):\n    name = 'wrapped'\n"
              "@vadx.hookimpl(wrapper=True)\ndef vadx_register_detectors(register):\n"
              "    register(D)\n    return (yield)\n")
    make_dist(tmp_path, "vadx-wrapped", "1.0", {"wrapped": "wrapped_mod"}, {"wrapped_mod.py": module})
    with pytest.warns(vadx.PluginWarning, match="wrapper hook"):
        plugin_env(tmp_path, example_plugin_site)
    found = {p.name: p for p in plugins.list_plugins()}
    assert "declared as a wrapper hook" in found["wrapped"].error
    assert "wrapped" not in vadx.list_detectors() and "frame-diff" in vadx.list_detectors()


def test_one_module_under_two_entry_points_is_reported(plugin_env, tmp_path):
    module = ("import vadx\nclass D(vadx.Detector):\n    name = 'twice'\n"
              "@vadx.hookimpl\ndef vadx_register_detectors(register):\n    register(D)\n")
    make_dist(tmp_path, "vadx-twice", "1.0", {"a_twice": "twice_mod", "b_twice": "twice_mod"},
              {"twice_mod.py": module})
    with pytest.warns(vadx.PluginWarning, match="already loaded as plugin 'a_twice'"):
        plugin_env(tmp_path)
    found = {p.name: p for p in plugins.list_plugins()}
    assert found["a_twice"].error is None and found["a_twice"].detectors == ["twice"]
    assert "already loaded as plugin 'a_twice'" in found["b_twice"].error
    assert plugins.get_detector("twice").plugin == "a_twice"
    assert plugins.pm.get_plugin("a_twice") is not None  # the first registration is intact


# ---------------------------------------------------------------------------- 8. modes, symlinks
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_models_honour_the_umask(wide, tmp_path, umask):
    det, _ = wide
    old = os.umask(umask)
    try:
        det.save(tmp_path / "new.vadx")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "new.vadx").stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


def test_saving_over_a_file_keeps_its_mode(wide, tmp_path):
    det, path = wide
    path.chmod(0o640)
    det.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_symlink_at_the_destination_is_written_through_unless_replace_symlink(wide, tmp_path):
    det, _ = wide
    target = tmp_path / "models" / "v1.vadx"
    target.parent.mkdir()
    target.write_bytes(b"old model")
    link = tmp_path / "latest.vadx"
    link.symlink_to(target)
    det.save(link)  # as open(link, "w") would: the link stays, its target gets the model
    assert link.is_symlink() and vadx.load(link).threshold_ == det.threshold_
    assert target.read_bytes() != b"old model"
    target.write_bytes(b"old model")
    det.save(link, replace_symlink=True)  # the link itself becomes the model file
    assert not link.is_symlink() and target.read_bytes() == b"old model"
    assert vadx.load(link).threshold_ == det.threshold_
    assert _leftovers(tmp_path) == [] and _leftovers(target.parent) == []


def test_model_file_survives_a_failed_save(wide, tmp_path):
    det, path = wide
    before = path.read_bytes()
    det.bad_ = object()  # not saveable: the write fails before renaming
    with pytest.raises(TypeError, match="must be tensors, nn.Modules or JSON values"):
        det.save(path)
    assert path.read_bytes() == before and _leftovers(tmp_path) == []
    np.testing.assert_equal(vadx.load(path).threshold_, det.threshold_)


def test_outputs_module_needs_nothing_of_vadx():
    """vadx.model_file uses vadx.outputs below the contract: it must import only the stdlib."""
    code = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("o", {str(Path(outputs.__file__))!r})
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
        print(any(m == "vadx" or m.startswith("vadx.") for m in sys.modules))
    """)
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_evaluate_plot_dir_inside_the_dataset_is_refused(frame_diff, tmp_path, capsys):
    """Plots written into a frames folder would be read as frames of that video next time."""
    from vadx.data import make_dataset

    ds = make_dataset(3, n_train=1, n_test=1, n_frames=20, height=60, width=60)
    root = tmp_path / "ds"
    io.write_frames(root / "training" / "frames" / "01", ds.train[0].read())
    io.write_frames(root / "testing" / "frames" / "01", ds.test[0].read())
    np.save(root / "labels.npy", ds.test[0].labels)
    inside = root / "testing" / "frames" / "01"
    before = sorted(p.name for p in inside.iterdir())
    rc, _, err = _run(capsys, "evaluate", "frame-diff", "--dataset", "frames", "--root", root,
                      "--plot-dir", inside)
    assert rc == 1 and f"is inside the input folder --root {root}" in err
    assert sorted(p.name for p in inside.iterdir()) == before


def test_read_only_destination_is_refused_as_open_would(wide, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root may write any file")
    det, path = wide
    path.chmod(0o444)
    before = path.read_bytes()
    with pytest.raises(PermissionError, match="is not writable"):
        det.save(path)
    assert path.read_bytes() == before
