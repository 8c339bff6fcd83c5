"""The README's promises: the CI script runs its test command verbatim, and the plugin guide is
the example plugin that tests/test_plugins.py installs, line for line."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def _code_blocks():
    return re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    commands = [b.strip() for b in _code_blocks() if b.strip().endswith("&& pytest")]
    assert len(commands) == 1
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[0] in ci, ".ci/run must run the README's test command verbatim"


def test_plugin_guide_is_the_fixture_line_for_line():
    blocks = _code_blocks()
    for name in ("pyproject.toml", "vadx_frame_diff.py", "tests/test_frame_diff.py"):
        text = (ROOT / "tests" / "fixtures" / "vadx-frame-diff" / name).read_text()
        assert text in blocks, f"README's {name} differs from tests/fixtures/vadx-frame-diff/{name}"


# ---------------------------------------------------------------- the examples run as written
SETUP_MARK = "python3 -m venv"  # set-up lines: checked for syntax here, run by .ci/run itself
SLOW = ("vadx demo",)  # every installed detector: tested by tests/test_cli.py's demo test


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _tiny_data(root):
    """What the examples read, generated small: videos, a frames-folder dataset, weights."""
    import cv2
    import numpy as np
    import torch
    from helpers import make_video

    import vadx.io
    from vadx.features import load_backbone

    def frames_dir(folder, video):
        folder.mkdir(parents=True)
        for i, f in enumerate(video[:, 0].numpy()):  # colour, as the mp4 files decode
            cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))

    (root / "cam").mkdir()
    vadx.io.write_video(root / "cam" / "mon.mp4", make_video(24, H=32, W=48, seed=1), fps=10)
    frames_dir(root / "cam" / "tue", make_video(24, H=32, W=48, seed=2))
    vadx.io.write_video(root / "cam" / "wed.mp4", make_video(24, H=32, W=48, fast={10, 11, 12}, seed=3),
                        fps=10)
    labels = []
    for name in ("data/ucsd_ped2", "labelled"):
        for i in (1, 2):
            frames_dir(root / name / "training" / "frames" / f"{i:02d}", make_video(20, H=32, W=48, seed=i))
        for i, fast in ((1, {8, 9, 10}), (2, {12, 13, 14})):
            frames_dir(root / name / "testing" / "frames" / f"{i:02d}",
                       make_video(20, H=32, W=48, fast=fast, seed=10 + i))
            labels.append(np.isin(np.arange(20), sorted(fast)).astype(np.uint8))
        np.save(root / name / "labels.npy", np.concatenate(labels[-2:]))
    (root / "weights").mkdir()
    torch.save(load_backbone("resnet50", "random").state_dict(), root / "weights" / "resnet50-mine.pth")


def test_readme_python_examples_run_as_written(tmp_path):
    """The README's Python blocks, in order in one interpreter as a reader would run them; only
    the names they leave to the reader (videos, a camera) are defined first."""
    examples = [b for b in _blocks("python") if "def vadx_register_detectors" not in b
                and "check_detector(FrameDiff" not in b]
    assert len(examples) == 4
    _tiny_data(tmp_path)
    given = ("import sys; sys.path.insert(0, %r)\n"
             "from helpers import make_video\n"
             "train_video_1, train_video_2 = make_video(24, H=32, W=48, seed=1), make_video(24, H=32, W=48, seed=2)\n"
             "test_video = make_video(24, H=32, W=48, fast={10, 11}, seed=3)\n"
             "camera_chunks = [test_video[:8], test_video[8:]]\n") % str(Path(__file__).parent)
    script = tmp_path / "examples.py"
    script.write_text(given + "\n".join(examples))
    env = {**os.environ, "VADX_WEIGHTS_DIR": str(tmp_path / "weights"), "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_readme_commands_run_as_written(tmp_path):
    lines = [ln.split("#")[0].strip() for b in _blocks("bash") for ln in b.splitlines()]
    lines = [ln for ln in lines if ln]
    setup = [ln for ln in lines if ln.startswith(SETUP_MARK)]
    commands = [ln for ln in lines if not ln.startswith(SETUP_MARK)]
    assert len(setup) == 2 and len(commands) == 7
    for ln in setup:  # syntax only: .ci/run runs the test one verbatim
        assert subprocess.run(["bash", "-n", "-c", ln]).returncode == 0, ln
    _tiny_data(tmp_path)
    vadx_cli = [sys.executable, "-m", "vadx"]
    for ln in commands:
        argv = shlex.split(ln)
        assert argv[0] == "vadx", ln
        if ln in SLOW:
            argv = argv + ["--help"]
        done = subprocess.run(vadx_cli + argv[1:] + ([] if ln in SLOW else ["--quiet"]), cwd=tmp_path,
                              capture_output=True, text=True, timeout=600,
                              env={**os.environ, "MPLBACKEND": "Agg"})
        assert done.returncode == 0, f"{ln}\n{done.stderr[-3000:]}"


def test_readme_live_and_archive_commands_parse():
    """The ``sh`` blocks need a camera, a stream or an archive, so they are not run here: each line
    must be valid shell and parse with vadx's own argument parser (every flag exists and takes the
    values shown); tests/test_watch.py and tests/test_distributed.py run the same commands on
    loopback streams and generated archives."""
    from vadx.cli import build_parser
    lines = [ln.split("  #")[0].strip() for b in _blocks("sh") for ln in b.splitlines()]
    lines = [ln for ln in lines if ln]
    assert len(lines) >= 4
    parser = build_parser()
    for ln in lines:
        assert subprocess.run(["bash", "-n", "-c", ln]).returncode == 0, ln
        argv = shlex.split(ln)
        assert argv[0] == "vadx", ln
        parser.parse_args(argv[1:])  # argparse exits (SystemExit) on an unknown flag or value
