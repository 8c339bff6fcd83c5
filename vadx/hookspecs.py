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
