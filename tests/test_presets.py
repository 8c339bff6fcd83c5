"""Presets (demo, cpu, paper), `vadx info`, and the preset record in model files."""

import json
import re

import pytest
from helpers import make_video

import vadx
from vadx import model_file, params, plugins
from vadx.cli import main

FIRST_PARTY = ["attribute-knn", "bg-ensemble", "fcn-cascade", "latent-pred", "srnn-ae", "tsc",
               "two-stream"]


@pytest.mark.parametrize("name", FIRST_PARTY)
def test_first_party_detectors_offer_demo_cpu_paper_that_build(name):
    cls = plugins.get_detector(name).cls
    offered = cls.presets()
    assert set(offered) >= {"demo", "cpu", "paper"}
    assert offered["demo"].params == cls.demo_params()  # demo_params keeps working
    for pname, preset in offered.items():
        assert isinstance(preset, params.Preset) and preset.doc, (name, pname)
        det = vadx.create(name, preset=pname)  # every value passes the declared constraints
        for key, value in preset.params.items():
            assert det.get_params()[key] == plugins._canonical(cls, key, value), (name, pname, key)
        assert det.preset == {"name": pname, "overrides": []}


def test_paper_and_cpu_values_are_the_documented_ones():
    lp = vadx.create("latent-pred", preset="paper")
    assert (lp.epochs, lp.lr, lp.lr_step, lp.input_height, lp.k) == (50, 1e-4, 20, 128, 8)
    assert vadx.create("latent-pred", preset="cpu").get_params() == vadx.create("latent-pred").get_params()
    tsc = vadx.create("tsc", preset="paper")
    assert (tsc.backbone, tsc.layer, tsc.n_atoms, tsc.K, tsc.iterations) == (
        "resnet50", "last", 2048, 30, 20000)
    srnn = vadx.create("srnn-ae", preset="cpu")  # what bench/test_sparse_rnn.py ran on Ped2
    bench = json.load(open("bench/results/sparse_rnn_ped2.json"))["srnn-ae"]["params"]
    for key in ("backbone", "n_atoms", "K", "lambda1", "iterations", "frame_size", "layer", "lr"):
        assert getattr(srnn, key) == bench[key], key


def test_preset_values_are_overridden_by_explicit_parameters_and_recorded(tmp_path):
    det = vadx.create("latent-pred", preset="demo", epochs=1, clip_length=16)
    assert det.epochs == 1 and det.input_height == 64  # 64 from the preset, 1 given
    assert det.preset == {"name": "demo", "overrides": ["clip_length", "epochs"]}
    det.set_params(lr=0.01)
    assert det.preset["overrides"] == ["clip_length", "epochs", "lr"]
    assert det.clone().preset == det.preset
    assert vadx.create("latent-pred").preset is None


def test_unknown_preset_names_the_detector_and_its_presets():
    with pytest.raises(vadx.ParameterError,
                       match=r"^latent-pred: preset must be one of 'demo', 'cpu', 'paper', got 'fast'$"):
        vadx.create("latent-pred", preset="fast")


def test_a_preset_naming_no_parameter_is_the_plugins_error():
    class D(vadx.Detector):
        name = "d"

        @classmethod
        def presets(cls):
            return {**super().presets(), "cpu": params.Preset({"epochs": 3}, "x")}

    with pytest.raises(vadx.ParameterError, match=r"d: preset 'cpu' sets 'epochs', which is not a parameter"):
        D.from_preset("cpu")
    assert D.from_preset("demo").preset == {"name": "demo", "overrides": []}
    with pytest.raises(TypeError, match="Preset params must be a dict"):
        params.Preset([("a", 1)], "x")


def _tiny_latent_pred(preset=None, **kw):
    """latent-pred small enough to fit in about a second."""
    return vadx.create("latent-pred", preset=preset, input_height=16, encoder_blocks=2,
                       channels=[4, 8], motion_hidden=4, k=2, horizon=1, epochs=1, clip_length=6,
                       progress=False, **kw)


