"""The `vadx` command line: fit, score, evaluate, demo; exit codes and error messages.

Commands run in-process through ``vadx.cli.main`` (with the example plugin "frame-diff" from
tests/fixtures on the path), and through ``python -m vadx`` where the exit status and stderr of a
real process matter.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import make_video

import vadx
from vadx import io, progress
from vadx.cli import _key_value, main
from vadx.data import make_dataset
from vadx.metrics import Evaluator

PED2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "ucsd_ped2"  # ../shared beside the repo
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVALUATE_KEYS = {"detector", "dataset", "frame_auc", "frame_eer", "pixel_auc", "pixel_eer", "video_f1",
                 "fps", "n_frames", "n_videos", "threshold", "seconds", "options", "per_video", "plots"}


@pytest.fixture
def frame_diff(example_plugin_site, plugin_env):
    plugin_env(example_plugin_site)


@pytest.fixture
def bars(monkeypatch):
    """Every progress bar opened, as (description, allowed to show): vadx.progress's decision
    (a bar then appears where stderr is a terminal, which captured stderr is not)."""
    opened = []

    class Recording(progress.Bar):
        def __init__(self, total, desc, unit, show, leave):
            opened.append((desc, show))
            super().__init__(total, desc, unit, show, leave)

    monkeypatch.setattr(progress, "Bar", Recording)
    return opened


def _run(capsys, *argv):
    """main(argv) in-process: (exit status, stdout, stderr)."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _usage_error(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    return exc.value.code, capsys.readouterr().err


def _assert_png(path):
    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] > 50 and img.shape[1] > 50


def _videos(tmp_path):
    """Two normal training folders and one test folder with anomalous frames 20-22 and 40."""
    train = [io.write_frames(tmp_path / "train" / f"cam{i}", make_video(40, seed=i)) for i in (1, 2)]
    test = io.write_frames(tmp_path / "test" / "cam9", make_video(48, fast={20, 21, 22, 40}, seed=1))
    return train, test


