"""``vadx.load``: a model file back into a fitted detector, through the plugin that provides it.

Kept apart from the contract (:mod:`vadx.detector`) because it needs the plugin host; the file
format itself is :mod:`vadx.model_file`.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import Tensor, nn

from vadx import model_file, plugins
from vadx.detector import Detector
from vadx.errors import ModelFileError


def load(path: str | os.PathLike, device: str | torch.device | None = None, *,
         cls: type[Detector] | None = None) -> Detector:
    """Load a detector saved with :meth:`Detector.save`; its plugin must be installed.

    Args:
        path: the model file.
        device: where to move the fitted tensors (default: CPU).
        cls: restore into this class instead of the installed one registered under the
            file's detector name (a plugin's tests, before it is installed).
    """
    header = model_file.read_header(path)
    if cls is None:
        cls = _installed_class(path, header)
    elif header["detector"] != cls.name:
        raise ModelFileError(f"{os.fspath(path)} holds a {header['detector']!r} detector, not "
                             f"{cls.name!r}")
    tensors = model_file.read_tensors(path)
    det = cls(**header["params"])
    for k, v in header["fitted"].items():
        setattr(det, k, v)
    det._build_modules()
    modules: dict[str, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        attr, _, sub = key.partition(".")
        if sub:
            modules.setdefault(attr, {})[sub] = value
        else:
            setattr(det, attr, value)
    for attr, state in modules.items():
        module = getattr(det, attr, None)
        if not isinstance(module, nn.Module):
            raise ModelFileError(f"{os.fspath(path)}: {type(det).__name__}._build_modules() must "
                                 f"create the module {attr!r} to load it")
        module.load_state_dict(state, strict=True)
    det._fitted = True
    return det.to(device) if device is not None else det


def _installed_class(path: str | os.PathLike, header: dict) -> type[Detector]:
    saved_by = header.get("plugin") or {}
    try:
        entry = plugins.get_detector(header["detector"])
    except LookupError as e:
        raise ModelFileError(
            f"{os.fspath(path)} holds a {header['detector']!r} detector (plugin "
            f"{saved_by.get('distribution') or '?'} {saved_by.get('version') or '?'}), which is not "
            f"installed: {e}") from e
    if saved_by.get("version") and entry.version and saved_by["version"] != entry.version:
        warnings.warn(f"{os.fspath(path)} was saved by {entry.distribution} {saved_by['version']}; "
                      f"{entry.version} is installed", stacklevel=3)
    return entry.cls
