"""Checkpoint formats: detection from content, key maps, strict loading, and exporters.

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
`save_official`) and Hugging Face (`save_hf`).

The architecture comes from the checkpoint wherever it says (config, tensor shapes); overrides
apply on top, and `num_frames` / `img_size` overrides resample the stored embeddings.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from .config import EXTRA_STEPS, TimeSformerConfig, _pair
from .timesformer import TimeSformer, resample_pos_embed, resample_time_embed

FORMAT_VERSION = 1
VIDEO_FORMATS = ("ours", "official", "hf", "state_dict")
IMAGE_FORMATS = ("timm_vit", "hf_vit")
ACCEPTED_FORMATS = (
    "ours (torch.save dict with format='timesformer', or .safetensors with timesformer "
    "metadata); official facebookresearch/TimeSformer .pyth ({'model_state': {'model.*'}}); "
    "Hugging Face Timesformer directory (config.json + model.safetensors or pytorch_model.bin); "
    "ImageNet ViT weights (timm vit_* state dict as .pth/.safetensors, or a Hugging Face "
    "ViTModel directory)"
)

HF_ATTENTION_TYPES = ("divided_space_time", "joint_space_time", "space_only")
OFFICIAL_ATTENTION_TYPES = HF_ATTENTION_TYPES

# Hugging Face Timesformer names (inside `encoder.layer.{i}.`) -> ours (inside `blocks.{i}.`).
_HF_LAYER = {
    "layernorm_before": "norm1",
    "attention.attention.qkv": "attn.qkv",
    "attention.output.dense": "attn.proj",
    "temporal_layernorm": "temporal_norm1",
    "temporal_attention.attention.qkv": "temporal_attn.qkv",
    "temporal_attention.output.dense": "temporal_attn.proj",
    "temporal_dense": "temporal_fc",
    "layernorm_after": "norm2",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}
_HF_TOP = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.time_embeddings": "time_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
# Hugging Face ViT (inside `encoder.layer.{i}.`) -> timm ViT (inside `blocks.{i}.`); q/k/v apart.
_HF_VIT_LAYER = {
    "layernorm_before": "norm1",
    "attention.output.dense": "attn.proj",
    "attention.o_proj": "attn.proj",
    "layernorm_after": "norm2",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_HF_VIT_QKV = {
    "attention.attention.query": "q",
    "attention.attention.key": "k",
    "attention.attention.value": "v",
    "attention.q_proj": "q",
    "attention.k_proj": "k",
    "attention.v_proj": "v",
}
_HF_VIT_IGNORED = ("pooler.", "classifier.", "embeddings.mask_token")
_TIMM_IGNORED = ("head.", "pre_logits.")
_LAYER_RE = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")
_VIT_LAYER_RE = re.compile(r"^layers\.(\d+)\.(.+)\.(weight|bias)$")
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
    **overrides: Any,
) -> TimeSformer:
    """Build a TimeSformer from any supported checkpoint (format detected from the content).

    The architecture comes from the checkpoint; `overrides` (any TimeSformerConfig field:
    num_frames, img_size, num_classes, drop_path_rate, embed_resample, labels, ...) apply on top.
    `num_frames` / `img_size` resample the stored embeddings (mode: `embed_resample`).
    A `num_classes` different from the checkpoint's head raises unless `reset_head=True`, which
    keeps every other weight and starts a freshly initialised head (`num_classes=0` simply drops
    the head). Image ViT weights take `attention_type`, `num_frames`, `num_classes` (default
    400) freely: the ImageNet recipe builds the video parts. Returns the model in eval mode.
    """
    ck = read_checkpoint(path)
    cfg = _target_config(ck, overrides)
    with torch.device("meta"):  # no init cost: the checkpoint supplies every weight
        model = TimeSformer(cfg)
    model.to_empty(device="cpu")
    _load(model, ck, reset_head, hint="from_pretrained", init_head=True)
    return model.eval()


def load_into(
    model: nn.Module,
    path_or_state: str | Path | Mapping[str, Any] | Checkpoint,
    *,
    reset_head: bool = False,
) -> nn.Module:
    """Load a checkpoint of any supported format into an existing TimeSformer, strictly.

    Stored embeddings are resampled to the model's num_frames / img_size. A head of another
    size raises unless `reset_head=True` (the model's own freshly initialised head is kept).
    Returns `model`.
    """
    target = _unwrap(model)
    ck = read_checkpoint(path_or_state)
    _load(target, ck, reset_head, hint="load_into")
    return model


def read_checkpoint(path_or_state: str | Path | Mapping[str, Any] | Checkpoint) -> Checkpoint:
    """Read a checkpoint file, directory or in-memory dict and recognise its format."""
    if isinstance(path_or_state, Checkpoint):
        return path_or_state
    if isinstance(path_or_state, Mapping):
        return _from_object(path_or_state, "<state dict>", None)
    path = Path(path_or_state).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}{_hub_hint(path)}")
    if path.is_dir():
        return _read_hf_dir(path)
    if _is_safetensors(path):
        tensors, meta = _read_safetensors(path)
        if meta.get("format") == "timesformer":
            return _from_ours_safetensors(tensors, meta, str(path))
        return _from_object(tensors, str(path), path.parent)
    return _from_object(_torch_load(path), str(path), path.parent)


def detect_format(path_or_state: str | Path | Mapping[str, Any] | Checkpoint) -> str:
    """Name of the checkpoint's format: ours, official, hf, state_dict, timm_vit or hf_vit."""
    return read_checkpoint(path_or_state).format


def image_state_to_video(
    state: Mapping[str, Tensor], config: TimeSformerConfig, image_grid: tuple[int, int]
) -> dict[str, Tensor]:
    """The paper's ImageNet initialisation: a timm-layout ViT state dict -> TimeSformer weights.

    The classifier is dropped (the model keeps its own fresh head); every extra attention step
    (`temporal_*`, `local_*`, `width_*`) starts as a copy of the block's `norm1`/`attn`, with its
    output linear at zero; `time_embed` starts at zero; `pos_embed` is resampled from
    `image_grid` to the config's grid. So a divided model fed a video of one repeated image
    computes exactly the ViT's class-token features of that image.
    """
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if k.startswith(_TIMM_IGNORED):
            continue
        if k == "pos_embed":
            if config.pos_embed == "none":
                continue
            if v.shape[1] != image_grid[0] * image_grid[1] + 1:
                raise ValueError(
                    f"pos_embed has {v.shape[1]} slots, expected 1 + {image_grid[0]}x"
                    f"{image_grid[1]} for the image grid"
                )
            v = resample_pos_embed(v, image_grid, config.grid_size, config.embed_resample)
        out[k] = v
    D = config.embed_dim
    if config.pos_embed == "space_time" and config.attention_type != "space_only":
        out["time_embed"] = torch.zeros(1, config.num_frames, D)
    for i in range(config.depth):
        b = f"blocks.{i}."
        for norm, attn, fc in EXTRA_STEPS[config.attention_type]:
            for p in ("weight", "bias"):
                if b + "norm1." + p in state:
                    out[b + f"{norm}.{p}"] = state[b + "norm1." + p].clone()
            for sub in ("qkv.weight", "qkv.bias", "proj.weight", "proj.bias"):
                if b + "attn." + sub in state:
                    out[b + f"{attn}.{sub}"] = state[b + "attn." + sub].clone()
            out[b + f"{fc}.weight"] = torch.zeros(D, D)
            out[b + f"{fc}.bias"] = torch.zeros(D)
    return out


# ============================================================================ public API: save


def save_checkpoint(model: nn.Module, path: str | Path, **extra: Any) -> Path:
    """Write our checkpoint: {"format", "version", "config", "model", **extra}, atomically.

    `extra` holds optional training state (optimizer, scheduler, scaler, epoch, step, rng,
    train_config, best_metric, ...). The file is written to a temporary name, then renamed.
    """
    m = _unwrap(model)
    reserved = {"format", "version", "config", "model"} & set(extra)
    if reserved:
        raise ValueError(f"save_checkpoint: extra keys {sorted(reserved)} are reserved")
    obj = {
        "format": "timesformer",
        "version": FORMAT_VERSION,
        "config": m.config.to_dict(),
        "model": _cpu_state(m),
        **extra,
    }
    path = Path(path)
    _atomic_write(path, lambda tmp: torch.save(obj, tmp))
    return path


def save_safetensors(model: nn.Module, path: str | Path) -> Path:
    """Write the weights only as .safetensors, with our config in the metadata."""
    from safetensors.torch import save_file

    m = _unwrap(model)
    meta = {
        "format": "timesformer",
        "version": str(FORMAT_VERSION),
        "config": json.dumps(m.config.to_dict()),
    }
    path = Path(path)
    state = _cpu_state(m)
    _atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=meta))
    return path


