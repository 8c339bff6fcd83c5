"""vadx.frame_cache.FrameCache: frames come back exactly, memory stays under its bound."""

import pytest
import torch

from vadx.frame_cache import FrameCache


def _video(t, seed, shape=(1, 6, 8)):
    return torch.randint(0, 256, (t, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("max_bytes", [0, 48 * 10, 48 * 25, 10**9])
def test_videos_come_back_exactly_whatever_the_bound(max_bytes):
    videos = [_video(7, 0), _video(20, 1), _video(3, 2)]
    cache = FrameCache(max_bytes)
    for v in videos:
        cache.new_video()
        for a in range(0, len(v), 4):  # chunks of 4 frames
            cache.add(v[a:a + 4])
            assert cache.memory_bytes <= max_bytes
    assert len(cache) == 3
    for i, v in enumerate(videos):
        assert torch.equal(cache.video(i), v)
        assert torch.equal(cache.video(i)[2:5], v[2:5])
    assert cache.memory_bytes + cache.spilled_bytes >= sum(v.numel() for v in videos)
    assert (cache.spilled_bytes == 0) == (max_bytes >= sum(v.numel() for v in videos))
    cache.close()


def test_a_video_straddling_the_bound_moves_whole_to_the_file():
    cache = FrameCache(48 * 6)
    cache.add(_video(4, 0))
    cache.add(_video(4, 1))  # 8 frames > 6: the whole video goes to the file
    assert cache.memory_bytes == 0 and cache.spilled_bytes == 48 * 8
    assert torch.equal(cache.video(0), torch.cat([_video(4, 0), _video(4, 1)]))
    cache.new_video()
    cache.add(_video(2, 3))  # fits in memory again
    assert cache.memory_bytes == 48 * 2 and torch.equal(cache.videos()[1], _video(2, 3))


def test_bad_chunks_are_refused():
    cache = FrameCache()
    with pytest.raises(ValueError, match=r"chunk must be a uint8 tensor \[t, C, H, W\], got torch.float32"):
        cache.add(torch.zeros(2, 1, 4, 4))
    cache.add(_video(2, 0))
    with pytest.raises(ValueError, match=r"chunk has frames of shape \(1, 4, 4\); this video's frames are \(1, 6, 8\)"):
        cache.add(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))
    cache.add(_video(0, 0))  # empty chunks are ignored
    assert len(cache) == 1 and len(cache.video(0)) == 2
    with pytest.raises(ValueError, match="max_bytes must be an int >= 0"):
        FrameCache(-1)
