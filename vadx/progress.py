"""Progress of long work (frames read, epochs, optimisation steps), owned by the host.

Plugins never import tqdm: they ask for a bar here (or through ``Detector.progress_bar``) and
report the current loss with ``update(loss=...)``. A bar shows on stderr only when stderr is a
terminal, only while its owner's ``progress`` parameter is true, and never inside
:func:`silenced` (what ``vadx --quiet`` uses), so one switch silences every bar of every plugin.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Bar", "bar", "enabled", "silenced"]

_silence = threading.local()


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


class Bar:
    """A progress bar: ``update(n, loss=..., **info)`` advances it and shows the latest values."""

    def __init__(self, total: int | None, desc: str, unit: str, show: bool, leave: bool):
        from tqdm import tqdm

        # disable=None: tqdm shows itself only when stderr is a terminal
        self._bar = tqdm(total=total, desc=desc, unit=unit, disable=None if show else True,
                         file=sys.stderr, dynamic_ncols=True, mininterval=0.5, leave=leave)

    def update(self, n: int = 1, *, loss: float | None = None, **info: Any) -> None:
        if loss is not None:
            info = {"loss": f"{float(loss):.4g}", **info}
        if info and not self._bar.disable:
            self._bar.set_postfix(info, refresh=False)
        self._bar.update(n)

    def describe(self, desc: str) -> None:
        """Change the bar's label (e.g. a new training stage)."""
        self._bar.set_description(desc, refresh=False)

    def grow(self, n: int) -> None:
        """Add ``n`` to the total (work discovered on the way, e.g. another pass)."""
        if self._bar.total is not None:
            self._bar.total += n

    @property
    def total(self) -> int | None:
        return self._bar.total

    def close(self, *, clear: bool = False) -> None:
        if clear:
            self._bar.leave = False
        self._bar.close()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(clear=exc_type is not None)  # an error message stands alone


def bar(total: int | None, desc: str, unit: str = "step", *, show: bool = True,
        leave: bool = False) -> Bar:
    """A progress bar of ``total`` ``unit``s (None: unknown), shown if ``show`` and not
    :func:`silenced` and stderr is a terminal."""
    return Bar(total, desc, unit, enabled(show), leave)