def to_official_state_dict(model: nn.Module, epoch: int = 0) -> dict[str, Any]:
    """The model in the official facebookresearch/TimeSformer checkpoint layout.

    Returns {"epoch", "model_state" ("model."-prefixed official keys), "cfg" (YAML with the
    official DATA/MODEL/TIMESFORMER keys), "timesformer_config" (our full config, which the
    official code ignores)}. Only the schemes the official code has are accepted; a missing
    `time_embed` / `pos_embed` (pos_embed "space" / "none") is written as zeros, which is the
    same function.
    """
    m = _unwrap(model)
    cfg: TimeSformerConfig = m.config
    if cfg.attention_type not in OFFICIAL_ATTENTION_TYPES:
        raise ValueError(
            f"the official TimeSformer code has no attention_type={cfg.attention_type!r}; it "
            f"supports {', '.join(OFFICIAL_ATTENTION_TYPES)}. Save it in our format instead."
        )
    h, w = _pair(cfg.img_size)
    if h != w:
        raise ValueError(f"the official TimeSformer code needs square frames; img_size={h}x{w}")
    state = _cpu_state(m)
    D = cfg.embed_dim
    if "pos_embed" not in state:
        state["pos_embed"] = torch.zeros(1, cfg.num_patches + 1, D)
    if cfg.attention_type != "space_only" and "time_embed" not in state:
        state["time_embed"] = torch.zeros(1, cfg.num_frames, D)
    official_cfg = {
        "DATA": {"NUM_FRAMES": cfg.num_frames, "TRAIN_CROP_SIZE": h, "TEST_CROP_SIZE": h},
        "MODEL": {
            "ARCH": "vit",
            "MODEL_NAME": "vit_base_patch16_224",
            "NUM_CLASSES": cfg.num_classes,
        },
        "TIMESFORMER": {"ATTENTION_TYPE": cfg.attention_type, "PRETRAINED_MODEL": ""},
    }
    return {
        "epoch": epoch,
        "model_state": {f"model.{k}": v for k, v in state.items()},
        "cfg": yaml.safe_dump(official_cfg),
        "timesformer_config": cfg.to_dict(),
    }


