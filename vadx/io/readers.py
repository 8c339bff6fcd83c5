"""Video sources as re-iterable readers of uint8 ``[t, C, H, W]`` chunks.

A reader holds only a description of its source (a path, a list of frame files, or an array), so
iterating it again re-opens the source, a 2-hour video is never held in memory at once, and
readers can be pickled to DataLoader workers. Every reader yields CPU torch tensors that satisfy
the detector contract (:func:`vadx.detector.check_frames`).

Channels: ``grayscale=None`` keeps what the source stores (a single-channel image file gives
``C = 1``; colour image files and every video file give ``C = 3``, RGB order), ``True`` converts
to ``C = 1`` (OpenCV's BGR->GRAY weights), ``False`` forces ``C = 3``.
Resizing (``size=(H, W)``) uses area interpolation when shrinking and bilinear otherwise.

Untrusted input: a frame may have at most ``max_pixels`` pixels (H x W; default
:data:`DEFAULT_MAX_PIXELS`, or the environment variable ``VADX_MAX_PIXELS``), checked from the
image file's header or the video container before anything is decoded, since a 140 KB PNG can
decode to 12000 x 12000. A corrupt image in a frame folder is skipped with a warning naming it
(``strict=True``: an error); a truncated video file yields the frames it has and warns
(``strict=True``: an error), and one from which nothing can be decoded (an MP4 cut before its
index) raises an error that says so. FFmpeg's own messages while a file is opened are kept off
stderr and quoted in vadx's error instead.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from vadx.detector import check_fps

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm")


# 40 megapixels: an 8K UHD frame (7680 x 4320, 33 MP) passes; 12000 x 12000 (144 MP, 432 MB as
# RGB, 28 GB for a chunk of 64) does not.
DEFAULT_MAX_PIXELS = 40_000_000


class VideoReadError(OSError):
    """A video file, frame file or frame folder exists but cannot be decoded."""


def check_max_pixels(max_pixels: Any) -> int:
    """Validate a ``max_pixels`` option: an int >= 1, or None for the default (the environment
    variable ``VADX_MAX_PIXELS`` where set, else :data:`DEFAULT_MAX_PIXELS`)."""
    if max_pixels is None:
        env = os.environ.get("VADX_MAX_PIXELS")
        if env is None:
            return DEFAULT_MAX_PIXELS
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"environment variable VADX_MAX_PIXELS must be an int >= 1 (pixels per "
                             f"frame), got {env!r}")
        return value
    if not isinstance(max_pixels, (int, np.integer)) or isinstance(max_pixels, bool) or max_pixels < 1:
        raise ValueError(f"max_pixels must be None (the default: $VADX_MAX_PIXELS or "
                         f"{DEFAULT_MAX_PIXELS}) or an int >= 1, got {max_pixels!r}")
    return int(max_pixels)


def _too_large(what: str, h: int, w: int, max_pixels: int) -> VideoReadError:
    return VideoReadError(f"{what}: frames of {w}x{h} (W x H) = {w * h} pixels exceed max_pixels "
                          f"({max_pixels}); pass max_pixels= to open_video (or set VADX_MAX_PIXELS) "
                          f"if this is intended")


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(H, W)`` of an image file from its header, without decoding it (Pillow reads headers
    lazily), or None where it cannot tell (no Pillow, an unknown or corrupt header)."""
    try:
        from PIL import Image
    except ImportError:  # OpenCV's own limit (2**30 pixels) still applies
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning: we judge size
            with Image.open(path) as im:
                w, h = im.size
    except Image.DecompressionBombError as e:  # over twice Pillow's limit: it names the size
        m = re.search(r"\((\d+) pixels\)", str(e))
        return (int(m.group(1)), 1) if m else (Image.MAX_IMAGE_PIXELS * 2 + 1, 1)
    except Exception:  # noqa: BLE001 - not an image Pillow knows: OpenCV decides
        return None
    return int(h), int(w)


_STDERR_LOCK = threading.Lock()


