"""The hooks vadx plugins implement (pluggy project "vadx"; entry-point group "vadx")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:
    from vadx.detector import Detector

hookspec = pluggy.HookspecMarker("vadx")
hookimpl = pluggy.HookimplMarker("vadx")


@hookspec
def vadx_register_detectors(register: Callable[[type[Detector]], None]) -> None:
    """Register Detector subclasses by calling ``register(cls)`` once for each."""


@hookspec
def vadx_register_object_detectors(register: Callable[[type], None]) -> None:
    """Register object detector classes (:class:`vadx.objects.ObjectDetector` subclasses with a
    lower-case ``name``) by calling ``register(cls)`` once for each; detectors that use scene
    context (two-stream's bag-of-objects) look them up by name."""