def save_official(model: nn.Module, path: str | Path, epoch: int = 0) -> Path:
    """torch.save `to_official_state_dict(model)` (a .pyth the official code can load)."""
    obj = to_official_state_dict(model, epoch)
    path = Path(path)
    _atomic_write(path, lambda tmp: torch.save(obj, tmp))
    return path


def to_hf_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The weights under Hugging Face `TimesformerForVideoClassification` key names."""
    m = _unwrap(model)
    cfg: TimeSformerConfig = m.config
    _check_hf_exportable(cfg)
    state = _cpu_state(m)
    D = cfg.embed_dim
    if "pos_embed" not in state:
        state["pos_embed"] = torch.zeros(1, cfg.num_patches + 1, D)
    if cfg.attention_type != "space_only" and "time_embed" not in state:
        state["time_embed"] = torch.zeros(1, cfg.num_frames, D)
    top = {v: k for k, v in _HF_TOP.items()}
    layer = {v: k for k, v in _HF_LAYER.items()}
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if k in top:
            out["timesformer." + top[k]] = v
        elif k.startswith("head."):
            out["classifier." + k[len("head.") :]] = v
        else:
            mt = re.match(r"^blocks\.(\d+)\.(.+)\.(weight|bias)$", k)
            if not mt or mt.group(2) not in layer:
                raise ValueError(f"no Hugging Face name for parameter {k!r}")
            i, name, p = mt.groups()
            out[f"timesformer.encoder.layer.{i}.{layer[name]}.{p}"] = v
    return out


def hf_config_dict(config: TimeSformerConfig) -> dict[str, Any]:
    """config.json contents for `transformers.TimesformerForVideoClassification`."""
    _check_hf_exportable(config)
    labels = config.labels or [f"LABEL_{i}" for i in range(config.num_classes)]
    dpr = config.drop_path_rate
    d: dict[str, Any] = {
        "architectures": ["TimesformerForVideoClassification"],
        "model_type": "timesformer",
        "image_size": _pair(config.img_size)[0],
        "patch_size": config.patch_size,
        "num_channels": config.in_chans,
        "num_frames": config.num_frames,
        "hidden_size": config.embed_dim,
        "num_hidden_layers": config.depth,
        "num_attention_heads": config.num_heads,
        "intermediate_size": int(config.embed_dim * config.mlp_ratio),
        "hidden_act": "gelu",
        "hidden_dropout_prob": config.drop_rate,
        "attention_probs_dropout_prob": config.attn_drop_rate,
        "initializer_range": 0.02,
        "layer_norm_eps": config.layer_norm_eps,
        "qkv_bias": config.qkv_bias,
        "attention_type": config.attention_type,
        # transformers types this field as int: a fractional rate goes in our own key.
        "drop_path_rate": int(dpr) if float(dpr).is_integer() else 0,
        "id2label": {str(i): name for i, name in enumerate(labels)},
        "label2id": {name: i for i, name in enumerate(labels)},
    }
    if not float(dpr).is_integer():
        d["timesformer_drop_path_rate"] = dpr
    return d


def save_hf(model: nn.Module, directory: str | Path) -> Path:
    """Write a directory that `transformers.TimesformerForVideoClassification.from_pretrained`
    loads with identical logits (divided and joint; space_only too, though Hugging Face returns
    its per-frame logits there). Files: config.json, model.safetensors."""
    from safetensors.torch import save_file

    m = _unwrap(model)
    state = {k: v.contiguous() for k, v in to_hf_state_dict(m).items()}
    conf = hf_config_dict(m.config)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_write(
        directory / "model.safetensors",
        lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}),
    )
    (directory / "config.json").write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")
    return directory


# ============================================================================ reading


def _from_object(obj: Any, source: str, folder: Path | None) -> Checkpoint:
    """Recognise an in-memory checkpoint object (dict) by its keys."""
    if not isinstance(obj, Mapping):
        raise ValueError(
            f"{source}: unknown checkpoint format (a {type(obj).__name__}, not a dict). "
            f"Accepted formats: {ACCEPTED_FORMATS}"
        )
    if obj.get("format") == "timesformer":
        return _from_ours(obj, source)
    extra: dict[str, Any] = {}
    if "model_state" in obj and isinstance(obj["model_state"], Mapping):
        extra = {k: v for k, v in obj.items() if k != "model_state"}
        state = _strip(_tensors(obj["model_state"], source), ("module.",))
        if not all(k.startswith("model.") for k in state):
            raise ValueError(
                f"{source}: 'model_state' keys lack the official 'model.' prefix (e.g. "
                f"{next(iter(state), '')!r}). Accepted formats: {ACCEPTED_FORMATS}"
            )
        return _from_official(_strip(state, ("model.",)), extra, source)
    for key in ("model", "state_dict"):  # generic wrappers (e.g. DeiT/timm training files)
        if key in obj and isinstance(obj[key], Mapping):
            extra = {k: v for k, v in obj.items() if k != key}
            obj = obj[key]
            break
    state = _strip(_tensors(obj, source), ("module.", "_orig_mod."))
    keys = list(state)
    if any(k.startswith("timesformer.") for k in keys) or any(
        ".attention.attention.qkv." in k for k in keys
    ):
        conf = _sibling_config(folder, "timesformer")
        return _from_hf_timesformer(state, conf, source)
    if any(".attention.attention.query." in k or ".attention.q_proj." in k for k in keys):
        conf = _sibling_config(folder, "vit")
        return _from_hf_vit(state, conf, source)
    if keys and all(k.startswith("model.") for k in keys):
        return _from_official(_strip(state, ("model.",)), extra, source)
    if "patch_embed.proj.weight" in state and "blocks.0.attn.qkv.weight" in state:
        if _has_video_keys(state):
            conf, assumed, choices = _infer_video_config(state, {}, source, official=False)
            return Checkpoint("state_dict", source, state, conf, assumed, choices, extra)
        return _from_timm_vit(state, source, extra)
    found = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
    raise ValueError(
        f"{source}: unknown checkpoint format (keys: {found or 'none'}). "
        f"Accepted formats: {ACCEPTED_FORMATS}"
    )


def _from_ours(obj: Mapping[str, Any], source: str) -> Checkpoint:
    version = obj.get("version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{source}: checkpoint format version {version!r} is newer than this library "
            f"reads ({FORMAT_VERSION}); upgrade timesformer"
        )
    for key in ("config", "model"):
        if not isinstance(obj.get(key), Mapping):
            raise ValueError(f"{source}: timesformer checkpoint has no {key!r} dict")
    conf = TimeSformerConfig.from_dict(dict(obj["config"])).to_dict()
    state = _strip(_tensors(obj["model"], source), ("module.", "_orig_mod."))
    extra = {k: v for k, v in obj.items() if k not in ("format", "version", "config", "model")}
    return Checkpoint("ours", source, state, conf, set(), (conf["attention_type"],), extra)


def _from_ours_safetensors(
    tensors: dict[str, Tensor], meta: Mapping[str, str], source: str
) -> Checkpoint:
    try:
        conf_dict = json.loads(meta["config"])
    except (KeyError, json.JSONDecodeError) as e:
        raise ValueError(f"{source}: timesformer safetensors metadata has no valid 'config'") from e
    return _from_ours({"format": "timesformer", "config": conf_dict, "model": tensors}, source)


def _from_official(state: dict[str, Tensor], extra: dict[str, Any], source: str) -> Checkpoint:
    """Official layout: our key names (the 'model.' prefix already stripped)."""
    ours = extra.get("timesformer_config")
    if isinstance(ours, Mapping):  # written by to_official_state_dict: exact config
        conf = TimeSformerConfig.from_dict(dict(ours)).to_dict()
        # the exporter fills embeddings the model lacks with zeros: drop them again
        if conf["pos_embed"] != "space_time" or conf["attention_type"] == "space_only":
            state.pop("time_embed", None)
        if conf["pos_embed"] == "none":
            state.pop("pos_embed", None)
        return Checkpoint("official", source, state, conf, set(), (conf["attention_type"],), extra)
    hint = _official_cfg_hint(extra.get("cfg"))
    conf, assumed, choices = _infer_video_config(state, hint, source, official=True)
    if conf["attention_type"] == "space_only":
        state.pop("time_embed", None)  # older official space-only files carry an unused one
    return Checkpoint("official", source, state, conf, assumed, choices, extra)


def _official_cfg_hint(cfg: Any) -> dict[str, Any]:
    """num_frames / img_size / attention_type / num_classes from the official cfg (YAML)."""
    if isinstance(cfg, str):
        try:
            cfg = yaml.safe_load(cfg)
        except yaml.YAMLError:
            return {}
    if not isinstance(cfg, Mapping):
        return {}
    hint: dict[str, Any] = {}
    data = cfg.get("DATA") or {}
    tsf = cfg.get("TIMESFORMER") or {}
    if isinstance(data, Mapping):
        if isinstance(data.get("NUM_FRAMES"), int):
            hint["num_frames"] = data["NUM_FRAMES"]
        if isinstance(data.get("TRAIN_CROP_SIZE"), int):
            hint["img_size"] = data["TRAIN_CROP_SIZE"]
    if isinstance(tsf, Mapping) and tsf.get("ATTENTION_TYPE") in OFFICIAL_ATTENTION_TYPES:
        hint["attention_type"] = tsf["ATTENTION_TYPE"]
    return hint


def _has_video_keys(state: Mapping[str, Tensor]) -> bool:
    video = ("temporal_", "local_", "width_")
    return "time_embed" in state or any(k.split(".")[2].startswith(video) for k in _blocks(state))


def _blocks(state: Mapping[str, Tensor]) -> list[str]:
    return [k for k in state if k.startswith("blocks.") and k.count(".") >= 3]


def _infer_video_config(
    state: Mapping[str, Tensor], hint: Mapping[str, Any], source: str, official: bool
) -> tuple[dict[str, Any], set[str], tuple[str, ...]]:
    """The architecture of a video state dict in our key names, read from its shapes.

    `hint` (e.g. from the official cfg) settles what shapes cannot: the attention type when no
    extra-step keys exist, the frame count of space-only models, a non-square grid. Heads are not
    visible in shapes: 64 per head is assumed (ViT convention) unless given.
    """
    conf: dict[str, Any] = _image_shapes(state, source, hint.get("img_size"))
    assumed = {"num_heads", "layer_norm_eps", "drop_path_rate"}
    steps = {k.split(".")[2].split("_")[0] for k in _blocks(state)}
    if "width" in steps:
        choices: tuple[str, ...] = ("axial",)
    elif "temporal" in steps:
        choices = ("divided_space_time",)
    elif "local" in steps:
        choices = ("sparse_local_global",)
    elif "time_embed" in state:
        # the official space-only model of some releases keeps an unused time_embed
        choices = ("joint_space_time", "space_only") if official else ("joint_space_time",)
    else:
        choices = ("space_only",) if official else ("space_only", "joint_space_time")
    attention = hint.get("attention_type")
    if attention not in choices:
        attention = choices[0]
        if len(choices) > 1:
            assumed.add("attention_type")
    conf["attention_type"] = attention
    if "time_embed" in state:
        conf["num_frames"] = int(state["time_embed"].shape[1])
    else:
        conf["num_frames"] = int(hint.get("num_frames", 8))
        if "num_frames" not in hint:
            assumed.add("num_frames")
    conf["pos_embed"] = _pos_embed_type(state, attention)
    conf["num_classes"] = int(state["head.weight"].shape[0]) if "head.weight" in state else 0
    return conf, assumed, choices


def _pos_embed_type(state: Mapping[str, Tensor], attention: str) -> str:
    """pos_embed setting implied by which embeddings a video state dict holds."""
    if "pos_embed" not in state:
        return "none"
    if "time_embed" in state or attention == "space_only":
        return "space_time"
    return "space"


def _image_shapes(state: Mapping[str, Tensor], source: str, img_size: Any = None) -> dict[str, Any]:
    """embed_dim, patch_size, in_chans, depth, mlp_ratio, qkv_bias, num_heads (D/64), img_size."""
    if "patch_embed.proj.weight" not in state or not _blocks(state):
        raise ValueError(
            f"{source}: no patch_embed.proj.weight or blocks.* weights: not a ViT/TimeSformer "
            f"checkpoint. Accepted formats: {ACCEPTED_FORMATS}"
        )
    w = state["patch_embed.proj.weight"]
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise ValueError(
            f"{source}: patch_embed.proj.weight has shape {tuple(w.shape)}; expected a square "
            "Conv2d kernel (D, C, P, P)"
        )
    D, C, P = int(w.shape[0]), int(w.shape[1]), int(w.shape[2])
    depth = 1 + max(int(k.split(".")[1]) for k in _blocks(state))
    fc1 = state.get("blocks.0.mlp.fc1.weight")
    conf: dict[str, Any] = {
        "embed_dim": D,
        "patch_size": P,
        "in_chans": C,
        "depth": depth,
        "mlp_ratio": fc1.shape[0] / D if fc1 is not None else 4.0,
        "qkv_bias": "blocks.0.attn.qkv.bias" in state,
        "num_heads": D // 64 if D % 64 == 0 else 1,
    }
    pos = state.get("pos_embed")
    if pos is not None:
        n = int(pos.shape[1]) - 1
        h, w_ = _pair(img_size) if img_size is not None else (0, 0)
        if h and (h // P) * (w_ // P) == n:
            conf["img_size"] = h if h == w_ else (h, w_)
        else:
            side = round(n**0.5)
            if side * side != n:
                raise ValueError(
                    f"{source}: pos_embed has {n} patch slots, not a square grid; pass img_size"
                )
            conf["img_size"] = side * P
    elif img_size is not None:
        conf["img_size"] = img_size
    return conf


def _from_timm_vit(state: dict[str, Tensor], source: str, extra: dict[str, Any]) -> Checkpoint:
    conf = _image_shapes(state, source)
    assumed = {"num_heads", "layer_norm_eps"}
    return Checkpoint("timm_vit", source, state, conf, assumed, (), extra)


def _hf_common(conf: Mapping[str, Any], source: str, eps: float) -> dict[str, Any]:
    """TimeSformerConfig fields shared by HF Timesformer and ViT config.json files."""
    if conf.get("hidden_act", "gelu") != "gelu":
        raise ValueError(
            f"{source}: hidden_act={conf['hidden_act']!r} is not supported (exact GELU only)"
        )
    patch = conf.get("patch_size", 16)
    if isinstance(patch, (list, tuple)):
        if patch[0] != patch[1]:
            raise ValueError(f"{source}: non-square patch_size {patch} is not supported")
        patch = patch[0]
    img = conf.get("image_size", 224)
    hidden = int(conf.get("hidden_size", 768))
    return {
        "img_size": tuple(img) if isinstance(img, (list, tuple)) else int(img),
        "patch_size": int(patch),
        "in_chans": int(conf.get("num_channels", 3)),
        "embed_dim": hidden,
        "depth": int(conf.get("num_hidden_layers", 12)),
        "num_heads": int(conf.get("num_attention_heads", 12)),
        "mlp_ratio": int(conf.get("intermediate_size", 4 * hidden)) / hidden,
        "qkv_bias": bool(conf.get("qkv_bias", True)),
        "layer_norm_eps": float(conf.get("layer_norm_eps", eps)),
    }


def _hf_labels(conf: Mapping[str, Any], num_classes: int) -> list[str] | None:
    id2label = conf.get("id2label") or {}
    try:
        labels = [
            str(id2label[str(i)] if str(i) in id2label else id2label[i]) for i in range(num_classes)
        ]
    except KeyError:
        return None
    if all(name == f"LABEL_{i}" for i, name in enumerate(labels)):
        return None
    return labels


def _from_hf_timesformer(
    hf_state: dict[str, Tensor], conf: Mapping[str, Any] | None, source: str
) -> Checkpoint:
    state, unknown = {}, []
    for k, v in hf_state.items():
        name = k[len("timesformer.") :] if k.startswith("timesformer.") else k
        if name in _HF_TOP:
            state[_HF_TOP[name]] = v
        elif k.startswith("classifier."):
            state["head." + k[len("classifier.") :]] = v
        elif (mt := _LAYER_RE.match(name)) and mt.group(2) in _HF_LAYER:
            state[f"blocks.{mt.group(1)}.{_HF_LAYER[mt.group(2)]}.{mt.group(3)}"] = v
        else:
            unknown.append(k)
    if unknown:
        raise ValueError(
            f"{source}: unexpected keys for a Hugging Face Timesformer: {_few(unknown)}"
        )
    if conf is None:  # weights without config.json: read what the shapes say
        c, assumed, choices = _infer_video_config(state, {}, source, official=True)
        return Checkpoint("hf", source, state, c, assumed, choices)
    attention = conf.get("attention_type", "divided_space_time")
    if attention not in HF_ATTENTION_TYPES:
        raise ValueError(f"{source}: unknown Hugging Face attention_type {attention!r}")
    c = _hf_common(conf, source, eps=1e-6)
    num_classes = int(state["head.weight"].shape[0]) if "head.weight" in state else 0
    dpr = conf.get("timesformer_drop_path_rate", conf.get("drop_path_rate", 0.0))
    c.update(
        num_frames=int(conf.get("num_frames", 8)),
        attention_type=attention,
        pos_embed="space_time",
        num_classes=num_classes,
        drop_rate=float(conf.get("hidden_dropout_prob", 0.0)),
        attn_drop_rate=float(conf.get("attention_probs_dropout_prob", 0.0)),
        drop_path_rate=float(dpr),
        labels=_hf_labels(conf, num_classes),
    )
    return Checkpoint("hf", source, state, c, set(), (attention,))


def _from_hf_vit(
    hf_state: dict[str, Tensor], conf: Mapping[str, Any] | None, source: str
) -> Checkpoint:
    """Hugging Face ViTModel / ViTForImageClassification -> timm ViT names (qkv fused).

    Reads the saved layout (`encoder.layer.{i}.attention.attention.query`) and the in-memory
    layout of transformers 5 (`layers.{i}.attention.q_proj`).
    """
    hf_state = _strip(hf_state, ("vit.",))
    state: dict[str, Tensor] = {}
    qkv: dict[tuple[int, str], dict[str, Tensor]] = {}
    unknown = []
    for k, v in hf_state.items():
        if k.startswith(_HF_VIT_IGNORED):
            continue
        if k in _HF_TOP and k != "embeddings.time_embeddings":
            state[_HF_TOP[k]] = v
            continue
        mt = _LAYER_RE.match(k) or _VIT_LAYER_RE.match(k)
        name = mt.group(2) if mt else ""
        if name in _HF_VIT_LAYER:
            state[f"blocks.{mt.group(1)}.{_HF_VIT_LAYER[name]}.{mt.group(3)}"] = v
        elif name in _HF_VIT_QKV:
            qkv.setdefault((int(mt.group(1)), mt.group(3)), {})[_HF_VIT_QKV[name]] = v
        else:
            unknown.append(k)
    if unknown:
        raise ValueError(f"{source}: unexpected keys for a Hugging Face ViT: {_few(unknown)}")
    for (i, p), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"{source}: layer {i} lacks one of the query/key/value {p}s")
        state[f"blocks.{i}.attn.qkv.{p}"] = torch.cat([parts["q"], parts["k"], parts["v"]], 0)
    if conf is None:
        return _from_timm_vit(state, source, {})
    c = _hf_common(conf, source, eps=1e-12)
    return Checkpoint("hf_vit", source, state, c, set(), ())


def _read_hf_dir(path: Path) -> Checkpoint:
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(
            f"{path}: directory has no config.json, so it is not a Hugging Face model "
            f"directory. Accepted formats: {ACCEPTED_FORMATS}"
        )
    try:
        conf = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_file}: not valid JSON ({e})") from e
    model_type = conf.get("model_type")
    if model_type not in ("timesformer", "vit"):
        raise ValueError(
            f"{cfg_file}: model_type {model_type!r} is not a Timesformer or ViT. "
            f"Accepted formats: {ACCEPTED_FORMATS}"
        )
    state = _read_hf_weights(path)
    if model_type == "timesformer":
        return _from_hf_timesformer(state, conf, str(path))
    return _from_hf_vit(state, conf, str(path))


def _read_hf_weights(path: Path) -> dict[str, Tensor]:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (path / name).is_file():
            return _read_weights_file(path / name)
        index = path / f"{name}.index.json"
        if index.is_file():
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            state: dict[str, Tensor] = {}
            for f in files:
                if not (path / f).is_file():
                    raise FileNotFoundError(f"{path / f}: shard listed in {index.name} is missing")
                state.update(_read_weights_file(path / f))
            return state
    raise FileNotFoundError(
        f"{path}: no weights found; expected model.safetensors or pytorch_model.bin "
        "(or a sharded *.index.json)"
    )


def _read_weights_file(path: Path) -> dict[str, Tensor]:
    if _is_safetensors(path):
        return _read_safetensors(path)[0]
    obj = _torch_load(path)
    return _tensors(obj, str(path))


def _sibling_config(folder: Path | None, model_type: str) -> dict[str, Any] | None:
    """config.json next to a bare Hugging Face weights file, when it describes `model_type`."""
    if folder is None or not (folder / "config.json").is_file():
        return None
    try:
        conf = json.loads((folder / "config.json").read_text())
    except json.JSONDecodeError:
        return None
    return conf if conf.get("model_type") == model_type else None


def _hub_hint(path: Path) -> str:
    """A hint for 'org/name' paths, which look like Hugging Face Hub ids (no downloads here)."""
    if path.is_absolute() or path.suffix or len(path.parts) != 2:
        return ""
    return (
        f" (a Hugging Face Hub id? Download it first, e.g. `hf download {path.as_posix()} "
        "--local-dir DIR`, and pass DIR)"
    )


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte header length, then a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= os.path.getsize(path) - 8


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - any parse failure means "not readable"
        raise ValueError(f"{path}: unreadable safetensors file ({e})") from e
    return tensors, meta


def _numpy_safe_globals() -> list[Any]:
    """Globals that numpy arrays (e.g. RNG states in training checkpoints) need to unpickle."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return []
    out: list[Any] = [np.ndarray, np.dtype]
    try:
        out.append(np._core.multiarray._reconstruct)
    except AttributeError:  # numpy < 2
        out.append(np.core.multiarray._reconstruct)
    out += [type(np.dtype(t)) for t in ("uint32", "int64", "float32", "float64", "uint8")]
    return out


