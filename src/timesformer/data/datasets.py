"""Video datasets from list files or folder-per-class trees, label names, bad-file policy.

List files (read in listfile.py) follow the official/PySlowFast format: one ``path label`` per
line, with space, comma or tab separators (detected or chosen), an optional header line and
class names or ids as labels; relative paths resolve against ``root``, or against the list
file's folder when no root is given. Folder trees: ``root/<class>/<video>``, classes sorted by
name.

Items are dicts (the DataLoader's default collate stacks them)::

    video    float (3, T, S, S), normalised
    label    int
    index    int, the video's position in the dataset (aggregate views per video with it)
    view     int, the view id within the video (clip * num_crops + crop; 0 in training)
    path     str
    error    str, "" when the video was read; otherwise the reason (eval modes only)
    failures int, bad files skipped before this item (train mode; 0 otherwise)
    skipped  str, the paths of those files, one per line ("" when none)
    traceback str, only with ``dataset.debug`` in eval modes: the formatted traceback of
             ``error`` ("" when none)

Bad files (missing, unreadable, truncated, zero frames, audio only): in "train" mode the path
and reason are logged once, another random item is drawn instead (at most ``max_retries``
times), and each substitution is counted (``item["failures"]`` crosses DataLoader workers;
``dataset.failures`` lists them in this process). A file is logged once per run, not once per
epoch: the training loop hands the paths of logged files back to the dataset
(``mark_reported``), and the workers of later epochs start from that set. In "val"/"test" modes nothing is dropped: the
item comes back with a zero video and ``error`` set, so the evaluator can report it by path and
leave it out of the metrics. With ``dataset.debug`` set (`--debug`), each logged line is followed
by the failure's traceback, and eval-mode items carry it (``traceback``) for the report.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import av
import torch

from ..files import hidden_below, read_text, shown
from .listfile import read_list_file
from .sampling import segment_indices, test_views, train_clip_indices
from .transforms import KINETICS_MEAN, KINETICS_STD, TestTransform, TrainTransform
from .video import VIDEO_EXTENSIONS, VideoDecodeError, VideoReader

log = logging.getLogger(__name__)

LABELS_DIR = Path(__file__).parent / "labels"


_SAID: set[str] = set()  # scan_folder's warnings already given in this process


def _warn_once(message: str, stacklevel: int = 2) -> None:
    """A scan's warning once per process (a run scans its tree for the labels and the data)."""
    if message not in _SAID:
        _SAID.add(message)
        warnings.warn(message, stacklevel=stacklevel + 1)


def scan_folder(
    root: str | Path, extensions: Sequence[str] | None = None
) -> tuple[list[tuple[str, int]], list[str]]:
    """A folder-per-class tree -> (samples, class names); classes are the sorted sub-folders.

    Videos are the files below each class folder (recursively) whose suffix is in
    ``extensions`` (default: common video suffixes), sorted by path.
    """
    root = Path(root)
    if root.is_file():
        raise NotADirectoryError(
            f"{root} is a file; expected a dataset folder (one subfolder of videos per class)"
        )
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {shown(root)}")
    exts = {e.lower() for e in (extensions or VIDEO_EXTENSIONS)}
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    samples: list[tuple[str, int]] = []
    empty = []
    unusable: list[str] = []  # empty files and broken links: never videos
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*")
                       if p.suffix.lower() in exts and not hidden_below(p, root))  # fmt: skip
        bad = [p for p in files if (p.is_symlink() and not p.exists())
               or (p.is_file() and p.stat().st_size == 0)]  # fmt: skip
        unusable += [str(p) for p in bad]
        found = [(str(p), label) for p in files if p.is_file() and p not in bad]
        samples.extend(found)
        if not found:
            empty.append(name)
    if unusable:
        _warn_once(
            f"{root}: {len(unusable)} file(s) left out: empty (0 bytes) or a broken link "
            f"(e.g. {unusable[0]}); files are not decoded here, `timesformer data check` does",
            stacklevel=2,
        )
    loose = [p.name for p in root.iterdir()
             if p.is_file() and p.suffix.lower() in exts and not p.name.startswith(".")]  # fmt: skip
    if samples and empty:
        _warn_once(
            f"{root}: class folder(s) without videos: {', '.join(empty[:5])}"
            f"{' ...' if len(empty) > 5 else ''} (kept as classes with no examples)",
            stacklevel=2,
        )
    if loose:
        _warn_once(
            f"{root}: {len(loose)} video(s) directly under the root belong to no class folder "
            f"and are left out (e.g. {loose[0]})",
            stacklevel=2,
        )
    if not samples:
        raise ValueError(
            f"no videos found under {root} (expected {root}/<class>/<video> with a suffix in "
            f"{sorted(exts)})"
        )
    return samples, classes


