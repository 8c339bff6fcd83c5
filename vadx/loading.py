"""``vadx.load``: a model file back into a fitted detector, through the plugin that provides it.

Kept apart from the contract (:mod:`vadx.detector`) because it needs the plugin host; the file
format and its schema are :mod:`vadx.model_file`. A model file is untrusted input, so beyond
the header schema loading checks it against the class it is loaded into, before allocating:

- the plugin distribution recorded in the file must be the one that provides the detector now
  (a same-named detector of another distribution is another method); ``allow_other_plugin``
  overrides this (a renamed or forked distribution);
- ``params`` must be the class's parameters (checked as at construction);
- ``fitted`` values and tensors may only set *fitted attributes*: instance attributes named
  like ``level_``; a name the class itself defines (method, property, class attribute) is
  refused, so a file cannot replace ``score`` or ``to``;
- ``_build_modules()`` runs first on the meta device (no memory): every persistent tensor of
  the fitted modules must be in the file with the same shape, and what the modules hold
  beyond the file's tensors is at most :data:`vadx.model_file.MAX_UNSAVED_BYTES`; only then
  are the modules built for real and filled.

Every failure is a :class:`vadx.errors.ModelFileError` naming the file and the field.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from vadx import model_file, plugins
from vadx.detector import Detector
from vadx.errors import ModelFileError


def load(path: str | os.PathLike, device: str | torch.device | None = None, *,
         cls: type[Detector] | None = None, allow_other_plugin: bool = False) -> Detector:
    """Load a detector saved with :meth:`Detector.save`; its plugin must be installed.

    The file is read into memory once: the detector owns its tensors, and later changes to
    the file do not reach it.

    Args:
        path: the model file.
        device: where to move the fitted tensors (default: CPU).
        cls: restore into this class instead of the installed one registered under the
            file's detector name (a plugin's tests, before it is installed).
        allow_other_plugin: load even if the file was saved by another plugin distribution
            than the one providing the detector now (a renamed or forked distribution).

    Raises:
        FileNotFoundError: no file at ``path``.
        ModelFileError: the file is not a valid vadx model for this detector (the message
            names the field).
    """
    shown = os.fspath(path)
    header, tensors = model_file.read(path)
    if cls is None:
        cls = _installed_class(shown, header, allow_other_plugin)
    else:
        if header["detector"] != cls.name:
            raise ModelFileError(f"{shown} holds a {header['detector']!r} detector, not {cls.name!r}")
        registered = cls._vadx_plugin_of()
        if registered is not None:
            _check_plugin(shown, header, registered.get("distribution"), allow_other_plugin)
    model_file.check_tensors(shown, header, tensors)
    params = header["params"]
    known = cls.param_names()
    for key in params:
        if key not in known:
            raise ModelFileError(f"{shown}: field 'params.{key}' is not a parameter of "
                                 f"{cls.__name__}; its parameters: {', '.join(known)}")
    fitted = header["fitted"]
    for key in list(fitted) + sorted({k.partition(".")[0] for k in tensors}):
        _check_settable(shown, cls, key)

    probe = _new(shown, cls, params, fitted)
    _check_module_sizes(shown, probe, tensors)

    det = _new(shown, cls, params, fitted)
    try:
        det._build_modules()
    except Exception as e:
        raise ModelFileError(f"{shown}: {cls.__name__}._build_modules() failed with the file's "
                             f"params and fitted values: {type(e).__name__}: {e}") from e
    modules: dict[str, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        attr, _, sub = key.partition(".")
        if sub:
            modules.setdefault(attr, {})[sub] = value
        elif isinstance(getattr(det, attr, None), nn.Module):
            raise ModelFileError(f"{shown}: field 'tensors.{key}' must be the module {attr!r}'s "
                                 f"state ('{attr}.<key>'), got a single tensor")
        else:
            setattr(det, attr, value)
    for attr, state in modules.items():
        module = getattr(det, attr, None)
        if not isinstance(module, nn.Module):
            raise ModelFileError(f"{shown}: {type(det).__name__}._build_modules() must "
                                 f"create the module {attr!r} to load it")
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ModelFileError(f"{shown}: field 'tensors.{attr}.*' does not fit the module "
                                 f"{attr!r}: {e}") from e
    det._fitted = True
    if header.get("preset") is not None:
        det._preset = dict(header["preset"])
    return det.to(device) if device is not None else det


def _new(path: str, cls: type[Detector], params: dict[str, Any], fitted: dict[str, Any]) -> Detector:
    """An instance with the file's parameters and fitted JSON values."""
    try:
        det = cls(**params)
    except Exception as e:
        raise ModelFileError(f"{path}: field 'params' is not valid for {cls.__name__}: "
                             f"{type(e).__name__}: {e}") from e
    for k, v in fitted.items():
        setattr(det, k, v)
    return det


