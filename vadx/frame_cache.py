"""A bounded cache of decoded training frames: decode and resize once, train for many epochs.

Training reads every frame once per epoch; decoding JPEGs or a video file and resizing each time
costs more than a small network's step. :class:`FrameCache` keeps the frames, already at the
model's size, as compact uint8 in memory up to ``max_bytes`` and writes the rest to an unnamed
temporary file that is memory-mapped for reading (the operating system keeps what fits in its
page cache), so a long archive never exhausts memory. The file disappears when the cache is
closed or garbage-collected. Each video is kept whole in one place (memory or file), so
``video(i)[s:e]`` is one slice either way.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import torch
from torch import Tensor

DEFAULT_MAX_BYTES = int(os.environ.get("VADX_CACHE_MAX_BYTES", 2 << 30))  # 2 GiB in memory


class FrameCache:
    """uint8 frames ``[T, C, H, W]`` of several videos, filled chunk by chunk: ``add(chunk)``
    appends to the current video, ``new_video()`` starts the next one, ``video(i)`` reads one."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be an int >= 0, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self.memory_bytes = 0  # bytes held in memory
        self.spilled_bytes = 0  # bytes written to the temporary file
        self._done: list[Tensor | tuple[int, tuple[int, ...]]] = []  # tensor, or (offset, shape)
        self._parts: list[Tensor] = []  # the current video's in-memory chunks
        self._offset: int | None = None  # the current video's start in the file, once spilling
        self._frames, self._shape = 0, None
        self._file = None
        self._map: np.memmap | None = None

    def new_video(self) -> None:
        """Finish the current video (if it has frames) and start the next one."""
        if self._frames:
            if self._offset is None:
                self._done.append(torch.cat(self._parts) if len(self._parts) > 1 else self._parts[0])
            else:
                self._done.append((self._offset, (self._frames, *self._shape)))
        self._parts, self._offset, self._frames, self._shape = [], None, 0, None

    def add(self, chunk: Tensor) -> None:
        """Append uint8 frames ``[t, C, H, W]`` to the current video."""
        if not isinstance(chunk, Tensor) or chunk.dtype != torch.uint8 or chunk.dim() != 4:
            got = f"{chunk.dtype} {tuple(chunk.shape)}" if isinstance(chunk, Tensor) else type(chunk).__name__
            raise ValueError(f"chunk must be a uint8 tensor [t, C, H, W], got {got}")
        if self._shape is not None and tuple(chunk.shape[1:]) != self._shape:
            raise ValueError(f"chunk has frames of shape {tuple(chunk.shape[1:])}; this video's "
                             f"frames are {self._shape}")
        if chunk.shape[0] == 0:
            return
        chunk = chunk.detach().cpu().contiguous()
        self._shape = tuple(chunk.shape[1:])
        self._frames += int(chunk.shape[0])
        if self._offset is None and self.memory_bytes + chunk.numel() <= self.max_bytes:
            self._parts.append(chunk)
            self.memory_bytes += chunk.numel()
            return
        if self._offset is None:  # this video moves to the file, its earlier chunks first
            self._offset = self.spilled_bytes
            for p in self._parts:
                self._write(p)
                self.memory_bytes -= p.numel()
            self._parts = []
        self._write(chunk)

    def _write(self, chunk: Tensor) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="vadx-frames-")
        self._file.seek(self.spilled_bytes)
        self._file.write(chunk.numpy().tobytes())
        self.spilled_bytes += chunk.numel()
        self._map = None  # map again to see the new bytes

    def __len__(self) -> int:
        return len(self._done) + (1 if self._frames else 0)

    def video(self, i: int) -> Tensor:
        """Video ``i`` as uint8 ``[T, C, H, W]`` (finishes the video being filled)."""
        self.new_video()
        entry = self._done[i]
        if isinstance(entry, Tensor):
            return entry
        offset, shape = entry
        if self._map is None:
            self._file.flush()
            self._map = np.memmap(self._file, dtype=np.uint8, mode="r+", shape=(self.spilled_bytes,))
        return torch.from_numpy(self._map[offset:offset + int(np.prod(shape))].reshape(shape))

    def videos(self) -> list[Tensor]:
        """Every video, in order."""
        return [self.video(i) for i in range(len(self))]

    def close(self) -> None:
        """Drop the frames and delete the temporary file."""
        self._done, self._parts, self._map = [], [], None
        if self._file is not None:
            self._file.close()
            self._file = None