def _torch_load(path: Path) -> Any:
    """torch.load with the safe unpickler first; full unpickling only with a warning."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04" and magic[:1] != b"\x80":  # neither zip nor pickle
        raise ValueError(
            f"{path}: unknown checkpoint format (not a torch or safetensors file). "
            f"Accepted formats: {ACCEPTED_FORMATS}"
        )
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
        reason = next((ln for ln in lines if "Unsupported global" in ln), lines[-1])
        warnings.warn(
            f"{path}: holds objects the safe loader refuses ({reason}); unpickling it fully. "
            "Only load checkpoints you trust.",
            stacklevel=3,
        )
        return torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        raise ValueError(
            f"{path}: unknown checkpoint format (not a torch or safetensors file: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}). "
            f"Accepted formats: {ACCEPTED_FORMATS}"
        ) from e


# ============================================================================ loading


def _target_config(ck: Checkpoint, overrides: dict[str, Any]) -> TimeSformerConfig:
    """The checkpoint's architecture with `overrides` applied and checked against it."""
    base = dict(ck.config)
    if ck.is_image:
        base.setdefault("num_classes", TimeSformerConfig.num_classes)
    elif overrides.get("attention_type") in ck.attention_choices and ck.format != "ours":
        # keys alone could not tell joint from space-only: the override settles it
        base["attention_type"] = overrides["attention_type"]
        base["pos_embed"] = _pos_embed_type(ck.state, base["attention_type"])
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
                want = _pos_embed_type(ck.state, cfg.attention_type)
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
        grid = _grid_of(ck.config, ck.source)
        return image_state_to_video(ck.state, cfg, grid), head_keys
    state = dict(ck.state)
    if cfg.attention_type == "space_only":
        state.pop("time_embed", None)
    if "pos_embed" in state and cfg.pos_embed != "none":
        old = _grid_of(ck.config, ck.source)
        n = state["pos_embed"].shape[1] - 1
        if n == old[0] * old[1]:
            state["pos_embed"] = resample_pos_embed(
                state["pos_embed"], old, cfg.grid_size, cfg.embed_resample
            )
    if "time_embed" in state and state["time_embed"].ndim == 3:
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