def _check_settable(path: str, cls: type[Detector], key: str) -> None:
    """``key`` may be set by a file: a fitted name the class does not define itself."""
    if not model_file.is_fitted_name(key):
        raise ModelFileError(f"{path}: field {key!r} must be a fitted attribute name (an "
                             f"identifier ending in '_')")
    if hasattr(cls, key):  # a method, property or class attribute: never data from a file
        raise ModelFileError(f"{path}: field {key!r} names an attribute {cls.__name__} defines "
                             f"({type(getattr(cls, key, None)).__name__}); a model file may only "
                             f"set fitted attributes")
    if key in cls.param_names():
        raise ModelFileError(f"{path}: field {key!r} is a parameter of {cls.__name__}, which "
                             f"belongs in 'params'")


def _state_bytes(module: nn.Module) -> int:
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def _check_module_sizes(path: str, probe: Detector, tensors: dict[str, Tensor]) -> None:
    """Build ``probe``'s modules on the meta device and compare them with the file's tensors,
    so a crafted size cannot make loading allocate more than the file holds."""
    before = set(vars(probe))
    probe.device = torch.device("meta")  # plugins that move their modules to self.device
    try:
        with torch.device("meta"):
            probe._build_modules()
    except Exception as e:
        raise ModelFileError(
            f"{path}: {type(probe).__name__}._build_modules() failed on the meta device, where "
            f"vadx.load builds the modules first to check the file's sizes before allocating "
            f"(it must create untrained modules from params and fitted values only): "
            f"{type(e).__name__}: {e}") from e
    unsaved = 0
    for attr, value in vars(probe).items():
        if isinstance(value, nn.Module) and model_file.is_fitted_name(attr):
            state = value.state_dict()
            saved = {k.partition(".")[2]: t for k, t in tensors.items() if k.partition(".")[0] == attr}
            missing = sorted(set(state) - set(saved))
            if missing:
                raise ModelFileError(f"{path}: the module {attr!r} needs the tensor "
                                     f"'{attr}.{missing[0]}', which the file lacks "
                                     f"({len(missing)} of {len(state)} missing)")
            for k, t in state.items():
                if list(t.shape) != list(saved[k].shape):
                    raise ModelFileError(f"{path}: field 'tensors.{attr}.{k}' must have the shape "
                                         f"{list(t.shape)} the module {attr!r} is built with from "
                                         f"the file's params, got {list(saved[k].shape)}")
            unsaved += _state_bytes(value) - sum(t.numel() * t.element_size() for t in state.values())
        elif attr not in before and isinstance(value, nn.Module):
            unsaved += _state_bytes(value)
        elif attr not in before and isinstance(value, Tensor):
            unsaved += value.numel() * value.element_size()
    if unsaved > model_file.MAX_UNSAVED_BYTES:
        raise ModelFileError(f"{path}: building the modules from the file's params and fitted "
                             f"values would allocate {unsaved} bytes beyond the tensors it holds; "
                             f"vadx.model_file.MAX_UNSAVED_BYTES is {model_file.MAX_UNSAVED_BYTES}")


def _check_plugin(path: str, header: dict, distribution: str | None, allow_other: bool) -> None:
    saved = (header.get("plugin") or {}).get("distribution")
    if saved != distribution and not allow_other:
        raise ModelFileError(
            f"{path} was saved by the plugin distribution {saved or '(none recorded)'}, but "
            f"{header['detector']!r} is provided by {distribution or '(no distribution)'}: a "
            f"same-named detector of another plugin is another method; pass "
            f"allow_other_plugin=True to vadx.load to load it anyway")


def _installed_class(path: str, header: dict, allow_other: bool) -> type[Detector]:
    saved_by = header.get("plugin") or {}
    name = header["detector"]
    if len(plugins.detector_claims(name)) > 1 and saved_by.get("distribution"):
        name = f"{saved_by['distribution']}:{name}"  # a shared name: the file says whose
    try:
        entry = plugins.get_detector(name)
    except LookupError as e:
        raise ModelFileError(
            f"{path} holds a {header['detector']!r} detector (plugin "
            f"{saved_by.get('distribution') or '?'} {saved_by.get('version') or '?'}), which is not "
            f"installed: {e}") from e
    _check_plugin(path, header, entry.distribution, allow_other)
    if saved_by.get("version") and entry.version and saved_by["version"] != entry.version:
        warnings.warn(f"{path} was saved by {entry.distribution} {saved_by['version']}; "
                      f"{entry.version} is installed", stacklevel=3)
    return entry.cls
