"""vadx: video anomaly detection with published methods as plugins on fused C++/CUDA ops."""

from __future__ import annotations

import importlib
import importlib.metadata

import torch


def _load_op_library() -> None:
    """Import vadx._C (registers torch.ops.vadx.*) and check it matches the running torch."""
    rebuild = "pip install --no-build-isolation -e .  (or without -e for a regular install)"
    try:
        from vadx import _build_info
    except ImportError:
        built = None
    else:
        built = _build_info.torch_version
    try:
        from vadx import _C
    except ImportError as e:
        raise ImportError(
            f"vadx's compiled op library (vadx._C) could not be loaded: {e}. "
            f"It was built against torch {built or '(unknown: no build found)'}; "
            f"torch {torch.__version__} is installed. Rebuild it against the installed torch "
            f"from the vadx source tree: {rebuild}"
        ) from e
    if _C.torch_version != torch.__version__:
        raise ImportError(
            f"vadx's op library was built against torch {_C.torch_version} but torch "
            f"{torch.__version__} is installed; C++ ops are tied to the exact torch build. "
            f"Rebuild from the vadx source tree: {rebuild}"
        )


_load_op_library()

# noqa: E402 below: these need the op library loaded first.
from vadx import ops  # noqa: E402
from vadx.detector import Detector, Scores, Stream  # noqa: E402
from vadx.errors import ModelFileError, NotFittedError, PluginWarning  # noqa: E402
from vadx.loading import load  # noqa: E402
from vadx.params import ParameterError, Preset  # noqa: E402
from vadx.hookspecs import hookimpl  # noqa: E402

__version__ = importlib.metadata.version("vadx")

# Subpackages a user reaches as ``vadx.io`` etc. after a bare ``import vadx``, imported on first
# use (PEP 562): importing them all eagerly measured +0.18 s on top of ~4.6 s (mostly torch).
_LAZY = ("data", "evaluation", "features", "flow", "io", "metrics", "objects", "outputs", "params",
         "plugins", "postprocess", "precision", "progress", "testing")


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f"vadx.{name}")
    raise AttributeError(f"module 'vadx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def create(name: str, *, preset: str | None = None, **params) -> Detector:
    """A new, unfitted detector ``name`` (see ``vadx.list_detectors()``; ``"distribution:name"``
    picks one of several plugins that register the same name) with preset ``preset``'s
    parameters (``"demo"``, ``"cpu"``, ``"paper"``...: ``vadx info NAME`` lists them; None: the
    defaults) and ``params`` over them."""
    from vadx import plugins

    return plugins.create(name, preset=preset, **params)


def list_detectors() -> list[str]:
    """Names of the detectors that installed plugins provide."""
    from vadx import plugins

    return list(plugins.detectors())


__all__ = [
    "Detector",
    "ModelFileError",
    "NotFittedError",
    "ParameterError",
    "PluginWarning",
    "Preset",
    "Scores",
    "Stream",
    "__version__",
    "create",
    "hookimpl",
    "list_detectors",
    "load",
    "ops",
]
