"""Output files that never overwrite an input and never look complete when they are not.

Every file vadx writes (CSV, score plots, overlay videos, JSON results, model files) goes
through this module:

- :func:`check_outputs` compares output paths with input paths *before anything is opened*:
  the same file (by device and inode, so hard links, symlinks and ``a/../b`` spellings are
  caught), an output that would resolve to an input once its folders exist, an output inside
  an input folder (a frame folder would read it as a frame), or two outputs that are one file
  are refused with an :class:`OutputConflictError` naming both arguments.
- :func:`atomic_open` / :func:`atomic_path` write to a temporary file in the destination's
  folder and rename it over the destination only when the block succeeds (``os.replace`` is
  atomic within a file system), so a failure or an interrupt leaves the previous file, or no
  file, never a truncated one. The temporary file is created as ``open()`` would create the
  file: mode ``0o666`` minus the umask, or the existing destination's permission bits.
- A symlink at the destination is written *through* by default, as ``open(path, "w")`` does:
  the link stays and its target is replaced atomically. ``replace_symlink=True`` replaces the
  link itself by a regular file instead. A destination that is not writable is refused with
  PermissionError, as ``open()`` would. Unlike ``open()``, the new file is a new inode: other
  hard links to the old file keep the old content.

Only the standard library: model files (:mod:`vadx.model_file`) use it below the detector
contract, so it must import nothing of vadx.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

PathLike = str | os.PathLike


class OutputConflictError(ValueError):
    """An output path is an input (or another output) of the same command."""


# ---------------------------------------------------------------------------- conflicts
def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_outputs(inputs: Iterable[tuple[str, PathLike]], outputs: Iterable[tuple[str, PathLike]]) -> None:
    """Refuse outputs that would overwrite an input, land inside an input folder, or collide.

    Args:
        inputs: ``(argument, path)`` pairs, e.g. ``("MODEL", "m.vadx")``, ``("INPUT", "cam.mp4")``;
            files or folders.
        outputs: ``(argument, path)`` pairs of the files about to be written, e.g.
            ``("--out", "scores.csv")``.

    Raises:
        OutputConflictError: naming both arguments and both paths.
    """
    ins = []
    for label, p in inputs:
        real = os.path.realpath(p)
        ins.append((label, os.fspath(p), real, _identity(real), os.path.isdir(real)))
    seen: list[tuple[str, str, str, tuple[int, int] | None]] = []
    for label, p in outputs:
        shown = os.fspath(p)
        real = os.path.realpath(p)  # follows symlinks and collapses "..", as writing would
        ident = _identity(real)
        if os.path.isdir(real):
            raise OutputConflictError(f"{label} {shown} is a folder; expected a file path")
        for in_label, in_shown, in_real, in_ident, is_dir in ins:
            if real == in_real or (ident is not None and ident == in_ident):
                raise OutputConflictError(
                    f"{label} {shown} is the same file as {in_label} {in_shown}: refusing to "
                    f"overwrite an input; choose another output path")
            if is_dir and _inside(real, in_real, in_ident):
                raise OutputConflictError(
                    f"{label} {shown} is inside the input folder {in_label} {in_shown}, which "
                    f"would then read it as part of that input; write it elsewhere")
        for o_label, o_shown, o_real, o_ident in seen:
            if real == o_real or (ident is not None and ident == o_ident):
                raise OutputConflictError(f"{label} {shown} and {o_label} {o_shown} are the same "
                                          f"file: give each output its own path")
        seen.append((label, shown, real, ident))


def _inside(path: str, folder: str, folder_ident: tuple[int, int] | None) -> bool:
    """``path`` (resolved) is below ``folder``: by name, or by identity of an existing ancestor
    (bind mounts and hard-linked folders have other names)."""
    if os.path.commonpath([path, folder]) == folder:
        return True
    parent = os.path.dirname(path)
    while folder_ident is not None and parent and parent != os.path.dirname(parent):
        if _identity(parent) == folder_ident:
            return True
        parent = os.path.dirname(parent)
    return False


# ---------------------------------------------------------------------------- atomic writes
def destination(path: PathLike, *, replace_symlink: bool = False) -> str:
    """The file a write to ``path`` replaces: ``path`` itself, or a symlink's final target
    (written through) unless ``replace_symlink``."""
    path = os.path.abspath(os.fspath(path))
    if not replace_symlink and os.path.islink(path):
        return os.path.realpath(path)
    return path


def _temporary(dest: str) -> tuple[str, int]:
    """Create an empty temporary file beside ``dest`` (same suffix, so writers that choose a
    format by suffix still work); returns its path and an open descriptor."""
    if os.path.exists(dest) and not os.access(dest, os.W_OK):
        # renaming over it would succeed, but open() would refuse: so do we
        raise PermissionError(f"{dest} exists and is not writable; refusing to replace it")
    folder, name = os.path.split(dest)
    stem, suffix = os.path.splitext(name)
    for _ in range(100):
        tmp = os.path.join(folder, f".{stem}.{secrets.token_hex(4)}.tmp{suffix}")
        try:
            # 0o666 and the kernel applies the umask: the mode open() would give a new file
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover - 100 collisions of 32 random bits
        raise FileExistsError(f"could not create a temporary file beside {dest}")
    try:
        st = os.stat(dest)
    except OSError:
        pass
    else:
        if stat.S_ISREG(st.st_mode):  # replacing a file keeps its permissions, as open() does
            try:
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
            except (AttributeError, OSError):
                pass
    return tmp, fd


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: PathLike, *, replace_symlink: bool = False) -> Iterator[str]:
    """A temporary path to write (by a library that opens files itself: OpenCV, matplotlib);
    renamed to ``path`` when the block succeeds, removed when it raises. Missing folders of
    ``path`` are created."""
    dest = destination(path, replace_symlink=replace_symlink)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp, fd = _temporary(dest)
    os.close(fd)
    try:
        yield tmp
        _fsync(tmp)  # the data is on disk before the name points at it
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@contextmanager
def atomic_open(path: PathLike, mode: str = "w", *, replace_symlink: bool = False,
                **kwargs: Any) -> Iterator[IO[Any]]:
    """``open(path, mode)`` ("w" or "wb", with open's other keyword arguments) that writes a
    temporary file, renamed to ``path`` when the block succeeds and removed when it raises
    (:func:`atomic_path` with the file opened for you)."""
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"mode must be 'w', 'wt' or 'wb', got {mode!r}")
    with atomic_path(path, replace_symlink=replace_symlink) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f


def input_name(path: str) -> str:
    """An input's short name: a file's stem or a folder's name (``video`` if neither)."""
    p = Path(path.rstrip("/\\") or path)
    return (p.name if p.is_dir() else p.stem) or "video"


def unique_names(bases: list[str]) -> list[str]:
    """``bases`` made unique in order: a repeat gets ``-2``, ``-3``... (output and camera names)."""
    out: list[str] = []
    for base in bases:
        name, k = base, 2
        while name in out:
            name, k = f"{base}-{k}", k + 1
        out.append(name)
    return out


def per_input_path(template: str, name: str, several: bool = True) -> Path:
    """The output file of one input: ``{name}`` in ``template`` replaced by ``name``, else
    ``_<name>`` inserted before the suffix when there are several inputs, else ``template``."""
    if "{name}" in template:
        return Path(template.replace("{name}", name))
    path = Path(template)
    return path.with_name(f"{path.stem}_{name}{path.suffix}") if several else path
