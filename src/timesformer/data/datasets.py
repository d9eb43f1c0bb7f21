"""Video datasets from list files or folder-per-class trees, label names, bad-file policy.

List files follow the official/PySlowFast format: one ``path label`` per line (separator:
whitespace, or any string such as "," or ";"; a header line ``path label`` / ``path,label`` is
skipped), paths relative to ``root`` when given. Folder trees: ``root/<class>/<video>``, classes
sorted by name.

Items are dicts (the DataLoader's default collate stacks them)::

    video    float (3, T, S, S), normalised
    label    int
    index    int, the video's position in the dataset (aggregate views per video with it)
    view     int, the view id within the video (clip * num_crops + crop; 0 in training)
    path     str
    error    str, "" when the video was read; otherwise the reason (eval modes only)
    failures int, bad files skipped before this item (train mode; 0 otherwise)

Bad files (missing, unreadable, truncated, zero frames, audio only): in "train" mode the path
and reason are logged once, another random item is drawn instead (at most ``max_retries``
times), and each substitution is counted (``item["failures"]`` crosses DataLoader workers;
``dataset.failures`` lists them in this process). In "val"/"test" modes nothing is dropped: the
item comes back with a zero video and ``error`` set, so the evaluator can report it by path and
leave it out of the metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .transforms import KINETICS_MEAN, KINETICS_STD

LABELS_DIR = Path(__file__).parent / "labels"


def read_list_file(
    path: str | Path, root: str | Path | None = None, separator: str | None = None
) -> list[tuple[str, int]]:
    """Parse a list file into ``[(video_path, label), ...]``.

    Raises FileNotFoundError for a missing file and ValueError naming the file and line for a
    malformed line or a non-integer / negative label.
    """
    raise NotImplementedError


def scan_folder(
    root: str | Path, extensions: Sequence[str] | None = None
) -> tuple[list[tuple[str, int]], list[str]]:
    """A folder-per-class tree -> (samples, class names); classes are the sorted sub-folders."""
    raise NotImplementedError


def load_label_names(
    path: str | Path | None = None, num_classes: int | None = None
) -> list[str] | None:
    """Class names from a file (one per line, or a JSON list, or a JSON {name: id} / {id: name}).

    ``path=None`` with ``num_classes == 400`` gives the bundled Kinetics-400 names; otherwise None.
    When both are given the count must match (ValueError otherwise).
    """
    raise NotImplementedError


class VideoDataset(torch.utils.data.Dataset):
    """Clips from a list of videos for training ("train") or multi-view testing ("val"/"test").

    ``source``: a list file, a folder-per-class root, or a sequence of ``(path, label)``. In
    eval modes ``len = videos * num_clips * num_crops`` and item ``i`` is view ``i % views`` of
    video ``i // views``. ``sampler``: "rate" (clip at ``sampling_rate``, official Kinetics) or
    "segments" (SSv2). A missing list file, an empty dataset or a label outside
    ``[0, num_classes)`` is an error here, before any decoding.
    """

    def __init__(
        self,
        source: str | Path | Sequence[tuple[str, int]],
        *,
        root: str | Path | None = None,
        mode: str = "train",
        num_frames: int = 8,
        sampling_rate: int = 32,
        target_fps: float = 30.0,
        sampler: str = "rate",
        test_views: tuple[int, int] = (1, 3),
        crop_size: int = 224,
        train_jitter: tuple[int, int] = (256, 320),
        flip: bool = True,
        mean: Sequence[float] = KINETICS_MEAN,
        std: Sequence[float] = KINETICS_STD,
        channel_order: str = "rgb",
        num_classes: int | None = None,
        label_names: Sequence[str] | None = None,
        seed: int = 0,
        max_retries: int = 10,
        separator: str | None = None,
        official_test: bool = False,
    ) -> None:
        raise NotImplementedError

    @property
    def num_videos(self) -> int:
        """Number of videos (not views)."""
        raise NotImplementedError

    @property
    def num_views(self) -> int:
        """Views per video: 1 in training, ``num_clips * num_crops`` in eval modes."""
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Reseed the random choices for ``epoch`` (call before each epoch) and reset counters."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict[str, Any]:
        raise NotImplementedError
