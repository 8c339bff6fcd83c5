"""attribute-knn (plugins/vadx_attribute_knn): the chunked k-NN search, the coreset, the
attributes, conformance with a stub object detector, the synthetic scene's speed and appearance
anomalies (each found by its own attribute) and a real UCSD Ped2 clip when the shared weights and
data are present. Ped2 accuracy and speed: bench/test_attribute_knn.py."""

import cv2
import numpy as np
import pytest
import torch
from conftest import SHARED

import vadx
import vadx.data
from vadx import plugins
from vadx.metrics import roc_auc
from vadx.objects import Detections, ObjectDetector
from vadx.testing import check_detector
from vadx_attribute_knn import AttributeKNN
from vadx_attribute_knn.attributes import (CROP_BATCH, appearance, background_motion, background_motions,
                                           crops, velocities, velocity)
from vadx_attribute_knn.knn import greedy_coreset, knn_mean_distance

pytestmark = pytest.mark.usefixtures("one_thread")

W = SHARED / "weights"
MNV2 = W / "mobilenet_v2_imagenet.pth"
PED2 = SHARED / "data" / "ucsd_ped2"


class Blobs(ObjectDetector):
    """Stub object detector: connected regions that differ from their 21x21 median
    neighbourhood by more than ``threshold`` grey levels, as class "person"."""

    name = "test-blobs"
    classes = ["person", "tree"]

    def __init__(self, *, threshold=25, min_area=12):
        self.threshold, self.min_area = threshold, min_area

    def detect(self, frames):
        out = []
        for f in frames:
            g = f.float().mean(0).round().to(torch.uint8).numpy()
            fg = (np.abs(g.astype(np.int16) - cv2.medianBlur(g, 21).astype(np.int16)) > self.threshold)
            n, _, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
            keep = [s for s in stats[1:] if s[4] >= self.min_area]
            boxes = torch.tensor([[x - 1, y - 1, x + w + 1, y + h + 1] for x, y, w, h, _ in keep],
                                 dtype=torch.float32).reshape(-1, 4)
            out.append(Detections(torch.zeros(len(keep), dtype=torch.long), torch.ones(len(keep)), boxes))
        return out


@pytest.fixture(autouse=True)
def blobs(monkeypatch):
    monkeypatch.setitem(plugins.object_detectors.__globals__["_object_detectors"], "test-blobs",
                        plugins.ObjectDetectorEntry(Blobs, "test", None, None))


STUB = {"name": "test-blobs"}
CHEAP = dict(object_detector=STUB, weights="random", crop_size=32, k=2, bank_size=16,
             min_box_size=2.0, progress=False)


# ---------------------------------------------------------------- k-NN, coreset, attributes


def test_knn_matches_the_full_distance_matrix():
    g = torch.Generator().manual_seed(0)
    q, bank = torch.randn(50, 16, generator=g), torch.randn(300, 16, generator=g)
    want = torch.cdist(q.double(), bank.double()).topk(4, largest=False).values.mean(1)
    for chunk in (7, 64, 1000):
        torch.testing.assert_close(knn_mean_distance(q, bank, 4, chunk=chunk).double(), want,
                                   rtol=1e-4, atol=1e-4)


