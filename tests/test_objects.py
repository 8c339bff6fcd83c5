"""The object-detector contract (vadx.objects) and its plugin hook, vadx_register_object_detectors.

The darknet plugin itself: tests/test_darknet.py; the bag-of-objects: tests/test_two_stream_bag.py.
"""

import json
import os
import re
import subprocess
import sys

import pytest
from helpers import make_dist

import vadx
from vadx import plugins
from vadx.objects import ObjectDetector
from vadx.plugins import create_object_detector

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
    # vadx's own darknet (plugin vadx_darknet) registers through the same hook
    assert found["darknet"].object_detectors == ["darknet"] and found["darknet"].distribution == "vadx"
    with pytest.raises(LookupError, match="unknown object detector 'nope'; installed: darknet, toy"):
        plugins.get_object_detector("nope")


def test_cli_plugins_json_adds_object_detectors():
    env = {k: v for k, v in os.environ.items() if k not in ("VADX_LOAD_PLUGINS", "VADX_DISABLE_PLUGINS")}
    out = subprocess.run([sys.executable, "-m", "vadx", "plugins", "--json"], env=env,
                         capture_output=True, text=True, check=True).stdout
    listed = {p["name"]: p for p in json.loads(out)}
    assert listed["darknet"]["object_detectors"] == ["darknet"]
    assert all("object_detectors" not in p for n, p in listed.items() if n != "darknet")


def test_object_detector_base_class():
    assert ObjectDetector.name == ""
    with pytest.raises(NotImplementedError, match="Half must implement detect"):
        type("Half", (ObjectDetector,), {"name": "half", "classes": []})().detect(None)

