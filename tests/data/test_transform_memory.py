"""Test transforms on long full-resolution clips: memory near the uint8 input, same output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import torch
import torch.nn.functional as F

from timesformer.data.transforms import TestTransform, short_side_resize

_PEAK = textwrap.dedent(
    """
    import json, resource, sys, torch
    from timesformer.data.transforms import TestTransform
    torch.set_num_threads(1)
    ramp = torch.arange(1920 * 3, dtype=torch.int32).remainder_(251).to(torch.uint8)
    frames = ramp.view(1, 1, 1920, 3).expand(32, 1080, 1920, 3).contiguous()  # 199 MB
    for protocol in ("centred", "official"):  # warm up allocator and kernels on a small clip
        TestTransform(224, 3, protocol=protocol)(frames[:1])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {}
    for protocol in ("centred", "official"):
        y = TestTransform(224, 3, protocol=protocol)(frames)
        out[protocol] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
        del y
    out["input_kb"] = frames.numel() // 1024
    print(json.dumps(out))
    """
)


def test_peak_memory_of_the_test_transform_on_32_frames_of_1080p():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    res = subprocess.run([sys.executable, "-c", _PEAK], capture_output=True, text=True,
                         env=env, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    # growth of the peak beyond the uint8 input (199 MB): the float clip alone would be 796 MB
    for protocol in ("centred", "official"):
        assert got[protocol] < 2 * got["input_kb"], got  # whole process < 3x the input


def test_chunked_resize_equals_one_call():
    frames = torch.randint(0, 256, (7, 3, 90, 160), dtype=torch.uint8)
    whole = F.interpolate(frames.float(), size=(36, 64), mode="bilinear", align_corners=False)
    small = 2 * 4 * 3 * (90 * 160 + 36 * 64)  # two frames per chunk
    assert torch.equal(short_side_resize(frames, 36, chunk_bytes=small),
                       whole.round().clamp(0, 255).to(torch.uint8))  # fmt: skip
    assert torch.equal(short_side_resize(frames, 36, round_uint8=False, chunk_bytes=small), whole)
    clip = frames.permute(0, 2, 3, 1)  # (T, H, W, 3)
    ref = (whole[:, :, :, 14:50] / 255.0 - 0.45) / 0.225  # official centre crop, ceil(28 / 2)
    out = TestTransform(36, 1, protocol="official", train_short_side=36)(clip, 0)
    assert torch.allclose(out, ref.permute(1, 0, 2, 3), atol=1e-5)
