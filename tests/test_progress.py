"""vadx.progress: one switch silences every bar; losses are shown."""

import io
import re

import vadx
from vadx import progress


def test_silenced_nests_and_restores():
    assert progress.enabled() and not progress.enabled(False)
    with progress.silenced():
        assert not progress.enabled()
        with progress.silenced():
            assert not progress.enabled()
        assert not progress.enabled()
    assert progress.enabled()


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_bar_shows_loss_on_a_terminal_and_nothing_when_silenced(monkeypatch):
    out = _Terminal()
    monkeypatch.setattr("sys.stderr", out)
    with progress.bar(3, "training", "step", leave=True) as bar:
        bar._bar.mininterval = 0
        bar.update(1, loss=0.123456)
        bar.grow(2)
        bar.describe("stage 2")
        bar.update(1)
    assert bar.total == 5 and "loss=0.1235" in out.getvalue() and "stage 2" in out.getvalue()
    for quiet in (progress.bar(3, "off", show=False), _silenced_bar()):
        quiet.update(3, loss=1.0)
        quiet.close()
    assert "off" not in out.getvalue() and "hushed" not in out.getvalue()


def _silenced_bar():
    with progress.silenced():
        return progress.bar(3, "hushed")


def test_detector_progress_bar_follows_its_parameter():
    class D(vadx.Detector):
        name = "d"
    assert D(progress=False).progress_bar(3, "fit").disable is True
    with progress.silenced():
        assert D(progress=True).progress_bar(3, "fit").disable is True


def test_off_a_terminal_a_line_per_stage_with_loss_and_eta(monkeypatch):
    out = io.StringIO()  # not a terminal: a log file, CI, a pipe
    monkeypatch.setattr("sys.stderr", out)
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)  # a line at every update
    with progress.bar(4, "training", "epoch") as bar:
        bar.update(1, loss=0.5)
        bar.describe("training, stage 2")
        bar.update(1, loss=0.25)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0] == "vadx: training: started (4 epochs)"
    assert lines[1].startswith("vadx: training: 1/4 epochs, ETA ") and lines[1].endswith("loss=0.5")
    assert lines[2].startswith("vadx: training, stage 2: 1/4 epochs")
    assert lines[3].startswith("vadx: training, stage 2: 2/4 epochs, ETA ") and "loss=0.25" in lines[3]
    assert re.fullmatch(r"vadx: training, stage 2: done in [0-9.]+ s, 2/4 epochs, ETA .*, loss=0.25", lines[4])
    assert len(lines) == 5


def test_off_a_terminal_at_most_a_line_per_interval(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    with progress.bar(1000, "steps") as bar:  # LOG_EVERY (30 s) never passes here
        for _ in range(1000):
            bar.update(1, loss=1.0)
    assert out.getvalue().splitlines() == [
        "vadx: steps: started (1000 steps)",
        out.getvalue().splitlines()[-1]]
    assert re.fullmatch(r"vadx: steps: done in [0-9.]+ s, 1000/1000 steps, loss=1", out.getvalue().splitlines()[-1])


def test_a_finished_stage_gives_way_to_the_next_and_comes_back_for_more(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    with progress.bar(10, "reading frames", "frame", leave=True) as frames:
        frames.update(10)  # all frames read: then training starts
        with progress.bar(2, "training", "epoch") as train:
            train.update(2, loss=0.1)
        frames.grow(10)  # a second pass over the frames
        frames.describe("reading frames (pass 2)")
        frames.update(10)
    lines = out.getvalue().splitlines()
    assert [ln.split(":")[1].strip() for ln in lines] == [
        "reading frames", "reading frames", "training", "training", "reading frames (pass 2)",
        "reading frames (pass 2)"]
    assert re.fullmatch(r"vadx: reading frames: done in [0-9.]+ s, 10/10 frames", lines[1])  # before training
    assert lines[4] == "vadx: reading frames (pass 2): started (20 frames, from 10)"
    assert lines[5].endswith(" s, 20/20 frames") and "(pass 2): done in" in lines[5]


def test_on_a_terminal_a_finished_stage_stays_as_one_line(monkeypatch):
    out = _Terminal()
    monkeypatch.setattr("sys.stderr", out)
    with progress.bar(5, "reading", "frame", leave=True) as frames:
        frames.update(5)
        with progress.bar(3, "training", "epoch") as train:
            train._bar.mininterval = 0
            train.update(1, loss=2.0)
            assert frames._bar is None  # closed as done: not sitting at 100 % under training
    text = out.getvalue()
    assert "reading: 100%" in text and "5/5" in text
    assert "training:  33%" in text and "loss=2" in text and "<" in text  # tqdm's ETA field
