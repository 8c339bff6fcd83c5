"""vadx plugin ``darknet``: the object detector ``darknet``, a Darknet YOLO network run in PyTorch.

:class:`DarknetDetector` (:mod:`vadx_darknet.detector`) takes a Darknet ``.cfg`` + ``.weights``
pair and a class-names file, given by path (Yolo-Fastest, YOLOv3/v4-tiny style networks), and
implements :class:`vadx.objects.ObjectDetector`. It is registered through the hook
``vadx_register_object_detectors`` like any plugin's object detector: the package is declared in
the "vadx" entry-point group as ``darknet`` (distribution ``vadx``), so ``VADX_LOAD_PLUGINS`` /
``VADX_DISABLE_PLUGINS`` treat it like any plugin. Detectors that use scene context (two-stream's
bag-of-objects) build it with ``vadx.plugins.create_object_detector("darknet", cfg=..., ...)``.

Why not OpenCV's DNN module: OpenCV 5 (installed here, 5.0.0) removed the Darknet importer
(``readNetFromDarknet`` is gone and ``readNet`` on a .cfg raises "Darknet importer has been
removed"), so the network is interpreted here in PyTorch from the same two files: the layers
YOLO-family cfgs use (convolutional with groups / batch norm / leaky or linear, maxpool,
route, shortcut, upsample, dropout, yolo; :mod:`vadx_darknet.network`, cfg parsing in
:mod:`vadx_darknet.cfg`). Decoding follows Darknet's ``[yolo]`` layer (``scale_x_y``, anchors by
mask), the image is stretched to the network size without letterboxing (Darknet's and OpenCV's
default), and boxes are suppressed per class by IoU (greedy NMS, :mod:`vadx_darknet.nms`).
"""

import vadx

from .cfg import parse_cfg
from .detector import DarknetDetector
from .network import DarknetNet
from .nms import nms

__all__ = ["DarknetDetector", "DarknetNet", "nms", "parse_cfg"]


@vadx.hookimpl
def vadx_register_object_detectors(register):
    register(DarknetDetector)