def test_fit_then_score_writes_csv_overlay_and_plot(frame_diff, bars, tmp_path, capsys):
    train, test = _videos(tmp_path)
    model = tmp_path / "models" / "fd.vadx"
    rc, out, err = _run(capsys, "fit", "frame-diff", "--train", *train, "--set", "min_std=2",
                        "--set", "false_alarm_rate=0.05", "--out", model)
    assert rc == 0 and f"wrote {model}" in out and "fitted frame-diff on 2 videos (80 frames)" in out
    assert bars == [("fitting frame-diff", True)]  # the progress bar (stderr, on a terminal)
    bars.clear()

    det = vadx.load(model)  # safetensors + JSON whatever the extension
    assert det.min_std == 2 and det.false_alarm_rate == 0.05 and det.input_shape_[0] == 1

    rc, out, err = _run(capsys, "score", model, test, "--out", tmp_path / "s.csv", "--overlay",
                        tmp_path / "ov.mp4", "--plot", tmp_path / "p.png", "--quiet")
    assert rc == 0 and "%|" not in err  # --quiet: no progress bar
    assert bars == [("scoring with frame-diff", False)]
    assert f"wrote {tmp_path / 's.csv'}" in out and "threshold_" in out
    with open(tmp_path / "s.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["video", "frame", "score", "alarm"]
    assert [int(r["frame"]) for r in rows] == list(range(48))
    assert {r["video"] for r in rows} == {str(test)}
    expected = det.score(io.read_video(test)).frame.numpy()
    scores = np.array([float(r["score"]) for r in rows])
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    alarms = np.array([int(r["alarm"]) for r in rows])
    assert np.array_equal(alarms, (expected > det.threshold_).astype(int))
    assert alarms[[20, 21, 22, 40]].all() and alarms.sum() < 15

    _assert_png(tmp_path / "p.png")
    overlay = io.open_video(tmp_path / "ov.mp4")
    assert (tmp_path / "ov.mp4").stat().st_size > 0 and len(overlay) == 48


def test_score_several_inputs_csv_on_stdout_and_one_file_per_input(frame_diff, tmp_path, capsys):
    train, test = _videos(tmp_path)
    model = tmp_path / "m.safetensors"
    assert _run(capsys, "fit", "frame-diff", "--train", *train, "--out", model, "-q")[0] == 0
    rc, out, _ = _run(capsys, "score", model, train[0], test, "--plot", tmp_path / "plots" / "s.png",
                      "--overlay", tmp_path / "{name}-overlay.avi", "-q")
    assert rc == 0
    rows = list(csv.reader(out.splitlines()))
    assert rows[0] == ["video", "frame", "score", "alarm"] and len(rows) == 1 + 40 + 48
    assert [r[0] for r in rows[1:]] == [str(train[0])] * 40 + [str(test)] * 48
    for name in ("cam1", "cam9"):
        _assert_png(tmp_path / "plots" / f"s_{name}.png")
        assert (tmp_path / f"{name}-overlay.avi").stat().st_size > 0


def _training_bar(monkeypatch, seen):
    """Make frame-diff open its own training bar, as the paper detectors do, and record whether
    bars were enabled inside its _fit."""
    cls = vadx.plugins.get_detector("frame-diff").cls
    fit = cls._fit

    def _fit(self, videos, labels):
        seen.append(progress.enabled())
        with progress.bar(3, "training frame-diff", "epoch") as bar:
            for _ in range(3):
                bar.update(loss=0.5)
        return fit(self, videos, labels)

    monkeypatch.setattr(cls, "_fit", _fit)


def test_quiet_silences_the_detectors_own_bars_too(frame_diff, bars, tmp_path, monkeypatch, capsys):
    seen = []
    _training_bar(monkeypatch, seen)
    train, _ = _videos(tmp_path)
    assert _run(capsys, "fit", "frame-diff", "--train", *train, "--out", tmp_path / "a.vadx")[0] == 0
    assert seen == [True]
    assert bars == [("fitting frame-diff", True), ("training frame-diff", True)]
    for argv in (["fit", "frame-diff", "--train", *train, "--out", tmp_path / "b.vadx", "--quiet"],
                 ["-q", "fit", "frame-diff", "--train", *train, "--out", tmp_path / "c.vadx"]):
        seen.clear(), bars.clear()
        assert _run(capsys, *argv)[0] == 0
        assert seen == [False]
        assert bars == [("fitting frame-diff", False), ("training frame-diff", False)]
    assert progress.enabled()  # only for the command's duration


def _on_a_terminal(argv, env, cwd) -> str:
    """Run ``python -m vadx ARGV`` with stderr on a pseudo-terminal; what it wrote there."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    try:
        p = subprocess.Popen([sys.executable, "-m", "vadx", *map(str, argv)], env=env, cwd=cwd,
                             stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        assert p.wait(timeout=120) == 0
    finally:
        os.close(master)
    return b"".join(chunks).decode(errors="replace")


def test_bars_show_on_a_terminal_unless_quiet(example_plugin_site, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(example_plugin_site),
                                                       os.environ.get("PYTHONPATH", "")]))
    env.pop("VADX_LOAD_PLUGINS", None)
    env["VADX_DISABLE_PLUGINS"] = "vadx"
    train, _ = _videos(tmp_path)
    err = _on_a_terminal(["fit", "frame-diff", "--train", *train, "--out", "m.vadx"], env, tmp_path)
    assert "fitting frame-diff (pass 2): 100%|" in err and "160/160" in err
    err = _on_a_terminal(["fit", "frame-diff", "--train", *train, "--out", "m.vadx", "--quiet"],
                         env, tmp_path)
    assert err == ""


def test_set_values_are_json_when_they_parse():
    assert _key_value("k=3") == ("k", 3)
    assert _key_value("k=0.5") == ("k", 0.5)
    assert _key_value("k=true") == ("k", True)
    assert _key_value("k=null") == ("k", None)
    assert _key_value("size=[64, 64]") == ("size", [64, 64])
    assert _key_value('k="3"') == ("k", "3")
    assert _key_value("weights=/w/alexnet.pth") == ("weights", "/w/alexnet.pth")
    assert _key_value("k=a=b") == ("k", "a=b")


def _frames_dataset(root: Path) -> Path:
    """A tiny synthetic dataset in the frames-folder layout, with masks and a .npy label file."""
    ds = make_dataset(3, n_train=2, n_test=2, n_frames=30, height=60, width=80)
    for v in ds.train:
        io.write_frames(root / "training" / "frames" / v.name, v.read())
    for v in ds.test:
        io.write_frames(root / "testing" / "frames" / v.name, v.read())
        masks = root / "testing" / "masks" / v.name
        masks.mkdir(parents=True)
        for i, m in enumerate(v.masks.read()):
            cv2.imwrite(str(masks / f"{i:03d}.png"), m.astype(np.uint8) * 255)
    np.save(root / "labels.npy", np.concatenate([v.labels for v in ds.test]))
    return root


def test_evaluate_method_on_a_frames_dataset(frame_diff, tmp_path, capsys):
    root = _frames_dataset(tmp_path / "ds")
    rc, out, _ = _run(capsys, "evaluate", "frame-diff", "--dataset", "frames", "--root", root, "--json",
                      "--set", "min_std=1.5", "--plot-dir", tmp_path / "plots", "-q")
    assert rc == 0
    res = json.loads(out)
    assert set(res) == EVALUATE_KEYS
    assert (res["detector"], res["dataset"]) == ("frame-diff", "frames")
    assert (res["n_frames"], res["n_videos"]) == (60, 2)
    assert res["fps"] > 0 and res["seconds"]["fit"] > 0 and res["seconds"]["score"] > 0
    assert res["pixel_auc"] is not None and 0 <= res["pixel_eer"] <= 1
    o = res["options"]
    assert (o["average"], o["normalize"], o["sigma"], o["model"]) == ("micro", None, 0.0, None)
    assert o["params"]["min_std"] == 1.5 and o["dataset_layout"] == "frames"

    # the same numbers as fitting and evaluating through the Python API
    ds = vadx.data.load("frames", root)
    det = vadx.create("frame-diff", min_std=1.5).fit(ds.train)
    ev = Evaluator(threshold=det.threshold_)
    for v in ds.test:
        ev.add(det.score(v), v.labels, v.masks, name=v.name)
    want = ev.result()
    assert res["frame_auc"] == pytest.approx(want.frame_auc)
    assert res["threshold"] == pytest.approx(det.threshold_)
    assert res["pixel_auc"] == pytest.approx(want.pixel_auc) and res["video_f1"] == want.video_f1
    assert res["per_video"] == json.loads(json.dumps(want.per_video))
    assert sorted(Path(p).name for p in res["plots"]) == [f"{v.name}.png" for v in ds.test]
    for p in res["plots"]:
        _assert_png(p)

    # a saved model instead of a method; post-processing options are recorded; human-readable table
    model = tmp_path / "fd.vadx"
    det.save(model)
    rc, out, _ = _run(capsys, "evaluate", model, "--dataset", "frames", "--root", root, "--normalize",
                      "minmax", "--sigma", "2", "--average", "macro", "-q")
    assert rc == 0
    assert ("frame-diff on frames: 2 test videos, 60 frames (macro average, normalize minmax, "
            "sigma 2.0)") in out
    assert "frame AUC" in out and "pixel AUC" in out
    assert out.splitlines()[-1].split()[0] == ds.test[-1].name  # the per-video table
    code, err = _usage_error(capsys, "evaluate", model, "--dataset", "frames", "--root", root,
                             "--set", "min_std=3")
    assert code == 2 and "--set applies when fitting a METHOD" in err


def test_evaluate_on_real_ucsd_ped2_subset(frame_diff, tmp_path, capsys):
    """Real UCSD Ped2 frames: 2 training and 2 test videos (symlinked) with their official labels."""
    if not PED2.is_dir():
        pytest.skip(f"{PED2} not present")
    root = tmp_path / "ped2"
    for part, videos in (("training/frames", ("01", "02")), ("testing/frames", ("01", "02")),
                         ("testing/masks", ("01", "02"))):
        (root / part).mkdir(parents=True)
        for v in videos:
            os.symlink(PED2 / part / v, root / part / v, target_is_directory=True)
    (root / "UCSDped2.m").write_text("TestVideoFile = {};\nTestVideoFile{end+1}.gt_frame = [61:180];\n"
                                     "TestVideoFile{end+1}.gt_frame = [95:180];\n")
    rc, out, _ = _run(capsys, "evaluate", "frame-diff", "--dataset", "ucsd-ped2", "--root", root,
                      "--dataset-opt", "size=[120,180]", "--json", "-q")
    assert rc == 0
    res = json.loads(out)
    assert set(res) == EVALUATE_KEYS
    assert (res["dataset"], res["n_frames"], res["n_videos"]) == ("ucsd-ped2", 360, 2)
    assert [(r["name"], r["n_anomalous"]) for r in res["per_video"]] == [("01", 120), ("02", 86)]
    assert 0 <= res["frame_auc"] <= 1 and res["pixel_auc"] is not None and res["fps"] > 0
    assert res["options"]["dataset_options"]["size"] == [120, 180]
    assert res["options"]["dataset_options"]["grayscale"] is True  # UCSD is read as grey


def test_demo_with_the_example_plugin(frame_diff, tmp_path, capsys):
    out_dir = tmp_path / "demo"
    rc, out, _ = _run(capsys, "demo", "--out", out_dir, "--seed", "1", "-q")
    assert rc == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("DETECTOR"))
    assert lines[header].split() == ["DETECTOR", "FRAME", "AUC", "EER", "PIXEL", "AUC", "FRAMES/S",
                                     "FIT", "S"]
    row = lines[header + 1].split()
    assert row[0] == "frame-diff" and 0 <= float(row[1]) <= 1 and float(row[4]) > 0
    assert f"wrote to {out_dir}/" in out
    results = json.loads((out_dir / "results.json").read_text())
    assert results["dataset"]["seed"] == 1
    assert [d["detector"] for d in results["detectors"]] == ["frame-diff"]
    entry = results["detectors"][0]
    assert entry["error"] is None and float(row[1]) == pytest.approx(entry["frame_auc"], abs=5e-4)
    assert len(entry["plots"]) == 6
    for p in entry["plots"] + [out_dir / "scene.png"]:
        _assert_png(p)
    assert Path(entry["overlay"]).stat().st_size > 0


def test_demo_without_detectors(plugin_env, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("VADX_LOAD_PLUGINS", "")
    plugin_env()
    rc, out, err = _run(capsys, "demo", "--out", tmp_path / "demo", "-q")
    assert rc == 0, err
    assert "No detectors are installed" in out and "`vadx plugins`" in out
    assert "Writing a detector plugin" in out and str(tmp_path / "demo") in out
    _assert_png(tmp_path / "demo" / "scene.png")
    assert json.loads((tmp_path / "demo" / "results.json").read_text())["detectors"] == []


@pytest.mark.parametrize("argv,message", [
    (["fit", "nope", "--train", "x", "--out", "m.vadx"],
     "unknown detector 'nope'; installed: frame-diff"),
    (["fit", "frame-diff", "--train", "missing_dir", "--out", "m.vadx"],
     "training video (--train) not found: missing_dir"),
    (["fit", "frame-diff", "--train", "x", "--set", "colour=3", "--out", "m.vadx"],
     "detector 'frame-diff' has no parameter 'colour' (--set); its parameters: false_alarm_rate, "
     "chunk_size, "),
    (["fit", "frame-diff", "--train", "x", "--set", "min_std=-", "--out", "m.vadx"], None),
    (["score", "nothere.vadx", "x"], "model file not found: nothere.vadx"),
    (["evaluate", "frame-diff", "--dataset", "ucsd-ped2", "--root", "no_such_root"],
     "dataset root of ucsd-ped2 (--root) not found: no_such_root"),
    (["evaluate", "models/fd.vadx", "--dataset", "synthetic"], "model file not found: models/fd.vadx"),
    (["demo", "--detector", "nope"], "unknown detector 'nope' (--detector); installed: frame-diff"),
])
def test_runtime_errors_exit_1_with_one_line(frame_diff, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    io.write_frames(tmp_path / "x", make_video(5))
    rc, out, err = _run(capsys, *argv, "--quiet")
    assert rc == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("vadx: error: ")
    if message:
        assert message in err
    else:  # min_std="-" reaches the detector as a string and is refused
        assert "min_std" in err and "'-'" in err


def test_errors_name_the_stage_that_failed(frame_diff, tmp_path, monkeypatch, capsys):
    cls = vadx.plugins.get_detector("frame-diff").cls
    train, _ = _videos(tmp_path)
    fit = ["fit", "frame-diff", "--train", *train, "--out", tmp_path / "m.vadx", "-q"]
    monkeypatch.setattr(cls, "_fit", lambda self, videos, labels: {}["mean"])
    rc, _, err = _run(capsys, *fit)
    assert rc == 1 and err == ("vadx: error: fitting frame-diff: KeyError: mean (run with --debug "
                               "for the traceback)\n")
    with pytest.raises(KeyError) as exc:  # --debug: the detector's own exception, stage attached
        main([str(a) for a in fit] + ["--debug"])
    assert exc.value.vadx_stage == "fitting frame-diff"

    def fail(self, state, frames):
        raise ValueError("no such\nframe")

    monkeypatch.setattr(cls, "_update", fail)
    monkeypatch.setattr(cls, "_fit", lambda self, videos, labels: torch.zeros(3))  # threshold_ 0
    rc, _, err = _run(capsys, "evaluate", "frame-diff", "--dataset", "synthetic", "--dataset-opt",
                      "n_test=1", "--dataset-opt", "n_frames=20", "-q")
    assert rc == 1 and err == "vadx: error: scoring test01_appearance with frame-diff: no such; frame\n"


def test_dataset_layout_errors_are_one_line(frame_diff, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc, _, err = _run(capsys, "evaluate", "frame-diff", "--dataset", "ucsd-ped2", "--root",
                      tmp_path / "empty")
    assert rc == 1 and err.count("\n") == 1
    assert "does not hold the ucsd-ped2 dataset" in err and "Expected (relative to the root): " in err


@pytest.mark.parametrize("argv,message", [
    (["fit", "frame-diff", "--train", "x"], "the following arguments are required: --out"),
    (["fit", "frame-diff", "--train", "x", "--out", "m", "--set", "min_std"],
     "argument --set: expected KEY=VALUE"),
    (["evaluate", "frame-diff", "--dataset", "ped3", "--root", "."],
     "argument --dataset: invalid choice: 'ped3'"),
    (["evaluate", "frame-diff", "--dataset", "ucsd-ped2"],
     "--root PATH is required for --dataset ucsd-ped2"),
    (["evaluate", "frame-diff", "--dataset", "synthetic", "--normalize", "window"], "--window FRAMES"),
    (["score", "m.vadx", "x", "--overlay", "o.gif"], "argument --overlay: the file must end in one of"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_usage_errors_exit_2(frame_diff, capsys, argv, message):
    code, err = _usage_error(capsys, *argv)
    assert code == 2 and message in err and "usage: vadx" in err


def test_debug_raises_instead_of_one_line(frame_diff, capsys):
    with pytest.raises(LookupError, match="unknown detector 'nope'"):
        main(["--debug", "fit", "nope", "--train", "x", "--out", "m"])
    with pytest.raises(LookupError):
        main(["fit", "nope", "--train", "x", "--out", "m", "--debug"])  # after the command too


def test_exit_codes_of_the_real_process(example_plugin_site, tmp_path):
    path = os.pathsep.join([str(example_plugin_site), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    env.pop("VADX_LOAD_PLUGINS", None)
    env["VADX_DISABLE_PLUGINS"] = "vadx"  # first-party plugins: only the example is "installed"

    def run(*args):
        return subprocess.run([sys.executable, "-m", "vadx", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True)

    p = run("evaluate", "nope", "--dataset", "synthetic")
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.splitlines() == [
        "vadx: error: unknown detector 'nope'; installed: frame-diff. `vadx plugins` lists plugins "
        "and their detectors."]
    p = run("--debug", "evaluate", "nope", "--dataset", "synthetic")
    assert p.returncode == 1 and "Traceback (most recent call last)" in p.stderr
    assert p.stderr.rstrip().splitlines()[-1].startswith("LookupError: unknown detector 'nope'")
    p = run("evaluate", "frame-diff")
    assert p.returncode == 2 and "the following arguments are required: --dataset" in p.stderr


def test_progress_off_a_terminal_is_a_line_per_stage(example_plugin_site, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(example_plugin_site),
                                                       os.environ.get("PYTHONPATH", "")]))
    env.pop("VADX_LOAD_PLUGINS", None)
    env["VADX_DISABLE_PLUGINS"] = "vadx"
    train, _ = _videos(tmp_path)
    argv = [sys.executable, "-m", "vadx", "fit", "frame-diff", "--train", *map(str, train), "--out", "m.vadx"]
    p = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True)  # stderr: a pipe
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert "\r" not in p.stderr and len(lines) <= 6
    assert lines[0] == "vadx: fitting frame-diff: started (80 frames)"
    assert lines[-1].startswith("vadx: fitting frame-diff (pass 2): done in ")
    assert lines[-1].endswith(" s, 160/160 frames")
    p = subprocess.run(argv + ["--quiet"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr == ""
