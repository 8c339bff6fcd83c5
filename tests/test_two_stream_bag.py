"""two-stream's bag-of-objects (vadx_two_stream.objects_bag): per-frame object counts by class."""

import pytest
import torch

from vadx.objects import Detections
from vadx_two_stream.objects_bag import bag_of_objects


def test_bag_of_objects_counts_confident_objects():
    dets = [Detections(torch.tensor([0, 0, 2, 1]), torch.tensor([0.9, 0.5, 0.7, 0.49]), torch.zeros(4, 4)),
            Detections(torch.zeros(0, dtype=torch.long), torch.zeros(0), torch.zeros(0, 4))]
    assert bag_of_objects(dets, 3).tolist() == [[2.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match=r"class ids outside \[0, 2\)"):
        bag_of_objects(dets, 2)
    with pytest.raises(ValueError, match="min_confidence must be in"):
        bag_of_objects(dets, 3, min_confidence=2)
