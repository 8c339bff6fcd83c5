"""Background estimation by "most occurrence frequency" (MOF) and background removal.

Jadhav & Inamdar (§3.1) estimate a static camera's background as, for each spatial patch, the
intensity that occurs most often over the training frames (the mode of the patch's intensity
histogram), then grey out the pixels that are within a tolerance of it before any network sees
the frame. :class:`MOFBackground` implements that for any detector:

- :meth:`MOFBackground.partial_fit` accumulates one integer histogram per (channel, patch) from a
  chunk of frames, so arbitrarily long video is fitted in memory bounded by
  ``C * ceil(H/ph) * ceil(W/pw) * bins`` int32 counts (the histograms), whatever the frame count;
  :meth:`MOFBackground.fit` does it over whole videos (each a tensor or an iterable of chunks).
- :attr:`MOFBackground.background` is the mode of each histogram (the first of tied bins, i.e.
  the darkest), as a bin centre, expanded back to the pixels: uint8 ``[C, H, W]``.
- :meth:`MOFBackground.remove` replaces the background pixels of frames by ``fill`` (mid grey);
  :meth:`MOFBackground.foreground` gives the boolean mask of the pixels it keeps.

A pixel is background when every channel is within ``tolerance`` grey levels of the background
(inclusive). ``patch_size=1`` (the default) is the per-pixel temporal mode, the usual MOF
background: it keeps the texture of the ground; larger patches give one value per patch (less
memory, but a textured patch then keeps part of its texture as foreground). Frames are uint8
``[T, C, H, W]``, vadx's layout. The fitted model is the ``background`` tensor alone:
:meth:`MOFBackground.from_background` rebuilds a remover from it (e.g. after a detector's load).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = ["MOFBackground", "remove_background"]


def _pair(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int >= 1 or an (h, w) pair of them, got {value!r}")
    if isinstance(value, int):
        value = (value, value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
        raise ValueError(f"{name} must be an int >= 1 or an (h, w) pair of them, got {value!r}")
    return int(value[0]), int(value[1])


def _check_frames(frames: Any, what: str) -> Tensor:
    if not isinstance(frames, Tensor):
        raise TypeError(f"{what} must be a uint8 tensor [T, C, H, W], got {type(frames).__name__}")
    if frames.dtype != torch.uint8:
        raise TypeError(f"{what} must be uint8 [T, C, H, W], got dtype {frames.dtype}")
    if frames.dim() != 4 or frames.shape[1] not in (1, 3) or frames.shape[2] == 0 or frames.shape[3] == 0:
        raise ValueError(f"{what} must be [T, C, H, W] with C in (1, 3) and H, W > 0, got shape "
                         f"{tuple(frames.shape)}")
    return frames


def _check_tolerance(tolerance: Any) -> float:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance <= 255:
        raise ValueError(f"tolerance must be a number of grey levels in [0, 255], got {tolerance!r}")
    return float(tolerance)


def remove_background(frames: Tensor, background: Tensor, tolerance: float, fill: int = 128) -> Tensor:
    """Frames with the pixels within ``tolerance`` of ``background`` (every channel) set to ``fill``.

    Args:
        frames: uint8 ``[T, C, H, W]``.
        background: uint8 ``[C, H, W]`` (same C, H, W as the frames).
        tolerance: grey levels, inclusive.
        fill: the grey level given to background pixels.
    """
    frames = _check_frames(frames, "frames")
    tol = _check_tolerance(tolerance)
    if isinstance(fill, bool) or not isinstance(fill, int) or not 0 <= fill <= 255:
        raise ValueError(f"fill must be an int grey level in [0, 255], got {fill!r}")
    if not isinstance(background, Tensor) or background.dtype != torch.uint8 \
            or tuple(background.shape) != tuple(frames.shape[1:]):
        got = (f"{background.dtype} tensor of shape {tuple(background.shape)}"
               if isinstance(background, Tensor) else type(background).__name__)
        raise ValueError(f"background must be a uint8 tensor of shape {tuple(frames.shape[1:])} "
                         f"(the frames' [C, H, W]), got {got}")
    bg = _is_background(frames, background.to(frames.device), tol)
    return torch.where(bg.unsqueeze(1), torch.tensor(fill, dtype=torch.uint8, device=frames.device), frames)


def _is_background(frames: Tensor, background: Tensor, tol: float) -> Tensor:
    diff = (frames.to(torch.int16) - background.to(torch.int16)).abs()  # [T, C, H, W]
    return diff.amax(dim=1) <= tol


class MOFBackground:
    """Most-occurrence-frequency background of a static camera (module docstring).

    Args:
        patch_size: ``(h, w)`` of the spatial patches (an int for square ones) that each get one
            histogram and one background value; 1 = per pixel.
        bins: histogram bins over 0..255 (256 = exact grey levels; fewer bins merge neighbouring
            levels, which makes the mode robust to sensor noise on short training videos).
    """

    def __init__(self, *, patch_size: int | tuple[int, int] = 1, bins: int = 256):
        self.patch_size = _pair(patch_size, "patch_size")
        if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= 256:
            raise ValueError(f"bins must be an int in [1, 256], got {bins!r}")
        self.bins = bins
        self.frame_shape: tuple[int, int, int] | None = None  # (C, H, W)
        self.n_frames = 0
        self._hist: Tensor | None = None  # [C, Hp, Wp, bins] int32
        self._background: Tensor | None = None

    # ------------------------------------------------------------------ fitting
    def _grid(self) -> tuple[int, int]:
        _, h, w = self.frame_shape
        ph, pw = self.patch_size
        return -(-h // ph), -(-w // pw)

    def partial_fit(self, frames: Tensor) -> MOFBackground:
        """Add a chunk of frames uint8 ``[T, C, H, W]`` to the histograms; returns self."""
        frames = _check_frames(frames, "frames")
        shape = tuple(frames.shape[1:])
        if self._hist is None and self._background is not None:
            raise RuntimeError("this MOFBackground was built from a background tensor; it has no "
                               "histograms to add frames to")
        if self.frame_shape is None:
            self.frame_shape = shape
            gh, gw = self._grid()
            self._hist = torch.zeros(shape[0], gh, gw, self.bins, dtype=torch.int32, device=frames.device)
        elif shape != self.frame_shape:
            raise ValueError(f"frames must have [C, H, W] = {self.frame_shape} like the frames fitted "
                             f"before, got {shape}")
        if frames.shape[0] == 0:
            return self
        c, h, w = shape
        ph, pw = self.patch_size
        gh, gw = self._grid()
        hist = self._hist
        frames = frames.to(hist.device)
        # Bin of each pixel, and the flat (channel, patch row, patch col) cell it belongs to.
        b = (frames.long() * self.bins) // 256  # [T, C, H, W]
        rows = torch.arange(h, device=hist.device) // ph
        cols = torch.arange(w, device=hist.device) // pw
        cell = (torch.arange(c, device=hist.device).view(c, 1, 1) * gh + rows.view(1, h, 1)) * gw \
            + cols.view(1, 1, w)  # [C, H, W]
        idx = (cell.unsqueeze(0) * self.bins + b).reshape(-1)
        # index_add_ (not bincount) so no second histogram-sized buffer is allocated per chunk.
        hist.view(-1).index_add_(0, idx, torch.ones(1, dtype=torch.int32, device=hist.device).expand_as(idx))
        self.n_frames += int(frames.shape[0])
        self._background = None
        return self

    def fit(self, videos: Iterable[Any]) -> MOFBackground:
        """Fit on videos, each a uint8 ``[T, C, H, W]`` tensor or an iterable of such chunks."""
        if isinstance(videos, Tensor):
            raise TypeError("videos must be a list of videos (each [T, C, H, W] or an iterable of "
                            "chunks); wrap a single video as [video]")
        for video in videos:
            for chunk in ([video] if isinstance(video, Tensor) else video):
                self.partial_fit(chunk)
        if self.n_frames == 0:
            raise ValueError("videos held no frames: the background needs at least one")
        return self

    # ------------------------------------------------------------------ the model
    @classmethod
    def from_background(cls, background: Tensor) -> MOFBackground:
        """A remover for a background fitted before: uint8 ``[C, H, W]``."""
        if not isinstance(background, Tensor) or background.dtype != torch.uint8 or background.dim() != 3 \
                or background.shape[0] not in (1, 3):
            got = (f"{background.dtype} tensor of shape {tuple(background.shape)}"
                   if isinstance(background, Tensor) else type(background).__name__)
            raise ValueError(f"background must be a uint8 tensor [C, H, W] with C in (1, 3), got {got}")
        model = cls()
        model.frame_shape = tuple(background.shape)
        model._background = background
        return model

    @property
    def background(self) -> Tensor:
        """uint8 ``[C, H, W]``: per patch, the centre of its most frequent intensity bin."""
        if self._background is None:
            if self._hist is None or self.n_frames == 0:
                raise RuntimeError("MOFBackground is not fitted: call fit() or partial_fit() first")
            mode = self._hist.argmax(dim=-1)  # first maximal bin on ties
            centre = ((mode * 256 + 128) // self.bins).clamp(0, 255).to(torch.uint8)  # [C, gh, gw]
            _, h, w = self.frame_shape
            ph, pw = self.patch_size
            full = centre.repeat_interleave(ph, dim=1).repeat_interleave(pw, dim=2)
            self._background = full[:, :h, :w].contiguous()
        return self._background

    def foreground(self, frames: Tensor, tolerance: float) -> Tensor:
        """bool ``[T, H, W]``: pixels more than ``tolerance`` grey levels from the background in
        some channel."""
        frames = _check_frames(frames, "frames")
        tol = _check_tolerance(tolerance)
        self._check_shape(frames)
        return ~_is_background(frames, self.background.to(frames.device), tol)

    def remove(self, frames: Tensor, tolerance: float, fill: int = 128) -> Tensor:
        """uint8 ``[T, C, H, W]``: ``frames`` with the background pixels greyed out (set to ``fill``)."""
        frames = _check_frames(frames, "frames")
        self._check_shape(frames)
        return remove_background(frames, self.background, tolerance, fill)

    def _check_shape(self, frames: Tensor) -> None:
        if self.frame_shape is None:
            raise RuntimeError("MOFBackground is not fitted: call fit() or partial_fit() first")
        if tuple(frames.shape[1:]) != self.frame_shape:
            raise ValueError(f"frames must have [C, H, W] = {self.frame_shape} (the fitted frames'), "
                             f"got {tuple(frames.shape[1:])}")

    def __repr__(self) -> str:
        return (f"MOFBackground(patch_size={self.patch_size}, bins={self.bins}, "
                f"frame_shape={self.frame_shape}, n_frames={self.n_frames})")