def test_model_file_records_the_preset_and_old_files_still_load(tmp_path):
    det = _tiny_latent_pred("demo")
    det.fit([make_video(20, seed=1)])
    det.save(tmp_path / "m.vadx")
    header = model_file.read_header(tmp_path / "m.vadx")
    assert header["preset"]["name"] == "demo" and "epochs" in header["preset"]["overrides"]
    assert vadx.load(tmp_path / "m.vadx").preset == header["preset"]

    plain = _tiny_latent_pred()
    plain.fit([make_video(20, seed=1)])
    plain.save(tmp_path / "old.vadx")  # no preset: no key at all, as files written before presets
    assert "preset" not in model_file.read_header(tmp_path / "old.vadx")
    assert vadx.load(tmp_path / "old.vadx").preset is None

    with pytest.raises(vadx.ModelFileError, match=r"field 'preset' must be null or an object"):
        model_file.check_header("x", {**header, "preset": "cpu"})
    with pytest.raises(vadx.ModelFileError, match=r"field 'preset.overrides' must be a list"):
        model_file.check_header("x", {**header, "preset": {"name": "cpu", "overrides": "lr"}})


def test_param_docs_come_from_the_args_sections():
    docs = params.param_docs(plugins.get_detector("srnn-ae").cls)
    assert docs["lr"] == "RMSProp learning rate (paper: 1e-5)."  # "K: ... lr: ..." on one line
    assert docs["iterations"].startswith("RMSProp steps per stream")
    assert docs["seed"].startswith("seeds everything random")  # the base class's Args
    lp = params.param_docs(plugins.get_detector("latent-pred").cls)
    assert lp["weight_decay"] == "gamma of eq. (1)."
    assert lp["epochs"] == lp["lr_step"]  # "epochs, lr, lr_decay, lr_step: Adam schedule"


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_info_text_and_json(capsys):
    rc, out, _ = _run(capsys, "info", "latent-pred")
    assert rc == 0
    assert "Li, Leroux & Simoens" in out and "plugin latent_pred (vadx " in out
    assert re.search(r"^  epochs \(int, default 20; an int >= 1\)$", out, re.M)
    assert "Adam schedule" in out
    assert re.search(r"^  cpu: the defaults", out, re.M) and "(all equal to the defaults)" in out
    assert re.search(r"^      .*epochs=50 lr=0.0001 lr_decay=0.1 lr_step=20", out, re.M)

    rc, out, _ = _run(capsys, "info", "latent-pred", "--json")
    d = json.loads(out)
    assert d["name"] == "latent-pred" and d["plugin"]["distribution"] == "vadx"
    by_name = {q["name"]: q for q in d["parameters"]}
    assert by_name["train_precision"]["allowed"] == "'auto', 'bf16' or 'fp32'"
    assert by_name["channels"]["default"] == [16, 32, 64, 64, 64]
    assert by_name["seed"]["base_class"] and not by_name["k"]["base_class"]
    assert d["presets"]["paper"]["params"]["epochs"] == 50 and d["presets"]["cpu"]["all_defaults"]

    rc, _, err = _run(capsys, "info", "nope")
    assert rc == 1 and "unknown detector 'nope'" in err


def test_cli_fit_with_a_preset_and_clear_errors(tmp_path, capsys):
    from vadx import io

    train = io.write_frames(tmp_path / "train", make_video(20, seed=1))
    model = tmp_path / "m.vadx"
    rc, out, err = _run(capsys, "fit", "latent-pred", "--preset", "demo", "--train", train,
                        "--set", "epochs=1", "--set", "input_height=16", "--set", "encoder_blocks=2",
                        "--set", "channels=[4, 8]", "--set", "k=2", "--set", "horizon=1",
                        "--set", "clip_length=6", "--out", model, "-q")
    assert rc == 0, err
    assert "fitted latent-pred (preset demo) on 1 video (20 frames)" in out
    assert vadx.load(model).preset["name"] == "demo"
    assert model_file.read_header(model)["params"]["motion_hidden"] == 32  # from the preset

    rc, _, err = _run(capsys, "fit", "latent-pred", "--preset", "fast", "--train", train,
                      "--out", tmp_path / "x.vadx")
    assert rc == 1 and err.strip() == (
        "vadx: error: detector 'latent-pred' has no preset 'fast' (--preset); its presets: demo, "
        "cpu, paper (`vadx info latent-pred` describes them)")
    rc, _, err = _run(capsys, "fit", "latent-pred", "--set", "epoch=1", "--train", train,
                      "--out", tmp_path / "x.vadx")
    assert rc == 1 and "has no parameter 'epoch' (--set)" in err and "`vadx info latent-pred`" in err
    assert not (tmp_path / "x.vadx").exists()


def test_fit_help_points_to_info(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = capsys.readouterr().out
    assert "--preset NAME" in out and "vadx info METHOD" in out