def load_label_names(
    path: str | Path | None = None, num_classes: int | None = None
) -> list[str] | None:
    """Class names from a file (one per line, or a JSON list, or a JSON {name: id} / {id: name}).

    ``path=None`` with ``num_classes == 400`` gives the bundled Kinetics-400 names; otherwise None.
    When both are given the count must match (ValueError otherwise).
    """
    if path is None:
        if num_classes == 400:
            return load_label_names(LABELS_DIR / "kinetics400_classes.txt", 400)
        return None
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"label-names file not found: {shown(path)}")
    text = read_text(path, "label-names file", "one class name per line, or a JSON list")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"label-names file {path} is not valid JSON: {e}") from e
        names = _names_from_json(data, path)
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ValueError(f"label-names file {path} has no names")
    if num_classes is not None and len(names) != num_classes:
        raise ValueError(
            f"label-names file {path} has {len(names)} names, expected {num_classes} classes"
        )
    return names


def _names_from_json(data: Any, path: Path) -> list[str]:
    if isinstance(data, list):
        return [str(x) for x in data]
    if isinstance(data, dict) and data:
        keys, values = list(data.keys()), list(data.values())
        try:
            if all(isinstance(v, int) for v in values):  # {name: id}
                pairs = sorted((int(v), str(k)) for k, v in data.items())
            else:  # {id: name}
                pairs = sorted((int(k), str(v)) for k, v in data.items())
        except ValueError:
            raise ValueError(
                f"label-names file {path}: expected a list, {{name: id}} or {{id: name}}; got "
                f"keys like {keys[:2]}"
            ) from None
        ids = [i for i, _ in pairs]
        if ids != list(range(len(ids))):
            raise ValueError(f"label-names file {path}: ids must be 0..{len(ids) - 1}")
        return [n for _, n in pairs]
    raise ValueError(f"label-names file {path}: expected a JSON list or object")


_LOGGED: set[str] = set()


