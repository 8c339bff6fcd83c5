"""The vadx model file: safetensors tensors + one JSON header (never pickle).

The header (safetensors metadata key ``"vadx"``) holds the format and its version, the detector's
registry name, the plugin that registered it (recorded on the class by the host at
registration, so writing needs no plugin lookup), the vadx version, the constructor parameters
and the fitted attributes that are JSON values. Tensors are the fitted tensors by attribute name
and the state dicts of fitted ``nn.Module``s as ``<attribute>.<key>``. This module writes and
reads files; :func:`vadx.load` (in :mod:`vadx.loading`) turns one back into a detector.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from typing import Any

from torch import Tensor, nn

from vadx.errors import ModelFileError

FORMAT = "vadx.detector"
FORMAT_VERSION = 1


def write(path: str | os.PathLike, detector: str, plugin: dict[str, Any] | None,
          params: dict[str, Any], fitted: dict[str, Any]) -> None:
    """Write a model file of detector ``detector`` from its parameters and fitted attributes."""
    from safetensors.torch import save_file

    tensors: dict[str, Tensor] = {}
    values: dict[str, Any] = {}
    for k, v in fitted.items():
        if isinstance(v, Tensor):
            tensors[k] = v
        elif isinstance(v, nn.Module):
            tensors.update({f"{k}.{n}": t for n, t in v.state_dict().items()})
        else:
            values[k] = v
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "detector": detector,
        "plugin": plugin,
        "vadx_version": importlib.metadata.version("vadx"),
        "params": params,
        "fitted": values,
    }
    try:
        meta = json.dumps(header, allow_nan=True)
    except TypeError as e:
        raise TypeError(f"{detector}: parameters and fitted attributes must be tensors, "
                        f"nn.Modules or JSON values to be saved: {e}") from e
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    save_file(tensors, os.fspath(path), metadata={"vadx": meta})


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a vadx model file (no tensors are read)."""
    from safetensors import safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:
        raise ModelFileError(f"{path} is not a readable vadx model file (safetensors): {e}") from e
    if "vadx" not in meta:
        raise ModelFileError(f"{path} is a safetensors file but not a vadx model (no 'vadx' metadata)")
    try:
        header = json.loads(meta["vadx"])
    except ValueError as e:
        raise ModelFileError(f"{path}: corrupted vadx metadata: {e}") from e
    if header.get("format") != FORMAT or not isinstance(header.get("detector"), str):
        raise ModelFileError(f"{path}: not a vadx detector file (format={header.get('format')!r})")
    if header.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(f"{path} has format version {header['format_version']}; this vadx reads "
                             f"up to {FORMAT_VERSION}: upgrade vadx")
    return header


def read_tensors(path: str | os.PathLike) -> dict[str, Tensor]:
    """Every tensor of a model file, by key."""
    from safetensors.torch import load_file

    try:
        return load_file(os.fspath(path))
    except Exception as e:
        raise ModelFileError(f"{os.fspath(path)}: corrupted tensor data: {e}") from e
