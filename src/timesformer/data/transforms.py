"""Spatial transforms on uint8 frames (T, H, W, 3) -> normalised float (3, T, H, W).

Training (official recipe): short side rescaled to a random size in ``scale_range``, a random
square crop, an optional horizontal flip. Test: short side resized to the crop size, then 1
(centre) or 3 crops (left/centre/right, or top/centre/bottom for portrait video). Frames are
resized as one batch; every random choice comes from the ``torch.Generator`` passed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

KINETICS_MEAN: tuple[float, float, float] = (0.45, 0.45, 0.45)
KINETICS_STD: tuple[float, float, float] = (0.225, 0.225, 0.225)


def _scaled_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) with the short side ``size`` and the aspect ratio kept (official rounding)."""
    if height <= width:
        return size, max(size, int(math.floor(width / height * size)))
    return max(size, int(math.floor(height / width * size))), size


def short_side_resize(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 or float (T, 3, H, W) frames so the short side is ``size`` (bilinear).

    All frames are resized in one call; uint8 stays uint8 (rounded). No-op at the right size.
    """
    _, _, h, w = frames.shape
    new_h, new_w = _scaled_size(h, w, size)
    if (new_h, new_w) == (h, w):
        return frames
    x = frames.float() if frames.dtype == torch.uint8 else frames
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
    if frames.dtype == torch.uint8:
        return x.round_().clamp_(0, 255).to(torch.uint8)
    return x


def crop_positions(height: int, width: int, size: int, num_crops: int) -> list[tuple[int, int]]:
    """(top, left) of the test crops: 1 = centre; 3 = left/centre/right (top/centre/bottom if
    portrait)."""
    if size > height or size > width:
        raise ValueError(f"crop {size} larger than the frame {width}x{height}")
    top_c, left_c = (height - size) // 2, (width - size) // 2
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
        """Draw {"scale", "top", "left", "flip"} for frames of ``height x width``."""
        lo, hi = self.scale_range
        scale = lo + int(torch.randint(hi - lo + 1, (), generator=generator))
        h, w = _scaled_size(height, width, scale)
        top = int(torch.randint(h - self.crop_size + 1, (), generator=generator))
        left = int(torch.randint(w - self.crop_size + 1, (), generator=generator))
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
    """Short side to ``crop_size`` (or ``resize_to``), then spatial crop(s), normalise."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        crop_size: int = 224,
        num_crops: int = 3,
        mean: Sequence[float] = KINETICS_MEAN,
        std: Sequence[float] = KINETICS_STD,
        channel_order: str = "rgb",
        resize_to: int | None = None,
    ) -> None:
        if num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
        resize = int(resize_to or crop_size)
        if resize < crop_size:
            raise ValueError(f"resize_to ({resize}) must be >= crop_size ({crop_size})")
        _check_stats(mean, std, channel_order)
        self.crop_size, self.num_crops, self.resize_to = int(crop_size), num_crops, resize
        self.mean, self.std, self.channel_order = tuple(mean), tuple(std), channel_order

    def __call__(self, frames: torch.Tensor, crop_index: int | None = None) -> torch.Tensor:
        """uint8 (T, H, W, 3) -> float (3, T, S, S) for ``crop_index``, or all crops stacked as
        (num_crops, 3, T, S, S) when ``crop_index`` is None."""
        x = short_side_resize(_to_tchw(frames), self.resize_to)  # (T, 3, h, w)
        boxes = crop_positions(x.shape[2], x.shape[3], self.crop_size, self.num_crops)
        if crop_index is not None and not 0 <= crop_index < self.num_crops:
            raise ValueError(f"crop_index must be in [0, {self.num_crops}), got {crop_index}")
        picks = boxes if crop_index is None else [boxes[crop_index]]
        c = self.crop_size
        out = [
            normalize(x[:, :, y : y + c, z : z + c], self.mean, self.std, self.channel_order)
            for y, z in picks
        ]  # each (3, T, c, c)
        return out[0] if crop_index is not None else torch.stack(out)

    def __repr__(self) -> str:
        return (
            f"TestTransform(crop_size={self.crop_size}, num_crops={self.num_crops}, "
            f"resize_to={self.resize_to}, channel_order={self.channel_order!r})"
        )
