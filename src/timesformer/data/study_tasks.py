"""The two rendered datasets of `timesformer study`, kept in memory as uint8 arrays.

``appearance`` (Kinetics-like): the class is the object's colour x shape (9 classes), whole
in every frame (it drifts in a random direction and never crosses the frame's edge), so any
single frame decides it.

``motion`` (Something-Something-like): approach vs recede. One object of random shape, colour,
size and position on a random background grows or shrinks by a fixed total amount over the
video and stays inside the frame. Only the order of the frames decides the class, exactly: the
"recede" video rendered from a seed is the "approach" video of the same seed played backwards
(`render_motion_video`), so both classes have the same distribution of frame sets, and a model
that sees frames one at a time and pools them without knowing their order (space-only attention,
or any scheme without a time embedding) cannot do better than chance.

Videos are rendered straight to arrays (no files, no codec) and are deterministic from the seed.
`ArrayClips` cuts training clips (a random window of consecutive frames) and validation clips
(the centre window) from them and normalises as the training pipeline does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .synthetic import APPEARANCE_CLASSES, render_appearance_clip, render_motion_clip

MOTION_TASK_CLASSES: tuple[str, ...] = ("approach", "recede")
STUDY_DATASETS: tuple[str, ...] = ("appearance", "motion")
# motion: the object's diameter (fraction of the frame side) at the middle of the video, and
# its total log-size change over a 10-frame video (the demo's 15-20% per frame); videos of other
# lengths spread the same change over their frames, so every frame count sees the same motion.
MOTION_OBJECT_SIZE = (0.25, 0.4)
MOTION_TOTAL_CHANGE = (9 * 0.15, 9 * 0.2)
APPEARANCE_OBJECT_SIZE = (0.4, 0.6)


def video_length(num_frames: int) -> int:
    """Frames rendered per video for clips of `num_frames`: a quarter more, so that training
    clips (random windows) differ from epoch to epoch."""
    return num_frames + max(1, math.ceil(num_frames / 4))


def class_names(dataset: str) -> tuple[str, ...]:
    """The class names of a study dataset."""
    if dataset == "motion":
        return MOTION_TASK_CLASSES
    if dataset == "appearance":
        return APPEARANCE_CLASSES
    raise ValueError(f"unknown study dataset {dataset!r}; expected one of {STUDY_DATASETS}")


def render_motion_video(label: str, seed: int | list[int], size: int, length: int) -> np.ndarray:
    """One approach/recede video, uint8 (length, size, size, 3), deterministic from `seed`.

    "recede" is the "approach" video of the same seed played backwards, so the two classes
    have the same distribution of frame sets: only the order tells them apart.
    """
    if label not in MOTION_TASK_CLASSES:
        raise ValueError(f"unknown motion class {label!r}; expected one of {MOTION_TASK_CLASSES}")
    intervals = max(length - 1, 1)
    speed = (MOTION_TOTAL_CHANGE[0] / intervals, MOTION_TOTAL_CHANGE[1] / intervals)
    frames, _ = render_motion_clip(
        "approach",
        np.random.default_rng(seed),
        size=size,
        num_frames=length,
        object_size=MOTION_OBJECT_SIZE,
        speed=speed,
        wrap=False,
    )
    return frames if label == "approach" else np.ascontiguousarray(frames[::-1])


def render_videos(
    dataset: str, count: int, *, size: int, length: int, seed: int, split: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """`count` videos of a study dataset with balanced labels, in memory.

    Returns (videos uint8 (count, length, size, size, 3), labels int64 (count,)). `split`
    separates the training and validation draws of the same `seed`.
    """
    names = class_names(dataset)
    if size < 8 or size % 2:
        raise ValueError(f"size must be an even number >= 8, got {size}")
    order = np.random.default_rng([seed, split, 11]).permutation(np.arange(count) % len(names))
    videos = np.empty((count, length, size, size, 3), np.uint8)
    for i in range(count):
        key = [seed, split, i]
        label = names[int(order[i])]
        if dataset == "motion":
            videos[i] = render_motion_video(label, key, size, length)
        else:
            videos[i], _ = render_appearance_clip(
                label,
                np.random.default_rng(key),
                size=size,
                num_frames=length,
                object_size=APPEARANCE_OBJECT_SIZE,
                wrap=False,  # whole in every frame: one frame shows the shape
            )
    return videos, order.astype(np.int64)


class ArrayClips(Dataset):
    """Clips of `num_frames` consecutive frames cut from in-memory videos.

    Training (`train=True`): a random window per item, drawn from a generator seeded by
    (seed, epoch, index) so that a run is reproducible; otherwise the centre window. Items are
    dicts {"video": float32 (3, T, H, W) normalised, "label": int}, as `engine.train` expects.
    """

    def __init__(
        self,
        videos: np.ndarray,
        labels: np.ndarray,
        num_frames: int,
        *,
        train: bool,
        seed: int = 0,
        mean: float = 0.45,
        std: float = 0.225,
        label_names: tuple[str, ...] | None = None,
    ) -> None:
        if videos.ndim != 5 or videos.shape[1] < num_frames:
            raise ValueError(f"videos {videos.shape} cannot give clips of {num_frames} frames")
        self.videos = torch.from_numpy(np.ascontiguousarray(videos))  # (n, V, H, W, 3) uint8
        self.labels = [int(x) for x in labels]
        self.num_frames, self.train, self.seed = num_frames, train, seed
        self.mean, self.std = mean, std
        self.label_names = list(label_names) if label_names else None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        spare = self.videos.shape[1] - self.num_frames
        if self.train and spare > 0:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 10_007 + i)
            start = int(torch.randint(0, spare + 1, (1,), generator=g))
        else:
            start = spare // 2
        clip = self.videos[i, start : start + self.num_frames]  # (T, H, W, 3) uint8
        video = clip.permute(3, 0, 1, 2).float().div_(255.0)  # (3, T, H, W)
        video = video.sub_(self.mean).div_(self.std)
        return {"video": video, "label": self.labels[i]}
