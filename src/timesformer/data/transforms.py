"""Spatial transforms on uint8 frames (T, H, W, 3) -> normalised float (3, T, H, W).

Training (official recipe): short side rescaled to a random size in ``scale_range``, a random
square crop, an optional horizontal flip. Test: short side resized to the crop size, then 1
(centre) or 3 crops (left/centre/right, or top/centre/bottom for portrait video). Frames are
resized as one batch; every random choice comes from the ``torch.Generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

KINETICS_MEAN: tuple[float, float, float] = (0.45, 0.45, 0.45)
KINETICS_STD: tuple[float, float, float] = (0.225, 0.225, 0.225)


def short_side_resize(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 or float (T, 3, H, W) frames so the short side is ``size`` (bilinear)."""
    raise NotImplementedError


def crop_positions(height: int, width: int, size: int, num_crops: int) -> list[tuple[int, int]]:
    """(top, left) of the test crops: 1 = centre; 3 = left/centre/right (top/centre/bottom if
    portrait)."""
    raise NotImplementedError


def normalize(
    frames: torch.Tensor,
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
    channel_order: str = "rgb",
) -> torch.Tensor:
    """uint8 (T, 3, H, W) -> float (3, T, H, W) in [0, 1], minus mean, over std (per channel).

    ``channel_order="bgr"`` swaps the channels first (mean/std are then given in BGR order).
    """
    raise NotImplementedError


class TrainTransform:
    """Random short-side scale in ``scale_range``, random square crop, optional flip, normalise."""

    def __init__(
        self,
        crop_size: int = 224,
        scale_range: tuple[int, int] = (256, 320),
        flip: bool = True,
        mean: Sequence[float] = KINETICS_MEAN,
        std: Sequence[float] = KINETICS_STD,
        channel_order: str = "rgb",
    ) -> None:
        raise NotImplementedError

    def sample_params(
        self, height: int, width: int, generator: torch.Generator | None = None
    ) -> dict[str, int | bool]:
        """Draw {"scale", "top", "left", "flip"} for frames of ``height x width``."""
        raise NotImplementedError

    def apply(self, frames: torch.Tensor, params: dict[str, int | bool]) -> torch.Tensor:
        """uint8 (T, H, W, 3) -> float (3, T, crop, crop) with the given parameters."""
        raise NotImplementedError

    def __call__(
        self, frames: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """uint8 (T, H, W, 3) -> float (3, T, crop, crop), random parameters from ``generator``."""
        return self.apply(frames, self.sample_params(frames.shape[1], frames.shape[2], generator))


class TestTransform:
    """Short side to ``crop_size`` (or ``resize_to``), then spatial crop(s), normalise."""

    def __init__(
        self,
        crop_size: int = 224,
        num_crops: int = 3,
        mean: Sequence[float] = KINETICS_MEAN,
        std: Sequence[float] = KINETICS_STD,
        channel_order: str = "rgb",
        resize_to: int | None = None,
    ) -> None:
        raise NotImplementedError

    def __call__(self, frames: torch.Tensor, crop_index: int | None = None) -> torch.Tensor:
        """uint8 (T, H, W, 3) -> float (3, T, S, S) for ``crop_index``, or all crops stacked as
        (num_crops, 3, T, S, S) when ``crop_index`` is None."""
        raise NotImplementedError
