"""vadx.progress: one switch silences every bar; losses are shown."""

import io

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
    assert D(progress=False).progress_bar(3, "fit")._bar.disable is True
    with progress.silenced():
        assert D(progress=True).progress_bar(3, "fit")._bar.disable is True