def _grid_of(conf: Mapping[str, Any], source: str) -> tuple[int, int]:
    h, w = _pair(conf.get("img_size", 224))
    p = int(conf.get("patch_size", 16))
    return h // p, w // p


def _load(
    model: nn.Module, ck: Checkpoint, reset_head: bool, hint: str, init_head: bool = False
) -> None:
    """Check, adapt and strictly load `ck` into `model`; `init_head`: the model's weights are
    uninitialised memory, so a head the checkpoint does not supply is initialised here."""
    cfg: TimeSformerConfig = getattr(model, "config", None)
    if not isinstance(cfg, TimeSformerConfig):
        raise ValueError(f"expected a TimeSformer model; got {type(model).__name__}")
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
            parts.append(f"missing keys: {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_few(unexpected)}")
        raise ValueError(f"{source}: checkpoint does not match the model: " + "; ".join(parts))
    bad = [
        f"{k} expected {tuple(expected[k].shape)}, found {tuple(v.shape)}"
        for k, v in state.items()
        if tuple(v.shape) != tuple(expected[k].shape)
    ]
    if bad:
        raise ValueError(f"{source}: shape mismatch: {_few(bad)}")
    model.load_state_dict(dict(state), strict=False)


# ============================================================================ helpers


def _few(items: list[str], n: int = 12) -> str:
    more = f", ... and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _tensors(obj: Mapping[str, Any], source: str) -> dict[str, Tensor]:
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad or not obj:
        raise ValueError(
            f"{source}: unknown checkpoint format (entries that are not tensors: "
            f"{_few([str(k) for k in bad]) or 'empty dict'}). Accepted formats: {ACCEPTED_FORMATS}"
        )
    return dict(obj)