def test_knn_gemm_candidates_match_the_full_distance_matrix():
    g = torch.Generator().manual_seed(1)
    q, bank = torch.randn(40, 64, generator=g), torch.randn(500, 64, generator=g)
    want = torch.cdist(q.double(), bank.double()).topk(5, largest=False).values.mean(1)
    for chunk in (7, 128, 1000):
        torch.testing.assert_close(knn_mean_distance(q, bank, 5, chunk=chunk, candidates=8).double(),
                                   want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dim", [1, 8, 64])
def test_knn_query_independent_of_its_batch(dim):
    """A query's distance is bit-identical alone and among others (a chunk's objects are searched
    at once; streaming must equal offline), also on near-ties that defeat the candidates."""
    g = torch.Generator().manual_seed(2)
    bank = torch.randn(300, dim, generator=g)
    bank = torch.cat([bank, bank[:40] + 1e-6 * torch.randn(40, dim, generator=g)])  # near-ties
    q = torch.cat([bank[:20] + 1e-7, torch.randn(60, dim, generator=g)])
    groups, bank_groups = torch.arange(80) % 3, torch.arange(340) % 3
    for kw in ({}, {"query_groups": groups, "bank_groups": bank_groups}):
        full = knn_mean_distance(q, bank, 5, chunk=64, candidates=6, **kw)
        for a, n in ((0, 1), (3, 2), (17, 7), (50, 30)):
            part = {**kw, "query_groups": groups[a:a + n]} if kw else {}
            assert torch.equal(knn_mean_distance(q[a:a + n], bank, 5, chunk=64, candidates=6, **part),
                               full[a:a + n]), (dim, a, n, kw)


def test_knn_exact_planes_equal_the_block_path():
    """The exact search's transposed-bank planes (query block x bank chunk, top-k per chunk) give
    the bits of the [n, m, d] block path (the same fixed-order sum), whatever the plane size."""
    from vadx_attribute_knn.knn import _exact_smallest, _squared
    g = torch.Generator().manual_seed(3)
    for dim in (1, 3, 8, 17):
        bank = torch.randn(230, dim, generator=g)
        bank = torch.cat([bank, bank[:30] + 1e-6 * torch.randn(30, dim, generator=g)])
        q = torch.cat([bank[:10] + 1e-7, torch.randn(25, dim, generator=g)])
        groups, bank_groups = torch.arange(35) % 4, torch.arange(260) % 4
        for kw in ({}, {"q_groups": groups, "b_groups": bank_groups}):
            dist = _squared(q, bank)
            if kw:
                dist.masked_fill_(groups.view(-1, 1) == bank_groups.view(1, -1), float("inf"))
            want = dist.topk(5, dim=1, largest=False).values
            for plane, block in ((40, 4), (1 << 17, 32), (10, 7)):
                got = _exact_smallest(q, bank, 5, kw.get("q_groups"), kw.get("b_groups"),
                                      plane=plane, block=block)
                assert torch.equal(got.sort(1).values, want), (dim, plane, block, kw)


def test_knn_leaves_the_own_group_out():
    bank = torch.tensor([[0.0], [1.0], [10.0]])
    q = torch.tensor([[0.0]])
    assert float(knn_mean_distance(q, bank, 1)) == 0.0
    d = knn_mean_distance(q, bank, 1, query_groups=torch.tensor([0]), bank_groups=torch.tensor([0, 1, 1]))
    assert float(d) == 1.0


def test_greedy_coreset_keeps_the_outlier():
    x = torch.cat([torch.randn(500, 4, generator=torch.Generator().manual_seed(0)) * 0.1,
                   torch.full((1, 4), 50.0)])
    idx = greedy_coreset(x, 10, generator=torch.Generator().manual_seed(0))
    assert len(set(idx.tolist())) == 10 and 500 in idx.tolist()
    assert torch.equal(greedy_coreset(x, 1000), torch.arange(501))


def test_velocity_histogram_direction_and_perspective():
    flow = torch.zeros(2, 40, 60)
    flow[0, 10:20, 10:20] = 3.0  # rightwards, 3 px/frame
    flow[1, 10:20, 40:50] = -3.0  # upwards
    boxes = torch.tensor([[10.0, 10, 20, 20], [40, 10, 50, 20], [10, 10, 20, 30]])
    v = velocity(flow, boxes, (40, 60), 8)
    assert v.shape == (3, 8)
    assert v[0].argmax() == 0 and abs(float(v[0, 0]) - 3 / 10) < 1e-6
    assert v[1].argmax() == 6  # atan2(-3, 0) = -pi/2 -> 3pi/2 -> bin 6 of 8
    # the same motion in a box twice as tall (half of it still): a quarter of the value
    assert abs(float(v[2, 0]) - 3 / 2 / 20) < 1e-6


def test_velocity_quantile_is_the_box_speed_quantile():
    """A rider fills 30 of its box's 100 pixels: the mean dilutes its 3 px/frame to 0.9, the 0.75
    quantile keeps it; with several bins the histogram is rescaled to the quantile's speed."""
    flow = torch.zeros(2, 40, 60)
    flow[0, 10:13, 10:20] = 3.0  # rightwards, 30 of the box's pixels
    boxes = torch.tensor([[10.0, 10, 20, 20]])
    assert abs(float(velocity(flow, boxes, (40, 60), 1, False)[0, 0]) - 0.9) < 1e-6
    for q, want in ((0.75, 3.0), (0.5, 0.0), (1.0, 3.0)):
        assert abs(float(velocity(flow, boxes, (40, 60), 1, False, q)[0, 0]) - want) < 1e-6, q
    v8 = velocity(flow, boxes, (40, 60), 8, False, 0.75)
    assert v8.argmax() == 0 and abs(float(v8.sum()) - 3.0) < 1e-5
    still = velocity(torch.zeros(2, 40, 60), boxes, (40, 60), 8, True, 0.75)
    assert torch.equal(still, torch.zeros(1, 8))


def test_background_motion_ignores_boxed_objects():
    flow = torch.zeros(2, 40, 60)
    flow[0, 4:12, 4:12] = 5.0
    e, block = background_motion(flow.clone(), torch.zeros(0, 4), (40, 60), 8)
    assert float(e) == 5.0 and block.tolist() == [4.0, 4.0, 12.0, 12.0]
    e, _ = background_motion(flow.clone(), torch.tensor([[4.0, 4, 12, 12]]), (40, 60), 8)
    assert float(e) == 0.0


def test_crops_resample_the_box():
    frame = torch.zeros(1, 20, 30, dtype=torch.uint8)
    frame[0, 5:15, 10:20] = 200
    c = crops(frame, torch.tensor([[10.0, 5, 20, 15]]), 8)
    assert c.shape == (1, 1, 8, 8) and torch.allclose(c, torch.full_like(c, 200.0))


def test_chunk_attributes_equal_per_frame_ones():
    g = torch.Generator().manual_seed(3)
    flow = torch.randn(5, 2, 30, 45, generator=g)
    boxes = [torch.tensor([[3.0, 4, 30, 40], [50, 10, 80, 55]]), torch.zeros(0, 4),
             torch.tensor([[0.0, 0, 90, 60]]), torch.tensor([[10.5, 20.2, 11.0, 21.0]]),
             torch.tensor([[60.0, 30, 90, 60], [1, 1, 9, 9], [20, 20, 40, 50]])]
    for bins, persp, q in ((1, False, None), (8, True, None), (1, False, 0.75), (8, True, 0.9)):
        v = velocities(flow, boxes, (60, 90), bins, persp, q)
        for t in range(5):
            assert torch.equal(v[t], velocity(flow[t], boxes[t], (60, 90), bins, persp, q))
    e, blocks = background_motions(flow, boxes, (60, 90), 8)
    for t in range(5):
        one = background_motion(flow[t], boxes[t], (60, 90), 8)
        assert torch.equal(e[t], one[0]) and torch.equal(blocks[t], one[1])


def test_appearance_independent_of_its_batch():
    """Crops batched across a chunk's frames get the bits they get alone (padded batches)."""
    from vadx.features import load_backbone
    net = load_backbone("mobilenet_v2", "random").eval()
    x = torch.rand(2 * CROP_BATCH + 5, 1, 32, 32, generator=torch.Generator().manual_seed(4)) * 255
    with torch.inference_mode():
        full = appearance(net, x, block=2 * CROP_BATCH)
        assert full.shape == (x.shape[0], net.out_channels)
        for a, n in ((0, 1), (3, 7), (20, 17)):
            assert torch.equal(appearance(net, x[a:a + n]), full[a:a + n])


# ---------------------------------------------------------------- the detector


def test_attribute_knn_follows_the_detector_contract():
    det = check_detector(AttributeKNN, **CHEAP)
    assert set(det.train_info_) >= {"frames", "objects"} and det.train_info_["objects"] > 0
    assert det.velocity_bank_.shape[0] <= 16


def test_defaults_are_the_training_criterions_choice():
    """The defaults (and the "cpu" preset, which documents them) are the row that the
    training-data criterion chose in bench/results/attribute_knn_ped2_ablation.json."""
    import json
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "bench" / "results" / "attribute_knn_ped2_ablation.json"
    chosen = json.loads(path.read_text())["chosen_defaults"]["params"]
    det = AttributeKNN()
    assert {k: getattr(det, k) for k in chosen} == chosen
    for key, value in AttributeKNN.presets()["cpu"].params.items():
        assert getattr(det, key) == value, key
    # the speed statistic: the row the harder pseudo-anomaly (one object at 2x speed) chose
    design = json.loads(path.read_text())["velocity_design"]["chosen"]
    assert {k: getattr(det, k) for k in design["params"]} == design["params"]


def test_first_frame_has_no_velocity(scene):
    """A stream's first frame has no predecessor, hence no flow: its objects get a zero
    distance's velocity score (not the score of standing still), and the stream's later chunks
    are not affected."""
    det = AttributeKNN(**{**CHEAP, "flow_scale": 1.0, "background": False}).fit(scene.train)
    zero = float(det._calibrated("velocity", torch.zeros(1)))
    video = torch.as_tensor(np.asarray(scene.test[0].read()))
    s = det.score(video)
    assert float(s.extras["velocity"][0]) == zero
    assert (s.extras["velocity"][1:] != zero).any()
    # the same frame scored after a predecessor (chunk boundary) gets its real velocity
    later = det.score(video[1:])
    assert float(later.extras["velocity"][0]) == zero
    assert float(s.extras["velocity"][1]) != zero


def test_velocity_statistic_is_kept_with_the_model(scene, tmp_path):
    """The speed statistic the velocity bank was fitted with is the one scoring uses: a loaded
    model keeps it, and a file from before velocity_quantile existed (no velocity_quantile_)
    scores box means as it was fitted, not the new default's quantile."""
    import json
    from safetensors import safe_open
    from safetensors.torch import save_file

    det = AttributeKNN(**{**CHEAP, "flow_scale": 1.0, "background": False,
                          "velocity_quantile": None}).fit(scene.train)
    video = torch.as_tensor(np.asarray(scene.test[1].read()))
    want = det.score(video).extras["velocity"]
    det.save(tmp_path / "m.vadx")
    assert vadx.load(tmp_path / "m.vadx").velocity_quantile_ is None
    # an older file: the parameter and the fitted attribute absent
    with safe_open(str(tmp_path / "m.vadx"), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    header = json.loads(meta["vadx"])
    del header["params"]["velocity_quantile"]
    del header["fitted"]["velocity_quantile_"]
    save_file(tensors, str(tmp_path / "old.vadx"), metadata={**meta, "vadx": json.dumps(header)})
    old = vadx.load(tmp_path / "old.vadx")
    assert old.velocity_quantile == 0.75 and torch.equal(old.score(video).extras["velocity"], want)


def test_parameters_are_checked():
    with pytest.raises(vadx.ParameterError, match="attribute-knn: appearance_weight must be > 0"):
        AttributeKNN(velocity_weight=0.0, appearance_weight=0.0)
    with pytest.raises(vadx.ParameterError, match="attribute-knn: classes must be"):
        AttributeKNN(classes=[])
    det = AttributeKNN(object_detector=STUB, weights="random", classes=["car"], progress=False)
    with pytest.raises(vadx.ParameterError, match="attribute-knn: classes must be names of the"):
        det.fit([vadx.testing.make_video(6)])


def test_no_objects_is_a_clear_error():
    det = AttributeKNN(**{**CHEAP, "min_confidence": 1.0, "object_detector": {"name": "test-blobs",
                                                                              "threshold": 255}})
    with pytest.raises(ValueError, match="found no object"):
        det.fit([vadx.testing.make_video(6)])


@pytest.fixture(scope="module")
def scene():
    return vadx.data.load("synthetic", seed=0, n_train=2, n_test=4, n_frames=70,
                          kinds=("appearance", "speed"))


def test_synthetic_speed_and_appearance_each_found_by_its_attribute(scene):
    weights = str(MNV2) if MNV2.is_file() else "random"
    # the stub finds every mover, so no background term; full-resolution flow for 7-px walkers;
    # both attributes at equal weight (a cart's appearance is its only anomaly)
    det = AttributeKNN(**{**CHEAP, "weights": weights, "k": 3, "bank_size": 2000, "crop_size": 32,
                          "flow_scale": 1.0, "background": False, "appearance_weight": 1.0})
    det.fit(scene.train)
    by_kind = {"appearance": [], "speed": []}
    for video in scene.test:
        s = det.score(video)
        lab = np.asarray(video.labels)
        by_kind[video.name.rsplit("_", 1)[1]].append((s, lab))
    auc = {}
    for kind, own in (("appearance", "appearance"), ("speed", "velocity")):
        lab = np.concatenate([lab for _, lab in by_kind[kind]])
        auc[kind] = {sig: roc_auc(np.concatenate([(s.frame if sig == "frame" else s.extras[sig]).numpy()
                                                  for s, _ in by_kind[kind]]), lab)
                     for sig in ("frame", "velocity", "appearance")}
    print(auc)
    for kind, own, other in (("appearance", "appearance", "velocity"), ("speed", "velocity", "appearance")):
        assert auc[kind]["frame"] > 0.75, (kind, auc)
        # on its own kind of anomaly, an attribute beats the other attribute
        assert auc[kind][own] > 0.8 and auc[kind][own] > auc[kind][other], (kind, auc)


@pytest.mark.skipif(not (PED2.is_dir() and MNV2.is_file() and (W / "yolo-fastest-1.1.weights").is_file()),
                    reason="UCSD Ped2 or the shared weights absent")
def test_ped2_clip_with_darknet(monkeypatch):
    """Real objects and real features on a short stretch of Ped2: the first 60 frames of two
    training videos fit; test video 04's first 60 frames (a cyclist and a cart among walkers)."""
    monkeypatch.setenv("VADX_WEIGHTS_DIR", str(W))
    ds = vadx.data.load("ucsd-ped2", PED2)
    train = [torch.as_tensor(np.asarray(v.read()))[:60] for v in ds.train[:2]]
    det = AttributeKNN(progress=False).fit(train)
    assert det.objects_info_["name"] == "darknet" and det.train_info_["objects"] > 100
    assert det.weights_info_["verified"]
    video = ds.test[3]
    s = det.score(torch.as_tensor(np.asarray(video.read()))[:60])
    assert torch.isfinite(s.frame).all() and s.maps.shape == (60, 240, 360)
    assert set(s.extras) == {"velocity", "appearance", "background"}
