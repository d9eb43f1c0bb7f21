"""Spatial transforms on uint8 frames (T, H, W, 3) -> normalised float (3, T, H, W).

Training (the official draws): short side rescaled to ``round(uniform(low, high))`` (the two
end values get half the weight of the others), a random square crop whose offsets come from
``[0, margin)`` (the last offset is never drawn; no margin: offset 0), an optional horizontal
flip. Every random choice comes from the ``torch.Generator`` passed in.

Test protocols (``TestTransform(protocol=...)``):

- ``"official"``: one crop: short side to ``train_short_side`` (``data.train_jitter[0]``, 256
  at 224), then the centre crop; three crops: short side to the crop size, then left/centre/
  right (top/centre/bottom for portrait). Resized in float (no rounding to uint8), and the
  centre offset rounds up, ``ceil(margin / 2)``, as the official code does.
- ``"centred"`` (the earlier behaviour): short side to the crop size (or ``resize_to``) in
  either case, resized frames rounded to uint8, centre offset rounded down.

Frames are resized a few at a time (:func:`short_side_resize` bounds its float scratch memory
to ``chunk_bytes``), so a long full-resolution clip never exists in float all at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

KINETICS_MEAN: tuple[float, float, float] = (0.45, 0.45, 0.45)
KINETICS_STD: tuple[float, float, float] = (0.225, 0.225, 0.225)
RESIZE_CHUNK_BYTES = 32 << 20  # float scratch per resize call: a few 1080p frames at a time


def _scaled_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) with the short side ``size`` and the aspect ratio kept (official rounding)."""
    if height <= width:
        return size, max(size, int(math.floor(width / height * size)))
    return max(size, int(math.floor(height / width * size))), size


