"""Progress of long work (frames read, epochs, optimisation steps), owned by the host.

Plugins never import tqdm: they ask for a bar here (or through ``Detector.progress_bar``) and
report the current loss with ``update(loss=...)``. A bar shows on stderr only while its owner's
``progress`` parameter is true, and never inside :func:`silenced` (what ``vadx --quiet`` uses),
so one switch silences every bar of every plugin. How it shows depends on stderr:

- a terminal: a tqdm bar (count, rate, elapsed time and ETA, the latest loss);
- anything else (a log file, CI, a pipe): plain lines, never carriage returns: one when a stage
  starts, one when it ends (count, seconds, last loss) or changes its label, and between them at
  most one every :data:`LOG_EVERY` seconds (count, loss, ETA).

A finished stage gives way to the next: when a bar opens while an enclosing bar of the same
thread has done all its work (e.g. the frames of a fit are read and training starts), that
enclosing bar is closed as done, so it does not sit at 100 % through the next stage; if more
work comes for it later (``grow``, another pass over the data), it shows again from its count.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["LOG_EVERY", "Bar", "bar", "enabled", "silenced"]

#: Seconds between two progress lines of one stage where stderr is not a terminal.
LOG_EVERY = 30.0

_silence = threading.local()
_open = threading.local()  # .bars: this thread's open bars, outermost first


@contextmanager
def silenced() -> Iterator[None]:
    """No progress bar opens inside this block (in this thread), whatever the detectors say."""
    depth = getattr(_silence, "depth", 0)
    _silence.depth = depth + 1
    try:
        yield
    finally:
        _silence.depth = depth


def enabled(wanted: bool = True) -> bool:
    """Whether a bar asked for with ``wanted`` would be allowed to show (not silenced)."""
    return bool(wanted) and getattr(_silence, "depth", 0) == 0


def _on_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return False


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Bar:
    """A progress bar: ``update(n, loss=..., **info)`` advances it and shows the latest values."""

    def __init__(self, total: int | None, desc: str, unit: str, show: bool, leave: bool):
        self.desc, self.unit, self.leave = desc, unit, leave
        self._total, self.n = total, 0
        self._info: dict[str, Any] = {}
        self._show = bool(show)
        self._terminal = self._show and _on_terminal()
        self._bar = None  # the tqdm bar on a terminal, while shown
        self._done_shown = False  # closed as done while its work was complete (see module doc)
        self._closed = False
        self._t0 = self._last_line = time.monotonic()
        stack = _stack()
        for outer in stack:
            if outer._complete() and not outer._done_shown:
                outer._finish_stage()
        stack.append(self)
        if self._show:
            self._start()

    # --------------------------------------------------------------- display
    def _start(self) -> None:
        if self._terminal:
            from tqdm import tqdm

            self._bar = tqdm(total=self._total, desc=self.desc, unit=self.unit, initial=self.n,
                             file=sys.stderr, dynamic_ncols=True, mininterval=0.5,
                             leave=self.leave)
            if self._info:
                self._bar.set_postfix(self._info, refresh=False)
        else:
            size = [f"{self._total} {self.unit}s"] if self._total is not None else []
            size += [f"from {self.n}"] if self.n else []
            self._line(f"{self.desc}: started" + (f" ({', '.join(size)})" if size else ""))

    def _line(self, text: str) -> None:
        print(f"vadx: {text}", file=sys.stderr, flush=True)
        self._last_line = time.monotonic()

    def _status(self) -> str:
        count = f"{self.n}/{self._total}" if self._total is not None else f"{self.n}"
        parts = [f"{count} {self.unit}s"]
        elapsed = time.monotonic() - self._t0
        if self._total and 0 < self.n < self._total:
            parts.append(f"ETA {_clock(elapsed / self.n * (self._total - self.n))}")
        parts += [f"{k}={v}" for k, v in self._info.items()]
        return ", ".join(parts)

    def _complete(self) -> bool:
        return self._total is not None and self.n >= self._total

    def _finish_stage(self) -> None:
        """Close the display as done (its work is complete and another stage starts)."""
        self._done_shown = True
        if not self._show:
            return
        if self._bar is not None:
            self._bar.leave = True  # the finished stage stays on screen as one line
            self._bar.close()
            self._bar = None
        else:
            self._done_line()

    def _done_line(self) -> None:
        self._line(f"{self.desc}: done in {time.monotonic() - self._t0:.1f} s, {self._status()}")

    def _resume(self) -> None:
        self._done_shown = False
        if self._show:
            self._start()

    # --------------------------------------------------------------- API
    def update(self, n: int = 1, *, loss: float | None = None, **info: Any) -> None:
        if loss is not None:
            info = {"loss": f"{float(loss):.4g}", **info}
        if info:
            self._info = {k: v if isinstance(v, str) else f"{v}" for k, v in info.items()}
        if self._done_shown and n:
            self._resume()
        self.n += n
        if not self._show:
            return
        if self._bar is not None:
            if info:
                self._bar.set_postfix(self._info, refresh=False)
            self._bar.update(n)
        elif not self._terminal and time.monotonic() - self._last_line >= LOG_EVERY:
            self._line(f"{self.desc}: {self._status()}")

    def describe(self, desc: str) -> None:
        """Change the bar's label (e.g. a new training stage)."""
        if desc == self.desc:
            return
        self.desc = desc
        if self._bar is not None:
            self._bar.set_description(desc, refresh=False)
        elif self._show and not self._terminal and not self._done_shown:
            self._line(f"{desc}: {self._status()}")

    def grow(self, n: int) -> None:
        """Add ``n`` to the total (work discovered on the way, e.g. another pass)."""
        if self._total is not None:
            self._total += n
            if self._bar is not None:
                self._bar.total = self._total

    @property
    def total(self) -> int | None:
        return self._total

    @property
    def disable(self) -> bool:
        """True when nothing of this bar is shown (not asked for, or silenced)."""
        return not self._show

    def close(self, *, clear: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        stack = _stack()
        if self in stack:
            stack.remove(self)
        if not self._show:
            return
        if self._bar is not None:
            if clear:
                self._bar.leave = False
            self._bar.close()
            self._bar = None
        elif not self._terminal and not self._done_shown and not clear:
            self._done_line()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(clear=exc_type is not None)  # an error message stands alone


def _stack() -> list[Bar]:
    if not hasattr(_open, "bars"):
        _open.bars = []
    return _open.bars


def bar(total: int | None, desc: str, unit: str = "step", *, show: bool = True,
        leave: bool = False) -> Bar:
    """A progress bar of ``total`` ``unit``s (None: unknown), shown if ``show`` and not
    :func:`silenced`: a tqdm bar where stderr is a terminal, stage lines elsewhere."""
    return Bar(total, desc, unit, enabled(show), leave)
