"""two-stream's bag-of-objects (vadx_two_stream.objects_bag): per-frame object counts by class."""

import pytest
import torch

from vadx.objects import Detections
from vadx_two_stream.objects_bag import BagClock, bag_of_objects, detection_slots


def test_bag_of_objects_counts_confident_objects():
    dets = [Detections(torch.tensor([0, 0, 2, 1]), torch.tensor([0.9, 0.5, 0.7, 0.49]), torch.zeros(4, 4)),
            Detections(torch.zeros(0, dtype=torch.long), torch.zeros(0), torch.zeros(0, 4))]
    assert bag_of_objects(dets, 3).tolist() == [[2.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match=r"class ids outside \[0, 2\)"):
        bag_of_objects(dets, 2)
    with pytest.raises(ValueError, match="min_confidence must be in"):
        bag_of_objects(dets, 3, min_confidence=2)


def test_detection_slots_follow_the_frame_rate():
    assert detection_slots(0, 7, 30.0, 10.0).tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert detection_slots(5, 3, 10.0, 10.0).tolist() == [5, 6, 7]  # as fast as the video: all
    assert detection_slots(2, 3, 25.0, None).tolist() == [2, 3, 4]
    assert detection_slots(0, 6, 25.0, 10.0).tolist() == [0, 0, 0, 1, 1, 2]  # 2.5 frames a slot


def _counting_detector(calls):
    def detect(frames):  # the bag is the frame's value, so a held bag shows where it came from
        calls.append(frames[:, 0, 0, 0].tolist())
        return frames[:, 0, 0, :1].float()
    return detect


@pytest.mark.parametrize("chunks", [[30], [1] * 30, [4, 1, 7, 2, 16], [3, 3, 24]])
def test_bag_clock_holds_each_slots_first_frame_across_chunks(chunks):
    frames = torch.arange(30, dtype=torch.uint8).view(30, 1, 1, 1).expand(30, 3, 2, 2)
    calls = []
    clock, detect, out, start = BagClock(30.0, 10.0), _counting_detector(calls), [], 0
    for n in chunks:
        out.append(clock.bags(frames[start:start + n], detect))
        start += n
    assert torch.cat(out)[:, 0].tolist() == [3 * (i // 3) for i in range(30)]
    assert sorted(sum(calls, [])) == list(range(0, 30, 3))  # each slot's first frame, once


def test_bag_clock_detects_only_the_slots_selected_frames_need():
    # training passes ask for sampled frames only; a slot whose first frame was in an earlier
    # chunk with nothing selected is still detected on that first frame
    frames = torch.arange(12, dtype=torch.uint8).view(12, 1, 1, 1).expand(12, 3, 2, 2)
    calls = []
    clock, detect = BagClock(30.0, 10.0), _counting_detector(calls)
    assert clock.bags(frames[:4], detect, torch.tensor([], dtype=torch.long)).numel() == 0
    got = clock.bags(frames[4:12], detect, torch.tensor([1, 7]))  # frames 5 and 11
    assert got[:, 0].tolist() == [3, 9]
    assert sorted(sum(calls, [])) == [3, 9]
