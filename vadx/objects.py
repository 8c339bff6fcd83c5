"""The object-detector contract, for detectors that use scene context (e.g. two-stream's
bag-of-objects): :class:`ObjectDetector` and its per-frame result, :class:`Detections`.

Implementations live in plugins, not here: vadx's own ``darknet`` is the first-party plugin
``vadx_darknet`` (plugins/vadx_darknet). Plugins register object detectors through the hook
``vadx_register_object_detectors(register)`` (:mod:`vadx.hookspecs`); look them up with
:func:`vadx.plugins.object_detectors` and build one with
:func:`vadx.plugins.create_object_detector`. This module depends on torch only, so a plugin can
import it without importing the plugin host.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

from torch import Tensor


class Detections(NamedTuple):
    """The objects found in one frame.

    Attributes:
        class_ids: int64 ``[n]`` indices into the detector's ``classes``.
        scores: float32 ``[n]`` confidences in [0, 1].
        boxes: float32 ``[n, 4]`` (x1, y1, x2, y2) in input-frame pixels.
    """

    class_ids: Tensor
    scores: Tensor
    boxes: Tensor


class ObjectDetector:
    """Base class of object detectors.

    To write one, subclass it and give it:

    - ``name``: a class attribute, the lower-case registry name (``"darknet"``; letters, digits
      and single hyphens, starting with a letter), unique among the installed object detectors.
    - a constructor that takes keyword-only parameters (file paths, thresholds, ...): users build
      it with ``vadx.plugins.create_object_detector(name, **params)``, and detectors pass a
      user's ``{"name": ..., **params}`` dict through unchanged.
    - ``classes``: the class names, ``classes[i]`` being the name of class id ``i``; consumers
      size per-class features (two-stream's bag-of-objects) by ``len(classes)``.
    - ``detect(frames)``: uint8 ``[T, C, H, W]`` frames (C = 1 grey or 3 RGB) in, a list of ``T``
      :class:`Detections` out, one per frame, boxes in the input frames' pixels. Keep all
      objects above the detector's own confidence threshold; consumers filter further.
    - optionally ``to(device)`` (returning self): consumers call it, when present, to move the
      detector next to their own networks.

    Then register the class from a plugin module declared in the "vadx" entry-point group::

        import torch
        import vadx
        from vadx.objects import Detections, ObjectDetector

        class Everything(ObjectDetector):
            name = "everything"
            classes = ["frame"]

            def detect(self, frames):
                t, _, h, w = frames.shape
                box = torch.tensor([[0.0, 0.0, w, h]])
                return [Detections(torch.zeros(1, dtype=torch.long), torch.ones(1), box)] * t

        @vadx.hookimpl
        def vadx_register_object_detectors(register):
            register(Everything)
    """

    name: ClassVar[str] = ""
    classes: list[str]

    def detect(self, frames: Tensor) -> list[Detections]:
        """Objects in each frame of uint8 ``[T, C, H, W]`` (C = 1 grey or 3 RGB)."""
        raise NotImplementedError(f"{type(self).__name__} must implement detect(frames)")