def short_side_resize(
    frames: torch.Tensor,
    size: int,
    *,
    round_uint8: bool = True,
    chunk_bytes: int = RESIZE_CHUNK_BYTES,
) -> torch.Tensor:
    """Resize uint8 or float (T, 3, H, W) frames so the short side is ``size`` (bilinear).

    Frames are resized in float a chunk at a time (at most about ``chunk_bytes`` of float
    scratch), so memory stays near the uint8 input however long the clip; the result equals
    one call on the whole clip. uint8 input gives uint8 (rounded) unless ``round_uint8=False``,
    which returns the float result. No-op at the right size.
    """
    t, c, h, w = frames.shape
    new_h, new_w = _scaled_size(h, w, size)
    as_uint8 = frames.dtype == torch.uint8 and round_uint8
    if (new_h, new_w) == (h, w):
        return frames if as_uint8 or frames.dtype != torch.uint8 else frames.float()
    out_dtype = torch.uint8 if as_uint8 else (
        torch.float32 if frames.dtype == torch.uint8 else frames.dtype
    )  # fmt: skip
    out = torch.empty(t, c, new_h, new_w, dtype=out_dtype)  # (T, 3, h', w')
    per_frame = 4 * c * (h * w + new_h * new_w)
    step = max(1, chunk_bytes // per_frame)
    for a in range(0, t, step):
        x = frames[a : a + step]
        x = x.float() if x.dtype == torch.uint8 else x  # (t', 3, H, W)
        y = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
        out[a : a + step] = y.round_().clamp_(0, 255) if as_uint8 else y
    return out


def centre_offset(length: int, size: int, protocol: str = "centred") -> int:
    """Offset of a centred ``size`` window in ``length``: ``floor(margin / 2)`` ("centred") or
    ``ceil(margin / 2)`` ("official", as the official uniform crop rounds)."""
    margin = length - size
    return -(-margin // 2) if protocol == "official" else margin // 2


def crop_positions(
    height: int, width: int, size: int, num_crops: int, protocol: str = "centred"
) -> list[tuple[int, int]]:
    """(top, left) of the test crops: 1 = centre; 3 = left/centre/right (top/centre/bottom if
    portrait). ``protocol`` decides how an odd centre margin rounds (see :func:`centre_offset`).
    """
    if size > height or size > width:
        raise ValueError(f"crop {size} larger than the frame {width}x{height}")
    if protocol not in ("official", "centred"):
        raise ValueError(f"unknown test protocol {protocol!r}; expected 'official' or 'centred'")
    top_c, left_c = centre_offset(height, size, protocol), centre_offset(width, size, protocol)
    if num_crops == 1:
        return [(top_c, left_c)]
    if num_crops != 3:
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    if height > width:  # portrait: top, centre, bottom
        return [(0, left_c), (top_c, left_c), (height - size, left_c)]
    return [(top_c, 0), (top_c, left_c), (top_c, width - size)]


def normalize(
    frames: torch.Tensor,
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
    channel_order: str = "rgb",
) -> torch.Tensor:
    """uint8 (T, 3, H, W) -> float (3, T, H, W) in [0, 1], minus mean, over std (per channel).

    ``channel_order="bgr"`` swaps the channels first (mean/std are then given in BGR order).
    """
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    x = frames.permute(1, 0, 2, 3)  # (3, T, H, W)
    if channel_order == "bgr":
        x = x.flip(0)
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    m = torch.as_tensor(mean, dtype=x.dtype).view(3, 1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype).view(3, 1, 1, 1)
    return (x - m) / s


def _to_tchw(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> (T, 3, H, W) view."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames (T, H, W, 3), got {tuple(frames.shape)}")
    return frames.permute(0, 3, 1, 2)


def _check_stats(mean: Sequence[float], std: Sequence[float], channel_order: str) -> None:
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"mean and std need 3 values (std > 0), got {mean} and {std}")
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")


class TrainTransform:
    """Random short-side scale in ``scale_range``, random square crop, optional flip, normalise.

    The crop is taken before the frames are converted to float and normalised, so only
    ``crop x crop`` pixels per frame are normalised.
    """

    def __init__(
        self,
        crop_size: int = 224,
        scale_range: tuple[int, int] = (256, 320),
        flip: bool = True,
        mean: Sequence[float] = KINETICS_MEAN,
        std: Sequence[float] = KINETICS_STD,
        channel_order: str = "rgb",
    ) -> None:
        lo, hi = int(scale_range[0]), int(scale_range[1])
        if not crop_size <= lo <= hi:
            raise ValueError(
                f"scale_range must satisfy crop_size <= low <= high, got {crop_size} and "
                f"{tuple(scale_range)}"
            )
        _check_stats(mean, std, channel_order)
        self.crop_size, self.scale_range, self.flip = int(crop_size), (lo, hi), bool(flip)
        self.mean, self.std, self.channel_order = tuple(mean), tuple(std), channel_order

    def sample_params(
        self, height: int, width: int, generator: torch.Generator | None = None
    ) -> dict[str, int | bool]:
        """Draw {"scale", "top", "left", "flip"} for frames of ``height x width``, as the
        official code draws them: scale ``round(uniform(low, high))``, offsets from
        ``[0, margin)`` (0 without a margin)."""
        lo, hi = self.scale_range
        u = torch.rand((), generator=generator, dtype=torch.float64).item()
        scale = int(round(lo + (hi - lo) * u))
        h, w = _scaled_size(height, width, scale)
        top, left = (
            int(torch.randint(m, (), generator=generator)) if m > 0 else 0
            for m in (h - self.crop_size, w - self.crop_size)
        )
        flip = self.flip and bool(torch.rand((), generator=generator) < 0.5)
        return {"scale": scale, "top": top, "left": left, "flip": flip}

    def apply(self, frames: torch.Tensor, params: dict[str, int | bool]) -> torch.Tensor:
        """uint8 (T, H, W, 3) -> float (3, T, crop, crop) with the given parameters."""
        x = short_side_resize(_to_tchw(frames), int(params["scale"]))  # (T, 3, h, w)
        top, left, c = int(params["top"]), int(params["left"]), self.crop_size
        x = x[:, :, top : top + c, left : left + c]  # (T, 3, c, c)
        if params["flip"]:
            x = x.flip(-1)
        return normalize(x, self.mean, self.std, self.channel_order)  # (3, T, c, c)

    def __call__(
        self, frames: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """uint8 (T, H, W, 3) -> float (3, T, crop, crop), random parameters from ``generator``."""
        return self.apply(frames, self.sample_params(frames.shape[1], frames.shape[2], generator))

    def __repr__(self) -> str:
        return (
            f"TrainTransform(crop_size={self.crop_size}, scale_range={self.scale_range}, "
            f"flip={self.flip}, channel_order={self.channel_order!r})"
        )


class TestTransform:
    """Test-time resize, spatial crop(s) and normalisation, by ``protocol`` (module docstring).

    ``protocol="centred"`` (default, the earlier behaviour): short side to ``resize_to`` (default
    ``crop_size``), uint8 rounding, floor-centred crops. ``protocol="official"``: short side to
    ``crop_size`` for three crops, or to ``train_short_side`` for one crop (default: the
    official 256 scaled with the crop, ``round(crop_size * 256 / 224)``; ``resize_to``
    overrides both), float resize, ceil-centred crops.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        crop_size: int = 224,
        num_crops: int = 3,
        mean: Sequence[float] = KINETICS_MEAN,
        std: Sequence[float] = KINETICS_STD,
        channel_order: str = "rgb",
        resize_to: int | None = None,
        *,
        protocol: str = "centred",
        train_short_side: int | None = None,
    ) -> None:
        if num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
        if protocol not in ("official", "centred"):
            raise ValueError(
                f"unknown test protocol {protocol!r}; expected 'official' or 'centred'"
            )
        if resize_to:
            resize = int(resize_to)
        elif protocol == "official" and num_crops == 1:
            resize = int(train_short_side or round(crop_size * 256 / 224))
        else:
            resize = int(crop_size)
        if resize < crop_size:
            raise ValueError(f"resize_to ({resize}) must be >= crop_size ({crop_size})")
        _check_stats(mean, std, channel_order)
        self.crop_size, self.num_crops, self.resize_to = int(crop_size), num_crops, resize
        self.protocol = protocol
        self.mean, self.std, self.channel_order = tuple(mean), tuple(std), channel_order

    def __call__(self, frames: torch.Tensor, crop_index: int | None = None) -> torch.Tensor:
        """uint8 (T, H, W, 3) -> float (3, T, S, S) for ``crop_index``, or all crops stacked as
        (num_crops, 3, T, S, S) when ``crop_index`` is None."""
        official = self.protocol == "official"
        x = short_side_resize(_to_tchw(frames), self.resize_to, round_uint8=not official)
        # x: (T, 3, h, w), uint8 ("centred") or float ("official")
        boxes = crop_positions(
            x.shape[2], x.shape[3], self.crop_size, self.num_crops, self.protocol
        )
        if crop_index is not None and not 0 <= crop_index < self.num_crops:
            raise ValueError(f"crop_index must be in [0, {self.num_crops}), got {crop_index}")
        picks = boxes if crop_index is None else [boxes[crop_index]]
        c = self.crop_size
        scale = 255.0 if x.dtype != torch.uint8 else None
        out = []
        for y, z in picks:
            crop = x[:, :, y : y + c, z : z + c]  # (T, 3, c, c)
            if scale is not None:
                crop = crop / scale  # float pixels -> [0, 1], as uint8 / 255 in normalize
            out.append(normalize(crop, self.mean, self.std, self.channel_order))  # (3, T, c, c)
        return out[0] if crop_index is not None else torch.stack(out)

    def __repr__(self) -> str:
        return (
            f"TestTransform(crop_size={self.crop_size}, num_crops={self.num_crops}, "
            f"resize_to={self.resize_to}, protocol={self.protocol!r}, "
            f"channel_order={self.channel_order!r})"
        )
