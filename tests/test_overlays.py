"""Overlays say when there is no localization; plots use frames (as the CSV), shade alarms and
write the format their extension names."""

import matplotlib
import numpy as np
import pytest
import torch
from helpers import make_video

import vadx
from vadx import io
from vadx.cli import main
from vadx.detector import Scores

MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".jpg": b"\xff\xd8\xff", ".jpeg": b"\xff\xd8\xff",
         ".pdf": b"%PDF"}


def _frames(path):
    return io.open_video(path).read().numpy().astype(int)  # [T, 3, H + bar, W] RGB


def test_overlay_without_maps_says_so_in_the_frame(tmp_path):
    T, H, W = 6, 96, 128
    video = np.full((T, 1, H, W), 90, np.uint8)
    scores = Scores(torch.linspace(0, 1, T))  # no maps
    labelled = _frames(io.write_overlay(tmp_path / "a.avi", video, scores))
    bare = _frames(io.write_overlay(tmp_path / "b.avi", video, scores, no_maps_label=None))
    bottom = slice(H - 16, H)  # the label's rows, above the score bar
    assert (labelled[:, :, bottom] > 200).sum() > 50 * T  # white text in every frame
    assert (bare[:, :, bottom] > 200).sum() == 0
    with_maps = Scores(torch.linspace(0, 1, T), torch.zeros(T, H, W))
    assert (_frames(io.write_overlay(tmp_path / "c.avi", video, with_maps))[:, :, bottom] > 200).sum() == 0
    assert io.NO_MAPS_LABEL == "no localization for this detector"


@pytest.mark.parametrize("ext", [".png", ".jpg", ".jpeg", ".pdf", ".svg"])
def test_plot_format_follows_the_extension(tmp_path, ext):
    path = io.plot_scores(tmp_path / f"p{ext}", np.sin(np.linspace(0, 6, 50)), threshold=0.5)
    data = path.read_bytes()
    if ext == ".svg":
        assert b"<svg" in data[:2000]
    else:
        assert data.startswith(MAGIC[ext])


def test_plot_refuses_other_extensions_before_drawing(tmp_path):
    with pytest.raises(ValueError, match=r"path must end in one of \.png, \.jpg, \.jpeg, \.svg, "
                                         r"\.pdf \(the extension decides the format\), got 'p\.gif'"):
        io.plot_scores(tmp_path / "p.gif", np.zeros(5))
    assert not (tmp_path / "p.gif").exists()


def _svg_text(path, **kw):
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as <text>, not glyph paths
        return io.plot_scores(path, **kw).read_text()


def test_plot_x_axis_is_frames_with_seconds_when_fps_is_known(tmp_path):
    scores = np.linspace(0, 1, 40)
    with_fps = _svg_text(tmp_path / "a.svg", scores=scores, fps=10)
    assert ">frame<" in with_fps and "time (s) at 10 frames/s" in with_fps
    assert "time (s)" not in _svg_text(tmp_path / "b.svg", scores=scores)


def test_plot_shades_alarms(tmp_path):
    import cv2

    scores = np.zeros(100)
    scores[40:60] = 1.0
    kw = dict(figsize=(6, 2), dpi=100)
    a = cv2.imread(str(io.plot_scores(tmp_path / "a.png", scores, **kw)))
    b = cv2.imread(str(io.plot_scores(tmp_path / "b.png", scores, threshold=0.5, **kw)))
    orange = lambda img: ((img[..., 2].astype(int) - img[..., 0] > 60)  # noqa: E731
                          & (img[..., 1].astype(int) - img[..., 0] > 20)).sum()
    assert orange(b) > 1000 and orange(a) < 50
    cols = np.nonzero(((b[..., 2].astype(int) - b[..., 0]) > 60).any(axis=0))[0]
    # the band spans frames 40-59 of 0-99: about the middle fifth of the plot area
    assert 0.1 < (cols.max() - cols.min()) / b.shape[1] < 0.3


def test_cli_score_refuses_a_plot_extension(tmp_path, capsys):
    model = tmp_path / "m.vadx"
    model.write_bytes(b"not read: the extension is refused first")
    with pytest.raises(SystemExit) as exc:
        main(["score", str(model), str(model), "--plot", str(tmp_path / "p.gif")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --plot: the file must end in one of .png, .jpg, .jpeg, .svg, .pdf" in err


def test_cli_overlay_asks_the_detector_for_maps(tmp_path, capsys, monkeypatch):
    det = vadx.create("latent-pred", input_height=32, encoder_blocks=2, channels=[4, 8],
                      motion_hidden=4, k=2, horizon=1, epochs=1, clip_length=6, progress=False)
    assert det.maps is False and type(det).map_params == {"maps": True}
    det.fit([make_video(24, H=32, W=48, seed=1)])
    det.save(tmp_path / "m.vadx")
    test = io.write_frames(tmp_path / "test", make_video(24, H=32, W=48, fast={10, 11}, seed=3))
    rc = main(["score", str(tmp_path / "m.vadx"), str(test), "--overlay", str(tmp_path / "o.avi"),
               "--out", str(tmp_path / "s.csv"), "-q"])
    assert rc == 0, capsys.readouterr().err
    frames = _frames(tmp_path / "o.avi")[:, :, :32]  # the image, not the score bar
    colour = np.abs(frames[:, 0] - frames[:, 2])  # grey input: any R-B difference is heat map
    assert (colour > 20).sum() > 50

    monkeypatch.setattr(type(det), "map_params", {})  # as if maps could not be switched on
    assert main(["score", str(tmp_path / "m.vadx"), str(test), "--overlay", str(tmp_path / "n.avi"),
                 "--out", str(tmp_path / "n.csv"), "-q"]) == 0
    frames = _frames(tmp_path / "n.avi")[:, :, :32]
    assert (np.abs(frames[:, 0] - frames[:, 2]) > 20).sum() == 0  # no heat map...
    assert (frames[:, :, 24:32] > 200).sum() > 20 * len(frames)  # ...and the label says so
    # maps on changes no frame score: the CSV equals scoring without maps
    rows = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1, usecols=2)
    np.testing.assert_allclose(rows, det.score(io.read_video(test)).frame.numpy(), rtol=1e-5)
