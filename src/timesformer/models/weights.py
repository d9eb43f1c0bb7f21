"""Checkpoints in, models out (and back): the facade over `formats/` and `checkpoint_io`.

Read (recognised by what the file holds, never by its name):

- ``ours``: ``torch.save`` of {"format": "timesformer", "version": 1, "config", "model", ...}
  (optionally with training state), or a ``.safetensors`` file whose metadata holds
  {"format": "timesformer", "config": <json>};
- ``official``: facebookresearch/TimeSformer ``.pyth`` files ({"model_state": {"model.<key>"},
  "cfg": <yaml>, "epoch", ...}), including the HR, L and SSv2 releases;
- ``hf``: Hugging Face ``transformers`` Timesformer directories (config.json and
  model.safetensors or pytorch_model.bin, sharded or not);
- ``timm_vit`` / ``hf_vit``: ImageNet ViT image weights (a timm ``vit_*`` state dict in .pth or
  .safetensors, or a Hugging Face ``ViTModel`` directory), turned into a video model by the
  paper's recipe (see `image_state_to_video`);
- ``state_dict``: a bare state dict in our key names (architecture read from tensor shapes).

Written: ours (`save_checkpoint`, `save_safetensors`), official (`to_official_state_dict`,
`save_official`) and Hugging Face (`to_hf_state_dict`, `save_hf`).

Reading never runs code from a file: torch files that need more than tensors and plain data are
refused unless `allow_pickle=True`; our files' payload hash is verified, and non-finite weights
are refused. Every failure to read a checkpoint is a `CheckpointError` (a ValueError) naming it.

The architecture comes from the checkpoint wherever it says (config, tensor shapes); overrides
apply on top, and `num_frames` / `img_size` overrides resample the stored embeddings. This
module recognises the format, checks the requested model against the checkpoint and loads
strictly; the key maps are in `formats/`, the file reading and writing in `checkpoint_io`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import checkpoint_io as io
from . import hub
from .config import TimeSformerConfig, _pair
from .factory import unwrap_model
from .formats import hf, native, official, vit
from .formats.common import ACCEPTED_FORMATS, few, strip, tensors
from .formats.hf import hf_config_dict
from .formats.native import FORMAT_VERSION
from .formats.vit import image_state_to_video
from .integrity import CheckpointError, check_finite
from .integrity import named as _named
from .integrity import one_line as _one_line
from .preprocess import Preprocess, fit_model, preprocess_of
from .preprocess_io import read_preprocess
from .timesformer import TimeSformer, resample_pos_embed, resample_time_embed

__all__ = [
    "ACCEPTED_FORMATS",
    "FORMAT_VERSION",
    "HF_ATTENTION_TYPES",
    "IMAGE_FORMATS",
    "OFFICIAL_ATTENTION_TYPES",
    "VIDEO_FORMATS",
    "Checkpoint",
    "CheckpointError",
    "detect_format",
    "from_pretrained",
    "hf_config_dict",
    "image_state_to_video",
    "load_into",
    "read_checkpoint",
    "read_preprocess",
    "save_checkpoint",
    "save_hf",
    "save_official",
    "save_safetensors",
    "to_hf_state_dict",
    "to_official_state_dict",
]

VIDEO_FORMATS = ("ours", "official", "hf", "state_dict")
IMAGE_FORMATS = ("timm_vit", "hf_vit")
HF_ATTENTION_TYPES = hf.ATTENTION_TYPES
OFFICIAL_ATTENTION_TYPES = official.ATTENTION_TYPES
_STRUCTURE = ("embed_dim", "depth", "patch_size", "in_chans", "mlp_ratio", "qkv_bias", "num_heads")


@dataclass
class Checkpoint:
    """A checkpoint as read from disk, before it meets a model.

    state: tensors in our key names (video formats) or timm ViT key names (image formats).
    config: TimeSformerConfig fields the checkpoint states or its tensor shapes imply.
    assumed: fields in `config` that are only guesses (e.g. heads of an official file).
    attention_choices: attention types whose parameters match the keys (video formats).
    extra: everything else the file held (training state, official epoch and cfg, ...).
    """

    format: str
    source: str
    state: dict[str, Tensor]
    config: dict[str, Any]
    assumed: set[str] = field(default_factory=set)
    attention_choices: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_image(self) -> bool:
        return self.format in IMAGE_FORMATS

    @property
    def num_classes(self) -> int:
        w = self.state.get("head.weight")
        return 0 if w is None or self.is_image else int(w.shape[0])


# ============================================================================ public API: load


def from_pretrained(
    path: str | Path | Mapping[str, Any] | Checkpoint,
    *,
    reset_head: bool = False,
    allow_pickle: bool = False,
    **overrides: Any,
) -> TimeSformer:
    """Build a TimeSformer from any supported checkpoint (format detected from the content).

    The architecture comes from the checkpoint; `overrides` (any TimeSformerConfig field:
    num_frames, img_size, num_classes, drop_path_rate, embed_resample, labels, ...) apply on top.
    `num_frames` / `img_size` resample the stored embeddings (mode: `embed_resample`).
    A `num_classes` different from the checkpoint's head raises unless `reset_head=True`, which
    keeps every other weight and starts a freshly initialised head (`num_classes=0` simply drops
    the head). Image ViT weights take `attention_type`, `num_frames`, `num_classes` (default
    400) freely: the ImageNet recipe builds the video parts. `path` may also be a Hugging Face
    Hub id ("facebook/timesformer-base-finetuned-k400"), fetched into the Hub cache (see
    `models.hub`; an existing local path of that name wins). The model carries the
    checkpoint's preprocessing contract as `model.preprocess` (`read_preprocess`). Returns the
    model in eval mode. `allow_pickle=True` unpickles torch files fully: that runs code from
    the file, so use it only for files you trust (see `read_checkpoint`).
    """
    ck = read_checkpoint(path, allow_pickle=allow_pickle)
    try:
        cfg = _target_config(ck, overrides)
        with torch.device("meta"):  # no init cost: the checkpoint supplies every weight
            model = TimeSformer(cfg)
        model.to_empty(device="cpu")
        _load(model, ck, reset_head, hint="from_pretrained", init_head=True)
    except (ValueError, TypeError) as e:
        if overrides or reset_head or isinstance(e, CheckpointError):
            raise
        # nothing asked of it but its own architecture: the checkpoint contradicts itself
        raise CheckpointError(_named(str(e), ck.source)) from e
    pre = read_preprocess(ck, model.config)
    names = pre.class_names
    if model.config.labels is None and names and len(names) == model.config.num_classes:
        model.config = model.config.replace(labels=list(names))
    elif names and len(names) != model.config.num_classes:  # a new head: the names do not fit
        pre = dataclasses.replace(pre, class_names=None)
    model.preprocess = pre
    return model.eval()


def load_into(
    model: nn.Module,
    path_or_state: str | Path | Mapping[str, Any] | Checkpoint,
    *,
    reset_head: bool = False,
    allow_pickle: bool = False,
) -> nn.Module:
    """Load a checkpoint of any supported format into an existing TimeSformer, strictly.

    Stored embeddings are resampled to the model's num_frames / img_size. A head of another
    size raises unless `reset_head=True` (the model's own freshly initialised head is kept).
    `allow_pickle`: see `read_checkpoint`. Returns `model`.
    """
    target = _unwrap(model)
    ck = read_checkpoint(path_or_state, allow_pickle=allow_pickle)
    _load(target, ck, reset_head, hint="load_into")
    return model


def read_checkpoint(
    path_or_state: str | Path | Mapping[str, Any] | Checkpoint, *, allow_pickle: bool = False
) -> Checkpoint:
    """Read a checkpoint file, directory or in-memory dict and recognise its format.

    Never runs code from the file unless `allow_pickle=True`, which unpickles torch files fully
    (only for files you trust); without it such a file is refused in one line. Raises
    FileNotFoundError for a missing path and CheckpointError for anything else unreadable:
    damaged (payload hash mismatch, truncated), refused, unknown format, non-finite weights.
    """
    if isinstance(path_or_state, Checkpoint):
        return path_or_state
    if isinstance(path_or_state, Mapping):
        ck = _from_object(path_or_state, "<state dict>", None)
        check_finite(ck.state, ck.source)
        return ck
    path = Path(os.path.expanduser(path_or_state))  # an unknown ~user stays as written
    if not path.exists():
        if hub.is_hub_id(path_or_state):
            path = hub.resolve(str(path_or_state))
        else:
            raise FileNotFoundError(f"checkpoint not found: {path}{io.hub_hint(path)}")
    try:
        ck = _read_path(path, allow_pickle)
        check_finite(ck.state, ck.source)
    except (FileNotFoundError, CheckpointError):
        raise
    except OSError as e:  # a permission, an I/O error: the file and the reason, no errno
        why = (e.strerror or _one_line(e)).lower()
        raise CheckpointError(f"cannot read checkpoint {e.filename or path}: {why}") from e
    except Exception as e:  # noqa: BLE001 - whatever a damaged file trips: one error, one line
        why = _one_line(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {_one_line(e)}"
        raise CheckpointError(_named(why, str(path))) from e
    return ck


def _read_path(path: Path, allow_pickle: bool) -> Checkpoint:
    if path.is_dir():
        return _from_hf_dir(path, allow_pickle)
    if io.is_safetensors(path):
        state, meta = io.read_safetensors(path)
        if meta.get("format") == "timesformer":
            return _ours(*native.from_safetensors(state, meta, str(path)), str(path))
        return _from_object(state, str(path), path.parent)
    return _from_object(io.torch_load(path, allow_pickle=allow_pickle), str(path), path.parent)


def detect_format(
    path_or_state: str | Path | Mapping[str, Any] | Checkpoint, *, allow_pickle: bool = False
) -> str:
    """Name of the checkpoint's format: ours, official, hf, state_dict, timm_vit or hf_vit."""
    return read_checkpoint(path_or_state, allow_pickle=allow_pickle).format


# ============================================================================ public API: save


def save_checkpoint(model: nn.Module, path: str | Path, **extra: Any) -> Path:
    """Write our checkpoint: {"format", "version", "config", "model", **extra}, atomically.

    `extra` holds optional training state (optimizer, scheduler, scaler, epoch, step, rng,
    train_config, best_metric, ...). The model's preprocessing contract is stored as a plain
    dict under "preprocess" (unless `extra` gives one). Written to a temporary name, renamed.
    """
    m = _unwrap(model)
    if "preprocess" not in extra:
        pre = getattr(m, "preprocess", None)
        if not isinstance(pre, Preprocess) and extra.get("train_config") is not None:
            c = m.config  # a model without a contract, saved with its run config: read that
            pre = Preprocess.from_train_config(
                extra["train_config"], c.num_frames, min(_pair(c.img_size)), c.labels
            )
            pre = fit_model(pre, c.num_frames, min(_pair(c.img_size)), c.labels)
        extra["preprocess"] = (pre if isinstance(pre, Preprocess) else preprocess_of(m)).to_dict()
    obj = native.to_checkpoint(m.config, _cpu_state(m), extra)
    return io.torch_save(obj, Path(path))


def save_safetensors(model: nn.Module, path: str | Path) -> Path:
    """Write the weights as .safetensors, with our config and preprocessing (JSON) in the
    metadata."""
    m = _unwrap(model)
    meta = dict(native.safetensors_metadata(m.config), preprocess=preprocess_of(m).to_json())
    return io.write_safetensors(_cpu_state(m), Path(path), meta)


def to_official_state_dict(model: nn.Module, epoch: int = 0) -> dict[str, Any]:
    """The model in the official facebookresearch/TimeSformer checkpoint layout.

    Returns {"epoch", "model_state" ("model."-prefixed official keys), "cfg" (YAML with the
    official DATA/MODEL/TIMESFORMER keys), "timesformer_config" (our full config, which the
    official code ignores)}. Only the schemes the official code has are accepted; a missing
    `time_embed` / `pos_embed` (pos_embed "space" / "none") is written as zeros, which is the
    same function.
    """
    m = _unwrap(model)
    out = official.from_native(_cpu_state(m), m.config, epoch)
    import yaml

    cfg = yaml.safe_load(out["cfg"])
    contract = preprocess_of(m).to_official_cfg()
    for section, values in contract.items():  # DATA.*, TEST.*, our full contract
        cfg[section] = (
            {**(cfg.get(section) or {}), **values} if isinstance(values, dict) else values
        )
    cfg.setdefault("TRAIN", {})["DATASET"] = cfg["TEST"]["DATASET"]
    out["cfg"] = yaml.safe_dump(cfg)
    return out


def save_official(model: nn.Module, path: str | Path, epoch: int = 0) -> Path:
    """torch.save `to_official_state_dict(model)` (a .pyth the official code can load)."""
    return io.torch_save(to_official_state_dict(model, epoch), Path(path))


def to_hf_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The weights under Hugging Face `TimesformerForVideoClassification` key names."""
    m = _unwrap(model)
    return hf.from_native(_cpu_state(m), m.config)


def save_hf(model: nn.Module, directory: str | Path) -> Path:
    """Write a directory that `transformers.TimesformerForVideoClassification.from_pretrained`
    loads with identical logits (divided and joint; space_only too, though Hugging Face returns
    its per-frame logits there). Files: config.json (id2label from the class names),
    model.safetensors, preprocessor_config.json (the preprocessing contract)."""
    import json

    from ..files import atomic_write_text

    m = _unwrap(model)
    pre = preprocess_of(m)
    conf = m.config
    if conf.labels is None and pre.class_names and len(pre.class_names) == conf.num_classes:
        conf = conf.replace(labels=list(pre.class_names))
    state = {k: v.contiguous() for k, v in to_hf_state_dict(m).items()}
    out = io.write_hf_dir(state, hf_config_dict(conf), Path(directory))
    text = json.dumps(pre.to_hf_preprocessor(), indent=2, sort_keys=True) + "\n"
    atomic_write_text(out / "preprocessor_config.json", text)
    return out


# ============================================================================ the contract


def _from_object(obj: Any, source: str, folder: Path | None) -> Checkpoint:
    """Recognise an in-memory checkpoint object (dict) by its keys."""
    if not isinstance(obj, Mapping):
        raise ValueError(
            f"{source}: unknown checkpoint format (a {type(obj).__name__}, not a dict). "
            f"Accepted formats: {ACCEPTED_FORMATS}"
        )
    if obj.get("format") == "timesformer":
        return _ours(*native.from_checkpoint(obj, source), source)
    extra: dict[str, Any] = {}
    if "model_state" in obj and isinstance(obj["model_state"], Mapping):
        extra = {k: v for k, v in obj.items() if k != "model_state"}
        return _official(official.to_native(obj["model_state"], source), extra, source)
    for key in ("model", "state_dict"):  # generic wrappers (e.g. DeiT/timm training files)
        if key in obj and isinstance(obj[key], Mapping):
            extra = {k: v for k, v in obj.items() if k != key}
            obj = obj[key]
            break
    state = strip(tensors(obj, source), ("module.", "_orig_mod."))
    keys = list(state)
    if hf.is_hf_timesformer(keys):
        return _hf(state, io.sibling_config(folder, "timesformer"), source)
    if vit.is_hf_vit(keys):
        return _hf_vit(state, io.sibling_config(folder, "vit"), source)
    if keys and all(k.startswith("model.") for k in keys):
        return _official(strip(state, ("model.",)), extra, source)
    if "patch_embed.proj.weight" in state and "blocks.0.attn.qkv.weight" in state:
        if native.has_video_keys(state):
            conf, assumed, choices = native.infer_video_config(state, {}, source, official=False)
            return Checkpoint("state_dict", source, state, conf, assumed, choices, extra)
        return _timm_vit(state, source, extra)
    found = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
    raise ValueError(
        f"{source}: unknown checkpoint format (keys: {found or 'none'}). "
        f"Accepted formats: {ACCEPTED_FORMATS}"
    )


def _from_hf_dir(path: Path, allow_pickle: bool = False) -> Checkpoint:
    conf = io.read_hf_config(path)
    model_type = conf.get("model_type")
    if model_type not in ("timesformer", "vit"):
        raise ValueError(
            f"{path / 'config.json'}: model_type {model_type!r} is not a Timesformer or ViT. "
            f"Accepted formats: {ACCEPTED_FORMATS}"
        )
    state = io.read_hf_weights(path, allow_pickle=allow_pickle)
    if model_type == "timesformer":
        return _hf(state, conf, str(path))
    return _hf_vit(state, conf, str(path))


def _ours(
    state: dict[str, Tensor], conf: dict[str, Any], extra: dict[str, Any], source: str
) -> Checkpoint:
    return Checkpoint("ours", source, state, conf, set(), (conf["attention_type"],), extra)


def _official(state: dict[str, Tensor], extra: dict[str, Any], source: str) -> Checkpoint:
    conf, assumed, choices = official.read_config(state, extra, source)
    return Checkpoint("official", source, state, conf, assumed, choices, extra)


def _hf(hf_state: dict[str, Tensor], conf: Mapping[str, Any] | None, source: str) -> Checkpoint:
    state = hf.to_native(hf_state, source)
    if conf is None:  # weights without config.json: read what the shapes say
        c, assumed, choices = native.infer_video_config(state, {}, source, official=True)
        return Checkpoint("hf", source, state, c, assumed, choices)
    c = hf.read_config(conf, state, source)
    return Checkpoint("hf", source, state, c, set(), (c["attention_type"],))


def _hf_vit(hf_state: dict[str, Tensor], conf: Mapping[str, Any] | None, source: str) -> Checkpoint:
    state = vit.hf_vit_to_timm(hf_state, source)
    if conf is None:
        return _timm_vit(state, source, {})
    return Checkpoint("hf_vit", source, state, vit.hf_vit_config(conf, source), set(), ())


def _timm_vit(state: dict[str, Tensor], source: str, extra: dict[str, Any]) -> Checkpoint:
    conf, assumed = vit.timm_config(state, source)
    return Checkpoint("timm_vit", source, state, conf, assumed, (), extra)


# ============================================================================ loading


def _target_config(ck: Checkpoint, overrides: dict[str, Any]) -> TimeSformerConfig:
    """The checkpoint's architecture with `overrides` applied and checked against it."""
    base = dict(ck.config)
    if not ck.is_image:  # before anything is built from it
        native.check_stated_config(ck.state, base, ck.source)
    if ck.is_image:
        base.setdefault("num_classes", TimeSformerConfig.num_classes)
    elif overrides.get("attention_type") in ck.attention_choices and ck.format != "ours":
        # keys alone could not tell joint from space-only: the override settles it
        base["attention_type"] = overrides["attention_type"]
        base["pos_embed"] = native.pos_embed_type(ck.state, base["attention_type"])
    if "num_heads" in ck.assumed and "num_heads" not in overrides:
        native.warn_guessed_heads(ck.source, base)
    cfg = TimeSformerConfig(**base).replace(**overrides)
    _check_compatible(ck, cfg, "from_pretrained")
    return cfg


def _check_compatible(ck: Checkpoint, cfg: TimeSformerConfig, hint: str) -> None:
    """Structural settings of `cfg` that the checkpoint's weights cannot serve."""
    names = list(_STRUCTURE)
    if not ck.is_image:
        names += ["attention_type", "pos_embed"]
    for name in names:
        if name not in ck.config or name in ck.assumed:
            continue
        want, got = ck.config[name], getattr(cfg, name)
        if name == "attention_type":
            if got in ck.attention_choices:
                continue
            want = " or ".join(ck.attention_choices)
        elif name == "pos_embed":
            if ck.format != "ours":
                want = native.pos_embed_type(ck.state, cfg.attention_type)
            if _pos_kind(got, cfg.attention_type) == _pos_kind(want, cfg.attention_type):
                continue
        elif name == "mlp_ratio":
            if int(cfg.embed_dim * got) == int(cfg.embed_dim * want):
                continue
        elif got == want:
            continue
        fix = (
            f"leave {name} out to use the checkpoint's value"
            if hint == "from_pretrained"
            else f"build the model with {name}={ck.config[name]!r}"
        )
        raise ValueError(
            f"{ck.source}: {name}={got!r} does not match the {ck.format} checkpoint, which has "
            f"{name}={want!r}; {fix}"
        )


def _pos_kind(pos: str, attention: str) -> str:
    return "space_time" if attention == "space_only" and pos == "space" else pos


def _prepare_state(
    ck: Checkpoint, cfg: TimeSformerConfig, reset_head: bool, hint: str
) -> tuple[dict[str, Tensor], set[str]]:
    """Tensors for a TimeSformer(cfg) and the keys allowed to stay at their fresh init."""
    head_keys = {"head.weight", "head.bias"} if cfg.num_classes else set()
    if ck.is_image:
        return image_state_to_video(ck.state, cfg, _grid_of(ck.config)), head_keys
    state = dict(ck.state)
    if cfg.attention_type == "space_only":
        state.pop("time_embed", None)
    if "pos_embed" in state and cfg.pos_embed != "none":
        old = _grid_of(ck.config)
        n = state["pos_embed"].shape[1] - 1  # (1, 1+N, D)
        if n == old[0] * old[1]:
            state["pos_embed"] = resample_pos_embed(
                state["pos_embed"], old, cfg.grid_size, cfg.embed_resample
            )
    if "time_embed" in state and state["time_embed"].ndim == 3:  # (1, T, D)
        state["time_embed"] = resample_time_embed(
            state["time_embed"], cfg.num_frames, cfg.embed_resample
        )
    src = ck.num_classes
    allowed: set[str] = set()
    if reset_head or cfg.num_classes != src:
        if cfg.num_classes and src != cfg.num_classes and not reset_head:
            how = (
                f"from_pretrained(path, num_classes={cfg.num_classes}, reset_head=True)"
                if hint == "from_pretrained"
                else "load_into(model, path, reset_head=True)"
            )
            has = f"has a {src}-class head" if src else "has no classifier head"
            raise ValueError(
                f"{ck.source}: the checkpoint {has} but {cfg.num_classes} classes "
                f"were requested; to keep every other weight and start a freshly initialised "
                f"{cfg.num_classes}-way head, call {how} (or use num_classes={src})"
            )
        state.pop("head.weight", None)
        state.pop("head.bias", None)
        allowed = head_keys
    return state, allowed


def _grid_of(conf: Mapping[str, Any]) -> tuple[int, int]:
    """Patch grid (rows, columns) of a checkpoint's stored image size."""
    h, w = _pair(conf.get("img_size", 224))
    p = int(conf.get("patch_size", 16))
    return h // p, w // p


def _load(
    model: nn.Module, ck: Checkpoint, reset_head: bool, hint: str, init_head: bool = False
) -> None:
    """Check, adapt and strictly load `ck` into `model`; `init_head`: the model's weights are
    uninitialised memory, so a head the checkpoint does not supply is initialised here."""
    cfg: TimeSformerConfig = _config_of(model)
    _check_compatible(ck, cfg, hint)
    state, allowed_missing = _prepare_state(ck, cfg, reset_head, hint)
    _load_strict(model, state, ck.source, allowed_missing)
    if init_head and allowed_missing:
        model.reset_classifier(cfg.num_classes)  # a freshly initialised head
        model.config = cfg
    labels = ck.config.get("labels")
    keeps_head = "head.weight" in state
    if keeps_head and cfg.labels is None and labels and len(labels) == cfg.num_classes:
        model.config = cfg.replace(labels=list(labels))


def _load_strict(
    model: nn.Module, state: Mapping[str, Tensor], source: str, allowed_missing: set[str]
) -> None:
    """load_state_dict with errors that list missing/unexpected keys and shape mismatches."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state) - allowed_missing)
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {few(unexpected)}")
        raise ValueError(f"{source}: checkpoint does not match the model: " + "; ".join(parts))
    bad = [
        f"{k} expected {tuple(expected[k].shape)}, found {tuple(v.shape)}"
        for k, v in state.items()
        if tuple(v.shape) != tuple(expected[k].shape)
    ]
    if bad:
        raise ValueError(f"{source}: shape mismatch: {few(bad)}")
    # a float weight stored as integers or bools would be copied in cast (0.02 -> 0): refuse
    # it; float16 / bfloat16 / float64 weights are ordinary and are cast to the model's dtype
    wrong = [
        f"{k} is {str(v.dtype).removeprefix('torch.')}"
        for k, v in state.items()
        if expected[k].is_floating_point() and not v.is_floating_point()
    ]
    if wrong:
        raise ValueError(
            f"{source}: weights of the wrong dtype ({few(wrong)}); expected floating-point "
            "tensors: the file is damaged or was not written as a TimeSformer checkpoint"
        )
    model.load_state_dict(dict(state), strict=False)


# ============================================================================ helpers


def _config_of(model: nn.Module) -> TimeSformerConfig:
    """The model's TimeSformerConfig, or one error saying a TimeSformer was expected."""
    cfg = getattr(model, "config", None)
    if not isinstance(cfg, TimeSformerConfig):
        raise ValueError(f"expected a TimeSformer model; got {type(model).__name__}")
    return cfg


def _unwrap(model: nn.Module) -> nn.Module:
    """The TimeSformer inside DDP / torch.compile wrappers."""
    inner = unwrap_model(model)
    _config_of(inner)
    return inner


def _cpu_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
