"""The preprocessing contract: validation, and lossless round trips through every format."""

import pytest

from timesformer.models.preprocess import Preprocess, default_sampling_rate


def _trained() -> Preprocess:
    return Preprocess.for_geometry(16, 448, sampling_rate=4, class_names=["a", "b c"]).replace(
        source="train", mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.25], test_views="3x1"
    )


def test_defaults_follow_the_official_rates():
    assert default_sampling_rate(8) == 32 and default_sampling_rate(96) == 4
    p = Preprocess.for_geometry(8, 224)
    assert (p.num_frames, p.sampling_rate, p.crop_size, p.short_side) == (8, 32, 224, 256)
    assert p.sources["sampling_rate"] == "default"


def test_a_new_crop_keeps_the_short_side_ratio():
    p = Preprocess.for_geometry(8, 224)  # 256 / 224
    assert p.with_overrides(img_size=448).short_side == 512
    assert p.with_overrides(img_size=112).short_side == 128
    same = p.replace(short_side=32, crop_size=32)  # trained at short side == crop
    assert same.with_overrides(img_size=64).short_side == 64


@pytest.mark.parametrize("fmt", ["dict", "json", "hf", "official"])
def test_round_trip_keeps_every_field(fmt):
    p = _trained()
    if fmt == "dict":
        q = Preprocess.from_dict(p.to_dict())
    elif fmt == "json":
        q = Preprocess.from_json(p.to_json())
    elif fmt == "hf":
        q = Preprocess.from_hf_preprocessor(p.to_hf_preprocessor(), 8, 224)
    else:
        q = Preprocess.from_official_cfg(p.to_official_cfg(), 8, 224)
    assert q == p
    assert q.class_names == ("a", "b c") and q.test_views == (3, 1)


def test_plain_hf_and_official_files():
    hf = {"image_mean": [0.45] * 3, "image_std": [0.225] * 3, "size": {"shortest_edge": 224},
          "crop_size": {"height": 224, "width": 224}}  # fmt: skip
    p = Preprocess.from_hf_preprocessor(hf, 8, 224)
    assert p.short_side == 224 and p.sources["mean"] == "preprocessor_config.json"
    ssv2 = {"DATA": {"NUM_FRAMES": 8, "SAMPLING_RATE": 4, "TRAIN_JITTER_SCALES": [256, 320]},
            "TRAIN": {"DATASET": "ssv2"}}  # fmt: skip
    q = Preprocess.from_official_cfg(ssv2, 8, 224)
    assert (q.channel_order, q.sampler, q.sampling_rate) == ("bgr", "segments", 4)


@pytest.mark.parametrize(
    "kw",
    [
        {"sampler": "x"},
        {"channel_order": "rbg"},
        {"test_protocol": "paper"},
        {"std": (0, 1, 1)},
        {"short_side": 200, "crop_size": 224},
        {"num_frames": 0},
    ],  # fmt: skip
)
def test_bad_values_name_the_field(kw):
    with pytest.raises(ValueError, match="preprocess: " + next(iter(kw))):
        Preprocess(**kw)