def _log_once(path: str, reason: str, said: set[str] | None = None, debug: bool = False) -> None:
    """Log a bad file once per process, and not at all where `said` (a dataset's record of the
    files already logged, carried into new DataLoader workers) holds it. `debug`: the exception
    being handled (called in its `except`) follows the line, as its traceback."""
    if path in _LOGGED or (said is not None and path in said):
        return
    _LOGGED.add(path)
    if said is not None:
        said.add(path)
    log.warning("skipping unreadable video %s: %s", path, reason, exc_info=debug)


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (seed, epoch, item, attempt), stable across processes."""
    h = 0x243F6A8885A308D3
    for v in values:
        h = ((h ^ (v & 0xFFFFFFFFFFFFFFFF)) * 0x100000001B3 + 0x9E3779B97F4A7C15) % (1 << 64)
        h ^= h >> 29
    return h & ((1 << 63) - 1)


class VideoDataset(torch.utils.data.Dataset):
    """Clips from a list of videos for training ("train") or multi-view testing ("val"/"test").

    ``source``: a list file, a folder-per-class root, or a sequence of ``(path, label)``. In
    eval modes ``len = videos * num_clips * num_crops`` and item ``i`` is view ``i % views`` of
    video ``i // views``. ``sampler``: "rate" (clip at ``sampling_rate``, official Kinetics) or
    "segments" (SSv2). ``test_views = (num_clips, num_crops)``. ``official_test``: the official
    start of test clips (a single clip starts at frame 0) instead of centred clips.
    ``test_protocol``: "official" or "centred" (temporal placement and spatial crops, see
    ``sampling`` and ``transforms``); None means "official" if ``official_test`` else "centred".
    ``upright``: turn frames by the video's display rotation (phone videos; False: as stored).
    ``separator``: the list file's ("comma", "tab", "space", a literal; None detects it).
    A missing list file, an empty dataset or a label outside ``[0, num_classes)`` is an error
    here, before any decoding. Random choices depend only on (seed, epoch, item), so results do
    not depend on the number of DataLoader workers.
    """

    def __init__(
        self,
        source: str | Path | Sequence[tuple[str, int]],
        *,
        root: str | Path | None = None,
        mode: str = "train",
        num_frames: int = 8,
        sampling_rate: int = 32,
        target_fps: float | None = 30.0,
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
        test_protocol: str | None = None,
        upright: bool = True,
    ) -> None:
        if mode not in ("train", "val", "test"):
            raise ValueError(f"mode must be 'train', 'val' or 'test', got {mode!r}")
        if sampler not in ("rate", "segments"):
            raise ValueError(f"sampler must be 'rate' or 'segments', got {sampler!r}")
        if num_frames < 1 or sampling_rate < 1:
            raise ValueError(f"num_frames and sampling_rate must be >= 1, got {num_frames}, "
                             f"{sampling_rate}")  # fmt: skip
        folder_names: list[str] | None = None
        if isinstance(source, (str, Path)):
            src = Path(source)
            if src.is_dir():
                samples, folder_names = scan_folder(src)
            else:
                samples = read_list_file(
                    src, root=root, separator=separator, label_names=label_names
                )
        else:
            samples = [
                (os.path.join(str(root), str(p)) if root and not os.path.isabs(str(p)) else str(p),
                 int(y))
                for p, y in source
            ]  # fmt: skip
        if not samples:
            raise ValueError("dataset has no videos")
        names = list(label_names) if label_names is not None else folder_names
        if num_classes is None and names is not None:
            num_classes = len(names)
        if names is not None and num_classes != len(names):
            raise ValueError(f"{len(names)} label names given for num_classes={num_classes}")
        if num_classes is not None:
            for p, y in samples:
                if not 0 <= y < num_classes:
                    raise ValueError(
                        f"label {y} of {p} is outside the class range [0, {num_classes})"
                    )
        self.samples: list[tuple[str, int]] = samples
        self.num_classes: int = (
            num_classes if num_classes is not None else max(y for _, y in samples) + 1
        )
        self.label_names: list[str] | None = names
        self.mode, self.sampler = mode, sampler
        self.num_frames, self.sampling_rate, self.target_fps = num_frames, sampling_rate, target_fps
        self.num_clips, self.num_crops = (1, 1) if mode == "train" else tuple(test_views)
        self.crop_size, self.seed, self.max_retries = crop_size, seed, max_retries
        self.test_protocol = test_protocol or ("official" if official_test else "centred")
        self.official_test = self.test_protocol == "official"
        self.upright = upright
        if int(train_jitter[0]) < crop_size:  # the run config's names: users set them there
            raise ValueError(
                f"data.train_jitter={tuple(train_jitter)}: the shortest side {train_jitter[0]} is "
                f"smaller than the crop (data.crop_size={crop_size}; the official test protocol "
                "resizes to it too); raise data.train_jitter or lower data.crop_size"
            )
        self.train_transform = TrainTransform(
            crop_size, train_jitter, flip, mean, std, channel_order
        )
        protocol = {"protocol": self.test_protocol, "train_short_side": int(train_jitter[0])}
        self.test_transform = (
            TestTransform(crop_size, self.num_crops, mean, std, channel_order, **protocol)
            if mode != "train"
            else None
        )
        self.epoch = 0
        self.failures: list[tuple[str, str]] = []  # (path, reason) seen in this process
        self.reported: set[str] = set()  # bad files already logged in this run (any process)
        self.debug = False  # --debug: tracebacks after the log lines and in eval items
        self._cache: tuple[tuple[int, int], torch.Tensor | VideoDecodeError] | None = None

    @property
    def num_videos(self) -> int:
        """Number of videos (not views)."""
        return len(self.samples)

    @property
    def num_views(self) -> int:
        """Views per video: 1 in training, ``num_clips * num_crops`` in eval modes."""
        return self.num_clips * self.num_crops

    def set_epoch(self, epoch: int) -> None:
        """Reseed the random choices for ``epoch`` (call before each epoch) and reset counters."""
        self.epoch = int(epoch)
        self.failures = []

    def mark_reported(self, paths: Iterable[str]) -> None:
        """Record bad files that were logged, in a DataLoader worker or here: the workers of
        later epochs (new processes, forked or spawned from this object) do not log them again."""
        self.reported.update(p for p in paths if p)

    def __len__(self) -> int:
        return self.num_videos * self.num_views

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} out of range for a dataset of {len(self)}")
        if self.mode == "train":
            return self._train_item(i)
        return self._eval_item(i)

    # ------------------------------------------------------------------ train
    def _train_item(self, i: int) -> dict[str, Any]:
        idx, reason = i, ""
        skipped: list[str] = []
        for attempt in range(self.max_retries + 1):
            g = torch.Generator().manual_seed(_mix(self.seed, self.epoch, i, attempt))
            path, label = self.samples[idx]
            try:
                with VideoReader(path, upright=self.upright) as reader:
                    if self.sampler == "rate":
                        frames_idx = train_clip_indices(
                            reader.num_frames, self.num_frames, self.sampling_rate, reader.fps,
                            target_fps=self.target_fps, generator=g,
                        )  # fmt: skip
                    else:
                        frames_idx = segment_indices(
                            reader.num_frames, self.num_frames, train=True, generator=g
                        )
                    frames = reader.get_frames(frames_idx)  # (T, H, W, 3)
                video = self.train_transform(frames, g)  # (3, T, S, S)
            except (VideoDecodeError, av.FFmpegError, OSError) as e:
                reason = getattr(e, "reason", None) or str(e)
                _log_once(path, reason, self.reported, self.debug)
                self.failures.append((path, reason))
                skipped.append(path)
                idx = int(torch.randint(self.num_videos, (), generator=g))
                continue
            return {
                "video": video, "label": label, "index": idx, "view": 0, "path": path,
                "error": "", "failures": len(skipped), "skipped": "\n".join(skipped),
            }  # fmt: skip
        raise RuntimeError(
            f"{self.max_retries + 1} videos in a row could not be read (last: {path}: {reason})"
        )

    # ------------------------------------------------------------------ eval
    def _eval_clip(self, v: int, clip: int) -> torch.Tensor:
        """uint8 (T, H, W, 3) frames of temporal clip ``clip`` of video ``v``, cached so the
        spatial crops of one clip (consecutive items) decode it once."""
        key = (v, clip)
        if self._cache is not None and self._cache[0] == key:
            hit = self._cache[1]
            if isinstance(hit, VideoDecodeError):
                raise hit
            return hit
        path = self.samples[v][0]
        try:
            with VideoReader(path, upright=self.upright) as reader:
                views = test_views(
                    reader.num_frames, self.num_frames, self.sampling_rate, reader.fps,
                    num_clips=self.num_clips, num_crops=1, sampler=self.sampler,
                    target_fps=self.target_fps, protocol=self.test_protocol,
                )  # fmt: skip
                frames = reader.get_frames(views[clip].indices)
        except (av.FFmpegError, OSError) as e:
            err = VideoDecodeError(path, str(e))
            self._cache = (key, err)
            raise err from e
        except VideoDecodeError as e:
            self._cache = (key, e)
            raise
        self._cache = (key, frames)
        return frames

    def _eval_item(self, i: int) -> dict[str, Any]:
        v, view = divmod(i, self.num_views)
        clip, crop = divmod(view, self.num_crops)
        path, label = self.samples[v]
        error = tb = ""
        try:
            frames = self._eval_clip(v, clip)
            video = self.test_transform(frames, crop)  # (3, T, S, S)
        except VideoDecodeError as e:
            error = e.reason
            tb = traceback.format_exc() if self.debug else ""  # text: it crosses processes
            _log_once(path, error, self.reported, self.debug)
            if crop == 0 and clip == 0:
                self.failures.append((path, error))
            video = torch.zeros(3, self.num_frames, self.crop_size, self.crop_size)
        item = {
            "video": video, "label": label, "index": v, "view": view, "path": path,
            "error": error, "failures": 0, "skipped": "",
        }  # fmt: skip
        if self.debug:
            item["traceback"] = tb
        return item

    def __repr__(self) -> str:
        return (
            f"VideoDataset(mode={self.mode!r}, videos={self.num_videos}, views={self.num_views}, "
            f"classes={self.num_classes}, frames={self.num_frames}, rate={self.sampling_rate}, "
            f"sampler={self.sampler!r}, crop={self.crop_size})"
        )
