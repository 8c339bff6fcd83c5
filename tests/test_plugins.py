"""The plugin host: discovery through real entry points, failure isolation, env controls, CLI."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from helpers import make_dist, make_video

import vadx
from vadx import plugins


def test_example_plugin_is_discovered(example_plugin_site, plugin_env):
    plugin_env(example_plugin_site)
    info = {p.name: p for p in plugins.list_plugins()}["frame_diff"]
    assert (info.distribution, info.version, info.detectors, info.error) == (
        "vadx-frame-diff", "0.1.0", ["frame-diff"], None)
    assert "frame-diff" in vadx.list_detectors()
    det = vadx.create("frame-diff", min_std=2.0)
    assert type(det).__module__ == "vadx_frame_diff" and det.min_std == 2.0


def test_example_plugin_fit_score_stream_save_load(example_plugin_site, plugin_env, tmp_path):
    plugin_env(example_plugin_site)
    det = vadx.create("frame-diff", false_alarm_rate=0.05)
    det.fit([make_video(60, seed=1), make_video(50, seed=1)])
    assert det.threshold_ is not None

    video = make_video(60, fast={20, 21, 22, 40}, seed=1)
    scores = det.score(video)
    assert scores.frame.shape == (60,) and scores.maps.shape == (60, 24, 32)
    anomalous = torch.zeros(60, dtype=torch.bool)
    anomalous[[20, 21, 22, 23, 40, 41]] = True  # a jump shows in its frame and the next
    assert (scores.frame[anomalous] > det.threshold_).all()
    assert (scores.frame[~anomalous] > det.threshold_).float().mean() <= 0.1
    assert torch.equal(det.predict(video), scores.frame > det.threshold_)

    stream = det.stream()
    parts = [stream.update(video[a:b]) for a, b in [(0, 7), (7, 8), (8, 33), (33, 60)]]
    assert torch.equal(vadx.Scores.cat(parts).frame, scores.frame)

    det.save(tmp_path / "model.safetensors")
    loaded = vadx.load(tmp_path / "model.safetensors")
    assert type(loaded) is type(det) and loaded.get_params() == det.get_params()
    assert loaded.threshold_ == det.threshold_
    assert torch.equal(loaded.score(video).frame, scores.frame)


def test_broken_plugin_is_reported_and_skipped(example_plugin_site, plugin_env, tmp_path):
    make_dist(tmp_path, "vadx-broken", "1.0", {"broken": "broken_mod"},
              {"broken_mod.py": "raise ImportError('needs libfoo')\n"})
    with pytest.warns(vadx.PluginWarning, match=r"'broken' \(vadx-broken 1.0\) was skipped.*needs libfoo"):
        plugin_env(tmp_path, example_plugin_site)
    found = {p.name: p for p in plugins.list_plugins()}
    assert found["broken"].error == "import: ImportError: needs libfoo"
    assert found["broken"].detectors == []
    assert found["frame_diff"].error is None and "frame-diff" in vadx.list_detectors()


@pytest.mark.parametrize(
    "module,expected",
    [
        # a typo in the hook name
        ("import vadx\n@vadx.hookimpl\ndef vadx_register_detector(register): pass\n",
         r"hook validation: PluginValidationError"),
        # registering something that is not a Detector
        ("import vadx\n@vadx.hookimpl\ndef vadx_register_detectors(register): register(int)\n",
         r"vadx_register_detectors: TypeError: register\(\) takes a vadx.Detector subclass"),
        # a bad detector name
        ("import vadx\nclass D(vadx.Detector):\n    name = 'Bad Name'\n"
         "@vadx.hookimpl\ndef vadx_register_detectors(register): register(D)\n",
         r"name must be a lower-case name like 'fcn-cascade', got 'Bad Name'"),
        # the same name twice in one plugin (across plugins: test_a_shared_name_is_refused...)
        ("import vadx\nclass D(vadx.Detector):\n    name = 'dup'\n"
         "@vadx.hookimpl\ndef vadx_register_detectors(register): register(D); register(D)\n",
         r"detector name 'dup' is registered twice by this plugin"),
    ],
)
def test_misbehaving_plugins_are_isolated(example_plugin_site, plugin_env, tmp_path, module, expected):
    make_dist(tmp_path, "vadx-zbad", "2.0", {"zbad": "zbad_mod"}, {"zbad_mod.py": module})
    with pytest.warns(vadx.PluginWarning):
        plugin_env(tmp_path, example_plugin_site)
    found = {p.name: p for p in plugins.list_plugins()}
    assert found["zbad"].error is not None
    assert re.search(expected, found["zbad"].error)
    assert found["zbad"].detectors == []
    assert vadx.create("frame-diff").__class__.__module__ == "vadx_frame_diff"


def test_a_shared_name_is_refused_naming_both_distributions(example_plugin_site, plugin_env, tmp_path):
    # "aaa" loads before "frame_diff": the order must not decide which class the name means
    make_dist(tmp_path, "vadx-stranger", "9.9", {"aaa": "aaa_mod"},
              {"aaa_mod.py": "import vadx\nclass Impostor(vadx.Detector):\n    name = 'frame-diff'\n"
                             "class Other(vadx.Detector):\n    name = 'other'\n"
                             "@vadx.hookimpl\ndef vadx_register_detectors(register):\n"
                             "    register(Impostor); register(Other)\n"})
    with pytest.warns(vadx.PluginWarning, match=r"detector name 'frame-diff' is registered by 2 "
                      r"distributions, vadx-stranger \(plugin 'aaa'\) and vadx-frame-diff"):
        plugin_env(tmp_path, example_plugin_site)
    found = {p.name: p for p in plugins.list_plugins()}
    assert found["aaa"].error is None and found["frame_diff"].error is None  # both registered
    with pytest.raises(LookupError, match=r"vadx-stranger .* and vadx-frame-diff .*: ask for "
                       r"'vadx-stranger:frame-diff' or 'vadx-frame-diff:frame-diff'"):
        vadx.create("frame-diff")
    assert type(vadx.create("vadx-frame-diff:frame-diff")).__module__ == "vadx_frame_diff"
    assert type(vadx.create("vadx-stranger:frame-diff")).__name__ == "Impostor"
    assert type(vadx.create("aaa:frame-diff")).__name__ == "Impostor"  # the entry-point name works too
    assert vadx.create("other").name == "other"  # the stranger's other detectors are unaffected
    assert {"vadx-frame-diff:frame-diff", "vadx-stranger:frame-diff", "other"} <= set(vadx.list_detectors())
    assert "frame-diff" not in vadx.list_detectors()
    with pytest.raises(LookupError, match=r"no detector 'frame-diff' from distribution 'nope'"):
        vadx.create("nope:frame-diff")

    # a model file names its distribution: loading picks that one, not the impostor
    det = vadx.create("vadx-frame-diff:frame-diff", min_std=2.0)
    det.fit([make_video(20, seed=1)])
    det.save(tmp_path / "fd.vadx")
    assert type(vadx.load(tmp_path / "fd.vadx")).__module__ == "vadx_frame_diff"


def test_load_and_disable_env_vars(example_plugin_site, plugin_env, tmp_path, monkeypatch):
    make_dist(tmp_path, "vadx-other", "1.0", {"other": "other_mod"},
              {"other_mod.py": "import vadx\nclass O(vadx.Detector):\n    name = 'other'\n"
                               "@vadx.hookimpl\ndef vadx_register_detectors(register): register(O)\n"})
    plugin_env(tmp_path, example_plugin_site)
    assert {"frame-diff", "other"} <= set(vadx.list_detectors())

    monkeypatch.setenv("VADX_LOAD_PLUGINS", "vadx-frame-diff")  # by distribution name
    plugins.reload()
    assert "frame-diff" in vadx.list_detectors() and "other" not in vadx.list_detectors()

    monkeypatch.setenv("VADX_LOAD_PLUGINS", "")
    plugins.reload()
    assert vadx.list_detectors() == [] and plugins.list_plugins() == []

    monkeypatch.delenv("VADX_LOAD_PLUGINS")
    monkeypatch.setenv("VADX_DISABLE_PLUGINS", "frame_diff, unrelated")  # by entry-point name
    plugins.reload()
    assert "frame-diff" not in vadx.list_detectors() and "other" in vadx.list_detectors()


def test_unknown_detector_names_the_installed_ones(example_plugin_site, plugin_env):
    plugin_env(example_plugin_site)
    with pytest.raises(LookupError, match=r"unknown detector 'nope'; installed: .*frame-diff"):
        vadx.create("nope")


def _cli(*args, site):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    env.pop("VADX_LOAD_PLUGINS", None)
    env.pop("VADX_DISABLE_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "vadx", *args], env=env, capture_output=True,
                          text=True, check=True).stdout


def test_cli_plugins_table_and_json(example_plugin_site, tmp_path):
    make_dist(tmp_path, "vadx-broken", "1.0", {"broken": "broken_mod"},
              {"broken_mod.py": "raise RuntimeError('boom')\n"})
    site = os.pathsep.join([str(example_plugin_site), str(tmp_path)])
    listed = {p["name"]: p for p in json.loads(_cli("plugins", "--json", site=site))}
    assert listed["frame_diff"] == {"name": "frame_diff", "distribution": "vadx-frame-diff",
                                    "version": "0.1.0", "detectors": ["frame-diff"], "error": None}
    assert listed["broken"]["error"] == "import: RuntimeError: boom"
    table = _cli("plugins", site=site)
    assert "PLUGIN" in table.splitlines()[0]
    assert any(line.split()[:4] == ["frame_diff", "vadx-frame-diff", "0.1.0", "frame-diff"]
               for line in table.splitlines())
    assert "FAILED: import: RuntimeError: boom" in table
