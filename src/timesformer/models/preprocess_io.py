"""Reading the preprocessing contract out of a checkpoint of any format.

Ours stores it whole ("preprocess"); older files of ours have the training run's config;
official files their yacs cfg; Hugging Face folders a preprocessor_config.json. Whatever is
missing takes `Preprocess.for_geometry`'s defaults; an unreadable record is a warning, except
a Hugging Face folder's preprocessor_config.json, which is fatal (as its config.json).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .config import TimeSformerConfig, _pair
from .integrity import CheckpointError
from .preprocess import Preprocess, fit_model

if TYPE_CHECKING:
    from .weights import Checkpoint


def read_preprocess(ck: Checkpoint, cfg: TimeSformerConfig) -> Preprocess:
    """The preprocessing contract a checkpoint stores, fitted to the model `cfg` builds.

    Ours: "preprocess" (a dict in .pt, JSON in .safetensors metadata), else the training
    checkpoint's `train_config` (older files). Official: the `cfg` YAML (DATA.*, TEST.*,
    TRAIN.DATASET ssv2 -> segments and BGR). Hugging Face: preprocessor_config.json. Anything
    else, or an unreadable record (warned): `Preprocess.for_geometry`, sources "default".
    """
    import warnings

    import yaml

    size = min(_pair(cfg.img_size))
    stored_frames = int(ck.config.get("num_frames", cfg.num_frames) or cfg.num_frames)
    stored_size = min(_pair(ck.config.get("img_size", size)))
    pre: Preprocess | None = None
    try:
        pre = _stored_preprocess(ck, stored_frames, stored_size)
    except CheckpointError:
        raise
    except (ValueError, TypeError, KeyError, yaml.YAMLError) as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        warnings.warn(f"{ck.source}: the recorded preprocessing cannot be read ({why}); using "
                      "the defaults (override with --sampling-rate / --sampler)",
                      RuntimeWarning, stacklevel=3)  # fmt: skip
    if pre is None:
        pre = Preprocess.for_geometry(cfg.num_frames, size)
    labels = cfg.labels if cfg.labels and len(cfg.labels) == cfg.num_classes else None
    return fit_model(pre, cfg.num_frames, size, labels)


def _stored_preprocess(ck: Checkpoint, frames: int, size: int) -> Preprocess | None:
    import json

    import yaml

    if ck.format == "ours":
        stored = ck.extra.get("preprocess")
        if isinstance(stored, str):
            stored = json.loads(stored)
        if isinstance(stored, Mapping):  # keeps the recorded sources (e.g. "run config")
            pre = Preprocess.from_dict(stored)
            srcs = {k: "checkpoint" for k in stored if k != "sources"}
            srcs.update({k: v for k, v in pre.sources.items() if v not in ("default", "given")})
            return dataclasses.replace(pre, sources=srcs)
        if ck.extra.get("train_config") is not None:
            names = ck.config.get("labels")
            return Preprocess.from_train_config(ck.extra["train_config"], frames, size, names)
        return None
    if ck.format == "official" and ck.extra.get("cfg") is not None:
        cfg = ck.extra["cfg"]
        if isinstance(cfg, str):
            cfg = yaml.safe_load(cfg)
        if isinstance(cfg, Mapping):
            return Preprocess.from_official_cfg(cfg, frames, size)
        return None
    folder = Path(ck.source)
    if ck.format == "hf" and folder.is_dir() and (folder / "preprocessor_config.json").is_file():
        f = folder / "preprocessor_config.json"
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:  # as config.json: a damaged file is fatal
            raise CheckpointError(
                f"{f}: not valid JSON ({e}); the folder's preprocessing (mean/std, sampling) "
                "cannot be read: re-export it, or delete the file to use the defaults"
            ) from None
        try:  # present but wrong is fatal too: defaults would silently change predictions
            if not isinstance(d, Mapping):
                raise ValueError(f"expected a JSON object, found {type(d).__name__}")
            return Preprocess.from_hf_preprocessor(d, frames, size)
        except (ValueError, TypeError, KeyError) as e:
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(
                f"{f}: {why}; the folder's preprocessing cannot be read: fix or re-export it, "
                "or delete the file to use the defaults"
            ) from None
    return None


# ============================================================================ recognising
