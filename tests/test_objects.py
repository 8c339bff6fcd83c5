"""Object detectors: the second plugin hook, bag-of-objects, the built-in Darknet detector."""

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import make_dist

import vadx
from vadx import plugins
from vadx.objects import Detections, DarknetDetector, bag_of_objects, create_object_detector

pytestmark = pytest.mark.usefixtures("one_thread")
W = Path(__file__).resolve().parents[2] / "shared" / "weights"
PED2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "ucsd_ped2"
XL = dict(cfg=W / "yolo-fastest-1.1-xl.cfg", weights=W / "yolo-fastest-1.1-xl.weights", names=W / "coco.names")
needs_yolo = pytest.mark.skipif(not all(p.is_file() for p in XL.values()), reason="shared Yolo-Fastest absent")

TOY = ("import torch, vadx\nfrom vadx.objects import ObjectDetector\n"
       "class Toy(ObjectDetector):\n    name = 'toy'\n    classes = ['thing']\n"
       "@vadx.hookimpl\ndef vadx_register_object_detectors(register): register(Toy)\n")


def test_object_detector_hook_registers_and_isolates(plugin_env, tmp_path, monkeypatch):
    make_dist(tmp_path / "a", "vadx-toy", "1.0", {"toy": "toy_mod"}, {"toy_mod.py": TOY})
    make_dist(tmp_path / "b", "vadx-zbad", "1.0", {"zbad": "zbad_mod"},
              {"zbad_mod.py": "import vadx\n@vadx.hookimpl\n"
                              "def vadx_register_object_detectors(register): register(int)\n"})
    with pytest.warns(vadx.PluginWarning, match="zbad"):
        plugin_env(tmp_path / "a", tmp_path / "b")
        monkeypatch.delenv("VADX_DISABLE_PLUGINS", raising=False)  # plugin_env hides vadx's own
        plugins.reload()
    found = {p.name: p for p in plugins.list_plugins()}
    assert found["toy"].object_detectors == ["toy"] and found["toy"].error is None
    assert re.search(r"vadx_register_object_detectors: TypeError: register\(\) takes a "
                     r"vadx.objects.ObjectDetector subclass", found["zbad"].error)
    entry = plugins.get_object_detector("toy")
    assert (entry.plugin, entry.distribution, entry.version) == ("toy", "vadx-toy", "1.0")
    assert create_object_detector("toy").classes == ["thing"]
    # vadx's own darknet registers through the same hook, as the entry point "objects"
    assert plugins.object_detectors()["darknet"].cls is DarknetDetector
    assert found["objects"].object_detectors == ["darknet"]
    with pytest.raises(LookupError, match="unknown object detector 'nope'; installed: darknet, toy"):
        plugins.get_object_detector("nope")


def test_cli_plugins_json_adds_object_detectors():
    env = {k: v for k, v in os.environ.items() if k not in ("VADX_LOAD_PLUGINS", "VADX_DISABLE_PLUGINS")}
    out = subprocess.run([sys.executable, "-m", "vadx", "plugins", "--json"], env=env,
                         capture_output=True, text=True, check=True).stdout
    listed = {p["name"]: p for p in json.loads(out)}
    assert listed["objects"]["object_detectors"] == ["darknet"]
    assert all("object_detectors" not in p for n, p in listed.items() if n != "objects")


def test_bag_of_objects_counts_confident_objects():
    dets = [Detections(torch.tensor([0, 0, 2, 1]), torch.tensor([0.9, 0.5, 0.7, 0.49]), torch.zeros(4, 4)),
            Detections(torch.zeros(0, dtype=torch.long), torch.zeros(0), torch.zeros(0, 4))]
    assert bag_of_objects(dets, 3).tolist() == [[2.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match=r"class ids outside \[0, 2\)"):
        bag_of_objects(dets, 2)
    with pytest.raises(ValueError, match="min_confidence must be in"):
        bag_of_objects(dets, 3, min_confidence=2)


@needs_yolo
def test_darknet_yolo_fastest_on_a_ped2_frame():
    det = DarknetDetector(**XL)
    assert len(det.classes) == 80 and det.classes[0] == "person"
    if (PED2 / "testing").is_dir():
        import cv2
        img = cv2.imread(str(PED2 / "testing" / "frames" / "02" / "100.jpg"), cv2.IMREAD_GRAYSCALE)
        frames = torch.from_numpy(img)[None, None]
    else:
        frames = torch.zeros(1, 1, 240, 360, dtype=torch.uint8)
    found = det.detect(frames)
    bag = bag_of_objects(found, len(det.classes))
    assert bag.shape == (1, 80)
    if (PED2 / "testing").is_dir():  # Ped2 is a walkway: the detector must find people
        assert bag[0, 0] >= 1
        boxes = found[0].boxes
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()


@needs_yolo
def test_darknet_rejects_mismatched_files(tmp_path):
    with pytest.raises(ValueError, match="cfg and weights do not match|end early"):
        DarknetDetector(cfg=W / "yolo-fastest-1.1.cfg", weights=XL["weights"], names=XL["names"])
    with pytest.raises(FileNotFoundError, match="names must be an existing file"):
        DarknetDetector(cfg=XL["cfg"], weights=XL["weights"], names=tmp_path / "none.names")
    (tmp_path / "few.names").write_text("a\nb\n")
    with pytest.raises(ValueError, match="lists 2 classes; the cfg's \\[yolo\\] layers have classes=80"):
        DarknetDetector(cfg=XL["cfg"], weights=XL["weights"], names=tmp_path / "few.names")