def _quiet_open(path: Path) -> tuple[cv2.VideoCapture, str]:
    """``cv2.VideoCapture(path)`` with FFmpeg's messages (e.g. "moov atom not found", printed by
    C code straight to file descriptor 2) captured instead of printed; returns them so an error
    can quote them. OpenCV reads its FFmpeg log level only once per process, so the descriptor
    itself is redirected, for the few milliseconds of the open only."""
    import tempfile

    with _STDERR_LOCK, tempfile.TemporaryFile() as tmp:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no usable descriptor 2: open as is
            return cv2.VideoCapture(str(path)), ""
        try:
            os.dup2(tmp.fileno(), 2)
            cap = cv2.VideoCapture(str(path))
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode("utf-8", "replace")
    return cap, text


def _ffmpeg_said(text: str) -> str:
    """FFmpeg's messages as one clause: "[mov,mp4 @ 0x55..] moov atom not found" -> "moov atom
    not found"."""
    lines = {re.sub(r"^\[[^]]*\]\s*", "", ln).strip() for ln in text.splitlines()}
    lines.discard("")
    return "; ".join(sorted(lines))


def _mp4_problem(path: Path) -> str | None:
    """Why an MP4/MOV (ISO base media) file cannot be opened, from its top-level boxes: cut
    short (a box runs past the end of the file) or without its index (``moov``, which writers
    put at the end, so a file copied or written only in part has none). None: not such a file,
    or its boxes look whole."""
    size = path.stat().st_size
    boxes: list[bytes] = []
    with open(path, "rb") as f:
        pos = 0
        while pos + 8 <= size and len(boxes) < 10_000:
            f.seek(pos)
            head = f.read(16)
            length, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if not boxes and kind != b"ftyp":
                return None  # not ISO base media
            if length == 1 and len(head) == 16:
                length = int.from_bytes(head[8:16], "big")
            elif length == 0:  # the last box runs to the end of the file
                length = size - pos
            if length < 8:
                return f"the box at byte {pos} is malformed (size {length}): corrupt file"
            boxes.append(kind)
            if pos + length > size:
                where = "" if b"moov" in boxes else ", so the index (moov box) that follows it is missing"
                return (f"the file is truncated: its '{kind.decode('latin-1')}' box at byte {pos} "
                        f"needs {length} bytes and the file ends after {size - pos}{where} (cut "
                        f"while being written or copied)")
            pos += length
    if boxes and b"moov" not in boxes:
        return "the file has no index (moov box): it is truncated or was never finished"
    return None


def natural_key(name: str | os.PathLike) -> list[Any]:
    """Sort key that orders embedded numbers by value: ``2.jpg`` before ``10.jpg``."""
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", os.fspath(name))]