def _strip(state: dict[str, Tensor], prefixes: tuple[str, ...]) -> dict[str, Tensor]:
    """Remove a prefix that every key carries (DDP 'module.', compile '_orig_mod.', ...)."""
    for p in prefixes:
        if state and all(k.startswith(p) for k in state):
            state = {k[len(p) :]: v for k, v in state.items()}
    return state


def _unwrap(model: nn.Module) -> nn.Module:
    """The TimeSformer inside DDP / torch.compile wrappers."""
    for _ in range(4):
        if isinstance(getattr(model, "config", None), TimeSformerConfig):
            return model
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            break
        model = inner
    if not isinstance(getattr(model, "config", None), TimeSformerConfig):
        raise ValueError(f"expected a TimeSformer model; got {type(model).__name__}")
    return model


def _cpu_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def _check_hf_exportable(cfg: TimeSformerConfig) -> None:
    if cfg.attention_type not in HF_ATTENTION_TYPES:
        raise ValueError(
            f"Hugging Face Timesformer has no attention_type={cfg.attention_type!r}; it "
            f"supports {', '.join(HF_ATTENTION_TYPES)}. Save it in our format instead."
        )
    h, w = _pair(cfg.img_size)
    if h != w:
        raise ValueError(f"Hugging Face Timesformer needs square frames; img_size={h}x{w}")


def _atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
