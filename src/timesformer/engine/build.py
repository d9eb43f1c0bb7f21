"""One place that builds the model and the datasets of a run config.

Used by training, `timesformer eval`, and the demo alike: the TimeSformer of `cfg.model`
(with pretrained weights when asked), the class names of `data.labels`, and the
`VideoDataset` of a split with the clip geometry of the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .config import RunConfig, model_overrides, parse_views

Log = Callable[[str], None]


def build_model(cfg: RunConfig, log: Log = print) -> nn.Module:
    """The TimeSformer of `cfg.model` (resolved), with pretrained weights when asked.

    A pretrained head of another size is replaced by a fresh one, and the log says so.
    """
    from ..models import create_model

    m = cfg.model
    model = create_model(m.name, **model_overrides(m))
    if m.pretrained:
        from ..models.weights import load_into, read_checkpoint

        ck = read_checkpoint(m.pretrained, allow_pickle=m.allow_pickle)
        head = ck.num_classes
        reset = (not ck.is_image) and head != model.config.num_classes
        load_into(model, ck, reset_head=reset)  # read once
        what = f"{ck.format} checkpoint {m.pretrained}"
        if ck.is_image:
            log(f"initialised from {what} (image weights; new head of {m.num_classes} classes)")
        elif reset:
            log(
                f"initialised from {what}; its head has {head} classes, the model "
                f"{model.config.num_classes}: the head is re-initialised"
            )
        else:
            log(f"initialised from {what}")
    elif m.time_embed_init_std and getattr(model, "time_embed", None) is not None:
        with torch.no_grad():
            std = m.time_embed_init_std
            nn.init.trunc_normal_(model.time_embed, std=std, a=-2 * std, b=2 * std)
        log(f"time_embed initialised from a truncated normal, std {std} (not the zero init)")
    if m.grad_checkpointing:
        model.set_grad_checkpointing(True)
    model.set_training_options(m.train_attention_kernel, m.train_packed_linears)
    return model


def label_names(cfg: RunConfig) -> list[str] | None:
    """The class names of `data.labels` (checked against model.num_classes), else the sorted
    sub-folder names when `data.train_list` is a folder-per-class tree, else the labels.txt
    beside a list file (what `timesformer data lists` writes), else None."""
    from pathlib import Path

    from ..data import load_label_names, scan_folder

    if cfg.data.labels:
        return load_label_names(cfg.data.labels, cfg.model.num_classes)
    for split in ("train", "val", "test"):
        src = getattr(cfg.data, f"{split}_list")
        if src and Path(src).is_dir():
            return scan_folder(Path(src))[1]
    for split in ("train", "val", "test"):
        src = getattr(cfg.data, f"{split}_list")
        if src and Path(src).is_file() and (Path(src).parent / "labels.txt").is_file():
            return load_label_names(Path(src).parent / "labels.txt", cfg.model.num_classes)
    return None


def fill_num_classes(cfg: RunConfig) -> RunConfig:
    """Set model.num_classes from the data when the config leaves it open: the labels file,
    else the class folders of a folder-per-class tree."""
    if cfg.model.num_classes is None:
        names = label_names(cfg)
        if names:
            cfg.model.num_classes = len(names)
    return cfg


def run_preprocess(cfg: RunConfig, model: nn.Module, names: Sequence[str] | None) -> Any:
    """The preprocessing contract a run trains `model` with: its `data` section, the model's
    geometry and the class names (sources "run config")."""
    from ..models.preprocess import Preprocess

    mc = model.config
    size = mc.img_size if isinstance(mc.img_size, int) else min(mc.img_size)
    return Preprocess.from_train_config(
        cfg.to_dict(), mc.num_frames, size, list(names) if names else None, source="run config"
    )


def build_dataset(
    cfg: RunConfig,
    split: str,
    mode: str | None = None,
    *,
    model_config: Any = None,
    views: tuple[int, int] | None = None,
    names: Sequence[str] | None = None,
    protocol: str | None = None,
) -> Dataset:
    """The VideoDataset of `data.{split}_list` ("train", "val" or "test").

    mode: "train", "val" or "test" (default: "train" for the train split, else "val").
    Clip geometry (frames, crop size) and the class count come from `cfg.model`, or from
    `model_config` (a loaded checkpoint's TimeSformerConfig) when given, as `eval` does;
    `views` replaces the split's `data.*_views`; `names` the class names of `data.labels`;
    `protocol` replaces `data.test_protocol` (how eval views are placed and cropped).
    """
    from ..data import VideoDataset

    d, m = cfg.data, cfg.model
    source = getattr(d, f"{split}_list")
    if not source:
        raise ValueError(f"data.{split}_list is not set: give a list file or a class folder")
    mode = mode or ("train" if split == "train" else "val")
    if views is None:
        views = parse_views(d.val_views if split == "val" else d.test_views)
    if model_config is not None:
        size = model_config.img_size
        frames, crop = model_config.num_frames, size if isinstance(size, int) else min(size)
        num_classes = model_config.num_classes
    else:
        frames, crop, num_classes = m.num_frames, m.img_size, m.num_classes
    return VideoDataset(
        source,
        root=d.root,
        mode=mode,
        num_frames=d.num_frames or frames,
        sampling_rate=d.sampling_rate,
        target_fps=d.target_fps,
        sampler=d.sampler,
        test_views=views,
        crop_size=d.crop_size or crop,
        train_jitter=tuple(d.train_jitter),
        flip=d.flip,
        mean=d.mean,
        std=d.std,
        channel_order=d.channel_order,
        num_classes=num_classes,
        label_names=list(names) if names is not None else label_names(cfg),
        seed=cfg.train.seed,
        separator=d.list_separator,
        upright=d.upright,
        test_protocol=protocol or d.test_protocol,
    )