def list_frames(folder: str | os.PathLike) -> list[Path]:
    """The image files of a frame folder (:data:`IMAGE_EXTENSIONS`), naturally sorted.

    Hidden files (``.DS_Store``, macOS ``._001.tif`` resource forks) are skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"frame folder not found: {folder}")
    files = [p for p in folder.iterdir()
             if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()]
    return sorted(files, key=lambda p: natural_key(p.name))


def check_size(size: Any) -> tuple[int, int] | None:
    """Validate a ``size`` option: None or a ``(height, width)`` pair of positive ints."""
    if size is None:
        return None
    if (not isinstance(size, Sequence) or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size)):
        raise ValueError(f"size must be None or a (height, width) pair of positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def check_chunk_size(chunk_size: Any) -> int:
    """Validate a ``chunk_size`` option: an int >= 1."""
    if not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
    return int(chunk_size)


def _check_grayscale(grayscale: Any) -> bool | None:
    if grayscale not in (None, True, False):
        raise ValueError(f"grayscale must be None (keep the source's channels), True or False, "
                         f"got {grayscale!r}")
    return grayscale


def _resize(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or frame.shape[:2] == size:
        return frame
    h, w = size
    if h <= frame.shape[0] and w <= frame.shape[1]:
        interp = cv2.INTER_AREA  # averages the source pixels: no aliasing when shrinking
    else:
        interp = cv2.INTER_LINEAR
    return cv2.resize(frame, (w, h), interpolation=interp)


class VideoReader:
    """A re-iterable video: ``for chunk in reader`` yields uint8 tensors ``[t, C, H, W]``.

    Use :func:`open_video` to create one. Attributes common to all sources:

    - ``chunk_size``: frames per yielded chunk (the last one may be shorter);
    - ``grayscale``, ``size``: the conversion options (see the module docstring);
    - ``max_pixels``: the most pixels (H x W) a source frame may have, checked before decoding;
    - ``strict``: a corrupt frame file or a truncated video raises instead of being skipped or
      cut short with a warning;
    - ``fps``: frames per second (from the container for files, else as given; may be None);
    - ``name``: a short description of the source for messages.

    ``len(reader)`` is the number of frames (for video files: the frame count the container
    announces, corrected once a pass decodes fewer, or a decoding pass where the container has
    none); ``reader.shape`` is ``(C, H, W)`` after
    conversion; ``reader.read(start, stop)`` returns frames ``start..stop-1`` as one tensor.
    """

    def __init__(self, *, chunk_size: int = 64, grayscale: bool | None = None,
                 size: tuple[int, int] | None = None, fps: float | None = None,
                 max_pixels: int | None = None, strict: bool = False):
        self.chunk_size = check_chunk_size(chunk_size)
        self.grayscale = _check_grayscale(grayscale)
        self.size = check_size(size)
        self._fps = check_fps(fps)
        self.max_pixels = check_max_pixels(max_pixels)
        if not isinstance(strict, bool):
            raise ValueError(f"strict must be True or False, got {strict!r}")
        self.strict = strict
        self.name = ""

    @property
    def fps(self) -> float | None:
        return self._fps

    # subclasses: native frames (H x W grey or H x W x 3 RGB uint8) of [start, stop)
    def _frames(self, start: int, stop: int | None) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def _convert(self, frame: np.ndarray) -> np.ndarray:
        """A native frame -> H x W x C uint8 with the reader's channels and size."""
        if frame.ndim == 3 and frame.shape[2] == 1:
            frame = frame[:, :, 0]
        if self.grayscale and frame.ndim == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        elif self.grayscale is False and frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        frame = _resize(frame, self.size)
        return frame[:, :, None] if frame.ndim == 2 else frame

    def _chunks(self, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        # every frame of a pass is checked against its first, not only within a chunk: chunks of
        # different sizes would fail later (torch.cat in read(), a detector) naming no frame
        buf: list[np.ndarray] = []
        first: tuple[int, ...] | None = None
        for i, frame in enumerate(self._frames(start, stop), start):
            frame = self._convert(frame)
            if first is None:
                first = frame.shape
            elif frame.shape != first:
                raise VideoReadError(f"{self.name}: frame {i} is {frame.shape[0]}x{frame.shape[1]} "
                                     f"(H x W), frame {start} was {first[0]}x{first[1]}; frames "
                                     f"of one video must have one size: pass size=(H, W) to "
                                     f"resize them")
            buf.append(frame)
            if len(buf) == self.chunk_size:
                yield self._stack(buf)
                buf = []
        if buf:
            yield self._stack(buf)

    @staticmethod
    def _stack(frames: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.stack(frames).transpose(0, 3, 1, 2)))

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self._chunks()

    def read(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Frames ``start`` to ``stop - 1`` (all from ``start`` when ``stop`` is None), uint8
        ``[t, C, H, W]``, in memory. Video files are decoded from the start up to ``stop``."""
        if not isinstance(start, (int, np.integer)) or start < 0:
            raise ValueError(f"start must be an int >= 0, got {start!r}")
        if stop is not None and (not isinstance(stop, (int, np.integer)) or stop < start):
            raise ValueError(f"stop must be None or an int >= start ({start}), got {stop!r}")
        chunks = list(self._chunks(int(start), None if stop is None else int(stop)))
        if not chunks:
            return torch.empty((0, *self.shape), dtype=torch.uint8)
        return torch.cat(chunks)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the frames this reader yields (decodes the first frame)."""
        frames = self._frames(0, None)  # the first decodable frame (corrupt files are skipped)
        first = next(frames, None)
        frames.close()
        if first is None:
            raise VideoReadError(f"{self.name}: no frames")
        f = self._convert(first)
        return f.shape[2], f.shape[0], f.shape[1]

    def __repr__(self) -> str:
        opts = (f"chunk_size={self.chunk_size}, grayscale={self.grayscale}, size={self.size}, "
                f"max_pixels={self.max_pixels}, strict={self.strict}")
        return f"{type(self).__name__}({self.name!r}, {opts})"


class FileReader(VideoReader):
    """A video file decoded with OpenCV (FFmpeg backend): mp4, avi, mov, mkv, ...

    A file that OpenCV cannot open or from which no frame decodes raises :class:`VideoReadError`
    saying why where it can tell (an MP4/MOV cut short or without its index, FFmpeg's own
    message); a file that stops decoding before the frame count its container announces
    (truncated or corrupt in the middle) yields the frames it has and warns (``strict=True``:
    raises). Frames larger than ``max_pixels`` are refused from the container's header, before
    any is decoded. The file is opened on first use (``len``, ``fps``, ``shape``, iteration);
    :func:`open_video` opens it at once.
    """

    def __init__(self, path: str | os.PathLike, **options: Any):
        super().__init__(**options)
        self.path = Path(path)
        self.name = str(self.path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video file not found: {self.path}")
        self._count: int | None = None
        self._probed = False

    def _probe(self) -> None:
        """Read the container's frame rate, frame count and frame size (once; opening a file
        costs ~ms, and a dataset of a thousand files should not pay that before it is used)."""
        if self._probed:
            return
        cap = self._open()
        container_fps = cap.get(cv2.CAP_PROP_FPS)
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        cap.release()
        if w * h > self.max_pixels:
            raise _too_large(str(self.path), h, w, self.max_pixels)
        if self._fps is None and container_fps > 0:
            self._fps = float(container_fps)
        self._count = int(count) if count > 0 else None
        self._probed = True

    @property
    def fps(self) -> float | None:
        self._probe()
        return self._fps

    def _open(self) -> cv2.VideoCapture:
        if self.path.stat().st_size == 0:
            raise VideoReadError(f"{self.path}: empty file (0 bytes), not a video")
        cap, said = _quiet_open(self.path)
        if not cap.isOpened():
            cap.release()
            why = _mp4_problem(self.path)
            ffmpeg = _ffmpeg_said(said)
            ffmpeg = f" (FFmpeg: {ffmpeg})" if ffmpeg else ""
            if why:
                raise VideoReadError(f"{self.path}: no frame can be decoded: {why}{ffmpeg}")
            raise VideoReadError(f"{self.path}: OpenCV cannot open this file as a video (corrupt, "
                                 f"truncated, not a video, or a codec this OpenCV build "
                                 f"lacks){ffmpeg}")
        if said:  # opened after all: FFmpeg's warnings are the user's to see, as without vadx
            sys.stderr.write(said)
        return cap

    def _frames(self, start: int, stop: int | None) -> Iterator[np.ndarray]:
        self._probe()
        cap = self._open()
        i = 0
        try:
            # grab() decodes without converting: sequential skipping is exact where seeking
            # (CAP_PROP_POS_FRAMES) lands on key frames for some codecs
            while i < start and cap.grab():
                i += 1
            while stop is None or i < stop:
                ok, frame = cap.read()
                if not ok:
                    break
                i += 1
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()
        if i == 0 and (stop is None or stop > 0):
            announced = f"; the file announces {self._count} frames: it is truncated or corrupt" \
                if self._count else " (corrupt or empty video)"
            raise VideoReadError(f"{self.path}: no frame could be decoded{announced}")
        ended_early = stop is None or i < stop
        if ended_early and self._count is not None and i < self._count:
            msg = (f"{self.path}: decoded {i} of the {self._count} frames the file announces "
                   f"(truncated or corrupt)")
            if self.strict:
                raise VideoReadError(f"{msg}; strict=True refuses it (strict=False uses the "
                                     f"{i} frames read)")
            warnings.warn(f"{msg}; using the {i} frames read", stacklevel=3)
            self._count = i  # len() now reports what can really be read

    def __len__(self) -> int:
        self._probe()
        if self._count is None:  # no count in the container: decode once
            cap = self._open()
            n = 0
            while cap.grab():
                n += 1
            cap.release()
            self._count = n
        return self._count


class FolderReader(VideoReader):
    """Frames stored as image files (jpg, png, tif, bmp): a folder (naturally sorted) or a list.

    A file that cannot be decoded is skipped with a warning naming it and dropped from
    ``files``, so ``len()`` and frame indices then count the frames that can be read
    (``strict=True``: :class:`VideoReadError` naming it). A file whose header announces more
    than ``max_pixels`` pixels is refused before it is decoded, whatever ``strict`` says. A frame
    of another size than the first raises :class:`VideoReadError` naming its file and both sizes,
    unless ``size=`` resizes every frame.
    """

    def __init__(self, files: str | os.PathLike | Sequence[str | os.PathLike], **options: Any):
        super().__init__(**options)
        if isinstance(files, (str, os.PathLike)):
            self.name = str(files)
            self.files = list_frames(files)
            if not self.files:
                raise VideoReadError(f"{files}: frame folder has no image files "
                                     f"({', '.join(IMAGE_EXTENSIONS)})")
        else:
            self.files = [Path(f) for f in files]
            if not self.files:
                raise ValueError("files must list at least one image file, got an empty list")
            self.name = str(self.files[0].parent)
        self._native_grey: bool | None = None

    def _imread(self, path: Path, flags: int) -> np.ndarray | None:
        """The decoded image, or None for a corrupt file that is skipped (not ``strict``)."""
        hw = image_size(path) if path.is_file() else None
        if hw is not None and hw[0] * hw[1] > self.max_pixels:
            raise _too_large(str(path), hw[0], hw[1], self.max_pixels)
        img = cv2.imread(str(path), flags)
        if img is None:
            if not path.is_file():
                raise FileNotFoundError(f"frame file not found: {path}")
            if self.strict:
                raise VideoReadError(f"{path}: cannot decode this image file (corrupt or "
                                     f"unsupported); strict=True refuses it (strict=False skips it)")
            warnings.warn(f"{path}: cannot decode this image file (corrupt or unsupported); "
                          f"skipped it (strict=True refuses it)", stacklevel=4)
            if path in self.files:
                self.files.remove(path)
        return img

    def _grey(self) -> bool:
        """Whether frames are read as single-channel images."""
        if self.grayscale is not None:
            return self.grayscale
        while self._native_grey is None:  # keep the files' own channels: probe the first one
            if not self.files:
                raise VideoReadError(f"{self.name}: none of the frame files can be decoded")
            first = self._imread(self.files[0], cv2.IMREAD_UNCHANGED)
            if first is not None:
                self._native_grey = first.ndim == 2 or first.shape[2] == 1
        return self._native_grey

    def _frames(self, start: int, stop: int | None) -> Iterator[np.ndarray]:
        grey = self._grey()
        # IMREAD_GRAYSCALE / IMREAD_COLOR also convert 16-bit and alpha images to 8-bit 1/3 channels
        flags = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR
        n = 0
        first: tuple[Path, tuple[int, ...]] | None = None  # the pass's first frame: its file, H x W
        for path in self.files[start:stop]:
            img = self._imread(path, flags)
            if img is None:
                continue
            # checked here, where the file is known; with size= every frame is resized to it
            if first is None:
                first = path, img.shape[:2]
            elif self.size is None and img.shape[:2] != first[1]:
                (h, w), (h0, w0) = img.shape[:2], first[1]
                raise VideoReadError(f"{path}: frame of {h}x{w} (H x W), but the frame file "
                                     f"{first[0].name} before it is {h0}x{w0}; the frames of a "
                                     f"folder must have one size: pass size=(H, W) to resize them")
            n += 1
            yield img if grey else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if n == 0 and not self.files:
            raise VideoReadError(f"{self.name}: none of the frame files can be decoded")

    def __len__(self) -> int:
        return len(self.files)


class ArrayReader(VideoReader):
    """Frames already in memory: uint8 ``[T, C, H, W]`` (C = 1 or 3) or ``[T, H, W]``."""

    def __init__(self, frames: Any, **options: Any):
        super().__init__(**options)
        if isinstance(frames, torch.Tensor):
            frames = frames.detach().cpu().numpy()
        if not isinstance(frames, np.ndarray):
            raise TypeError(f"frames must be a uint8 array or tensor, got {type(frames).__name__}")
        if frames.dtype != np.uint8:
            raise TypeError(f"frames must be uint8 (0..255), got dtype {frames.dtype}")
        if frames.ndim == 3:
            frames = frames[:, None]
        if frames.ndim != 4 or frames.shape[1] not in (1, 3):
            raise ValueError(f"frames must be [T, C, H, W] with C = 1 or 3, or [T, H, W], got "
                             f"shape {frames.shape}")
        self.frames = frames
        self.name = f"array{list(frames.shape)}"

    def _frames(self, start: int, stop: int | None) -> Iterator[np.ndarray]:
        for f in self.frames[start:stop]:
            yield f[0] if f.shape[0] == 1 else f.transpose(1, 2, 0)

    def _chunks(self, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        if self.size is None and self.grayscale is None:  # nothing to convert: zero-copy views
            frames = self.frames[start:stop]
            for i in range(0, frames.shape[0], self.chunk_size):
                yield torch.from_numpy(np.ascontiguousarray(frames[i:i + self.chunk_size]))
            return
        yield from super()._chunks(start, stop)

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def open_video(source: Any, *, chunk_size: int = 64, grayscale: bool | None = None,
               size: tuple[int, int] | None = None, fps: float | None = None,
               max_pixels: int | None = None, strict: bool = False) -> VideoReader:
    """A re-iterable reader of ``source``, yielding uint8 ``[t, C, H, W]`` chunks.

    Args:
        source: a video file path (any container OpenCV/FFmpeg decodes), a frame folder path,
            a list of frame image paths, an uint8 array/tensor ``[T, C, H, W]`` or ``[T, H, W]``,
            or a :class:`VideoReader` (returned unchanged: its own options apply).
        chunk_size: frames per yielded chunk; bounds the memory of one iteration step.
        grayscale: None keeps the source's channels, True gives ``C = 1``, False ``C = 3``.
        size: ``(H, W)`` to resize every frame to, or None.
        fps: frame rate of a folder or array (files report their own; a value here overrides).
        max_pixels: the most pixels (H x W) a source frame may have, checked from the file's
            header before decoding; None: ``$VADX_MAX_PIXELS`` or :data:`DEFAULT_MAX_PIXELS`
            (40 million).
        strict: raise on a corrupt frame file (default: skip it with a warning naming it) and
            on a truncated video file (default: yield the frames it has, with a warning).

    Raises:
        FileNotFoundError: the path does not exist.
        VideoReadError: the file or folder exists but holds no decodable video, a frame is
            larger than ``max_pixels``, or (``strict``) a frame file is corrupt.
    """
    options = dict(chunk_size=chunk_size, grayscale=grayscale, size=size, fps=fps,
                   max_pixels=max_pixels, strict=strict)
    if isinstance(source, VideoReader):
        return source
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return ArrayReader(source, **options)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return FolderReader(path, **options)
        if not path.exists():
            raise FileNotFoundError(f"video not found: {path}")
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise ValueError(f"source {path} is a single image; pass its folder or a list of frame "
                             f"files to read a frame sequence")
        reader = FileReader(path, **options)
        reader._probe()  # fail here, naming the file, if it is not a readable video
        return reader
    if isinstance(source, Sequence) and source and all(isinstance(s, (str, os.PathLike)) for s in source):
        return FolderReader(source, **options)
    raise TypeError(f"source must be a video file, a frame folder, a list of frame files or a uint8 "
                    f"array [T, C, H, W], got {type(source).__name__}")


def read_video(source: Any, **options: Any) -> torch.Tensor:
    """All frames of ``source`` as one uint8 tensor ``[T, C, H, W]`` (see :func:`open_video`)."""
    return open_video(source, **options).read()
