"""The first-party plugin vadx_darknet: the object detector "darknet" (a Darknet YOLO in PyTorch)."""

from pathlib import Path

import pytest
import torch

import vadx_darknet
from vadx import plugins
from vadx_darknet import DarknetDetector, nms, parse_cfg

pytestmark = pytest.mark.usefixtures("one_thread")
W = Path(__file__).resolve().parents[2] / "shared" / "weights"
PED2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "ucsd_ped2"
XL = dict(cfg=W / "yolo-fastest-1.1-xl.cfg", weights=W / "yolo-fastest-1.1-xl.weights", names=W / "coco.names")
needs_yolo = pytest.mark.skipif(not all(p.is_file() for p in XL.values()), reason="shared Yolo-Fastest absent")


def test_registered_as_the_plugin_darknet():
    entry = plugins.object_detectors()["darknet"]
    assert entry.cls is DarknetDetector
    assert (entry.plugin, entry.distribution) == ("darknet", "vadx")
    assert plugins.pm.get_plugin("darknet") is vadx_darknet


def test_parse_cfg(tmp_path):
    cfg = tmp_path / "net.cfg"
    cfg.write_text("[net]\nwidth=64 # comment\n; a comment line\n\n[convolutional]\nfilters = 8\n")
    assert parse_cfg(cfg) == [{"type": "net", "width": "64"}, {"type": "convolutional", "filters": "8"}]
    cfg.write_text("[convolutional]\nfilters=8\n")
    with pytest.raises(ValueError, match="starts with a \\[net\\] section"):
        parse_cfg(cfg)
    cfg.write_text("[net]\nwidth\n")
    with pytest.raises(ValueError, match="net.cfg:2: expected"):
        parse_cfg(cfg)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]]).float()
    scores = torch.tensor([0.6, 0.9, 0.5, 0.7])
    # box 1 (0.9) suppresses 0 and 3 (IoU > 0.45); box 2 does not overlap
    assert nms(boxes, scores, 0.45).tolist() == [1, 2]
    assert nms(boxes, scores, 1.0).tolist() == [1, 3, 0, 2]


@needs_yolo
def test_darknet_yolo_fastest_on_a_ped2_frame():
    det = plugins.create_object_detector("darknet", **XL)
    assert isinstance(det, DarknetDetector)
    assert len(det.classes) == 80 and det.classes[0] == "person"
    if (PED2 / "testing").is_dir():
        import cv2
        img = cv2.imread(str(PED2 / "testing" / "frames" / "02" / "100.jpg"), cv2.IMREAD_GRAYSCALE)
        frames = torch.from_numpy(img)[None, None]
    else:
        frames = torch.zeros(1, 1, 240, 360, dtype=torch.uint8)
    found = det.detect(frames)
    assert len(found) == 1
    if (PED2 / "testing").is_dir():  # Ped2 is a walkway: the detector must find people
        d = found[0]
        assert ((d.class_ids == 0) & (d.scores >= 0.5)).sum() >= 1
        assert (d.boxes[:, 2] > d.boxes[:, 0]).all() and (d.boxes[:, 3] > d.boxes[:, 1]).all()
        assert (d.scores[:-1] >= d.scores[1:]).all()  # by decreasing confidence


@needs_yolo
def test_darknet_rejects_mismatched_files(tmp_path):
    with pytest.raises(ValueError, match="cfg and weights do not match|end early"):
        DarknetDetector(cfg=W / "yolo-fastest-1.1.cfg", weights=XL["weights"], names=XL["names"])
    with pytest.raises(FileNotFoundError, match="names must be an existing file"):
        DarknetDetector(cfg=XL["cfg"], weights=XL["weights"], names=tmp_path / "none.names")
    (tmp_path / "few.names").write_text("a\nb\n")
    with pytest.raises(ValueError, match="lists 2 classes; the cfg's \\[yolo\\] layers have classes=80"):
        DarknetDetector(cfg=XL["cfg"], weights=XL["weights"], names=tmp_path / "few.names")
