"""Our own format, and the architecture of any state dict in our key names, read from shapes.

Our checkpoint is {"format": "timesformer", "version", "config", "model", **extra} (torch.save),
or a .safetensors file whose metadata holds {"format": "timesformer", "config": <json>}. The
official layout, bare state dicts and timm ViTs use our key names too, so their configs are
inferred here (`infer_video_config`, `image_shapes`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ..config import EXTRA_STEPS, TimeSformerConfig, _pair
from .common import ACCEPTED_FORMATS, EXTRA_STEP_MODULES, block_keys, strip, tensors

FORMAT_VERSION = 1
RESERVED_KEYS = ("format", "version", "config", "model")


def to_checkpoint(
    config: TimeSformerConfig, state: dict[str, Tensor], extra: Mapping[str, Any]
) -> dict[str, Any]:
    """The dict that `torch.save` writes: our header, config and weights, then `extra`."""
    reserved = set(RESERVED_KEYS) & set(extra)
    if reserved:
        raise ValueError(f"save_checkpoint: extra keys {sorted(reserved)} are reserved")
    return {
        "format": "timesformer",
        "version": FORMAT_VERSION,
        "config": config.to_dict(),
        "model": state,
        **extra,
    }


def safetensors_metadata(config: TimeSformerConfig) -> dict[str, str]:
    """The metadata of our .safetensors files (strings only, as safetensors requires)."""
    return {
        "format": "timesformer",
        "version": str(FORMAT_VERSION),
        "config": json.dumps(config.to_dict()),
    }


def from_checkpoint(
    obj: Mapping[str, Any], source: str
) -> tuple[dict[str, Tensor], dict[str, Any], dict[str, Any]]:
    """Our checkpoint dict -> (state, config dict, extra entries such as training state)."""
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
    state = strip(tensors(obj["model"], source), ("module.", "_orig_mod."))
    extra = {k: v for k, v in obj.items() if k not in RESERVED_KEYS}
    return state, conf, extra


def from_safetensors(
    state: dict[str, Tensor], meta: Mapping[str, str], source: str
) -> tuple[dict[str, Tensor], dict[str, Any], dict[str, Any]]:
    """Tensors and metadata of our .safetensors file -> (state, config dict, extra: the
    "preprocess" JSON when the metadata has one)."""
    try:
        conf_dict = json.loads(meta["config"])
    except (KeyError, json.JSONDecodeError) as e:
        raise ValueError(f"{source}: timesformer safetensors metadata has no valid 'config'") from e
    obj = {"format": "timesformer", "config": conf_dict, "model": state}
    if meta.get("preprocess"):  # the preprocessing contract, JSON (read by models.preprocess)
        obj["preprocess"] = meta["preprocess"]
    return from_checkpoint(obj, source)


# ------------------------------------------------------------------ config from tensor shapes


def _block_modules(state: Mapping[str, Tensor]) -> set[str]:
    return {k.split(".")[2] for k in block_keys(state)}


def has_video_keys(state: Mapping[str, Tensor]) -> bool:
    """A video model's state dict (time embedding or extra attention steps), not an image ViT."""
    return "time_embed" in state or bool(_block_modules(state) & EXTRA_STEP_MODULES)


def _schemes_with_extra_steps(state: Mapping[str, Tensor]) -> tuple[str, ...]:
    """(The scheme,) whose extra-step modules (`config.EXTRA_STEPS`) the blocks hold, if any.

    Of the schemes whose steps the keys show, the one matching most of its steps wins (axial
    holds divided's temporal step too); ties go to the table's order.
    """
    present = _block_modules(state)
    best, best_score = None, (0, 0)
    for scheme, steps in EXTRA_STEPS.items():
        names = {n for step in steps for n in step}
        hit = len(names & present)
        score = (hit, -len(names - present))
        if hit and score > best_score:
            best, best_score = scheme, score
    return (best,) if best else ()


def infer_video_config(
    state: Mapping[str, Tensor], hint: Mapping[str, Any], source: str, official: bool
) -> tuple[dict[str, Any], set[str], tuple[str, ...]]:
    """The architecture of a video state dict in our key names, read from its shapes.

    Returns (config fields, the fields that are only guesses, the attention types the keys
    allow). `hint` (e.g. from the official cfg) settles what shapes cannot: the attention type
    when no extra-step keys exist, the frame count of space-only models, a non-square grid.
    Heads are not visible in shapes: 64 per head is assumed (ViT convention) unless given.
    """
    conf: dict[str, Any] = image_shapes(state, source, hint.get("img_size"))
    assumed = {"num_heads", "layer_norm_eps", "drop_path_rate"}
    choices = _schemes_with_extra_steps(state)
    if not choices and "time_embed" in state:
        # the official space-only model of some releases keeps an unused time_embed
        choices = ("joint_space_time", "space_only") if official else ("joint_space_time",)
    elif not choices:
        choices = ("space_only",) if official else ("space_only", "joint_space_time")
    attention = hint.get("attention_type")
    if attention not in choices:
        attention = choices[0]
        if len(choices) > 1:
            assumed.add("attention_type")
    conf["attention_type"] = attention
    if "time_embed" in state:
        conf["num_frames"] = int(state["time_embed"].shape[1])  # (1, T, D)
    else:
        conf["num_frames"] = int(hint.get("num_frames", 8))
        if "num_frames" not in hint:
            assumed.add("num_frames")
    conf["pos_embed"] = pos_embed_type(state, attention)
    conf["num_classes"] = int(state["head.weight"].shape[0]) if "head.weight" in state else 0
    return conf, assumed, choices


# widths whose head count every known release takes as 64 channels per head (ViT-Ti/S/B/L)
_STANDARD_WIDTHS = (192, 384, 768, 1024)


def warn_guessed_heads(source: str, conf: Mapping[str, Any]) -> None:
    """Warn that a checkpoint of an unusual width stores no head count (it is not visible in
    the weights' shapes, and another count gives another model with the same weights)."""
    if conf.get("embed_dim") in _STANDARD_WIDTHS:
        return
    import warnings

    warnings.warn(
        f"{source} does not store its head count: assumed num_heads={conf.get('num_heads')} "
        f"(64 channels per head) for width {conf.get('embed_dim')}; if it was trained with "
        "another, pass num_heads=N (or convert it once: timesformer convert SRC DST "
        "--num-heads N)",
        stacklevel=4,
    )


def pos_embed_type(state: Mapping[str, Tensor], attention: str) -> str:
    """pos_embed setting implied by which embeddings a video state dict holds."""
    if "pos_embed" not in state:
        return "none"
    if "time_embed" in state or attention == "space_only":
        return "space_time"
    return "space"


def image_shapes(state: Mapping[str, Tensor], source: str, img_size: Any = None) -> dict[str, Any]:
    """embed_dim, patch_size, in_chans, depth, mlp_ratio, qkv_bias, num_heads (D/64), img_size."""
    if "patch_embed.proj.weight" not in state or not block_keys(state):
        raise ValueError(
            f"{source}: no patch_embed.proj.weight or blocks.* weights: not a ViT/TimeSformer "
            f"checkpoint. Accepted formats: {ACCEPTED_FORMATS}"
        )
    w = state["patch_embed.proj.weight"]  # (D, C, P, P)
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise ValueError(
            f"{source}: patch_embed.proj.weight has shape {tuple(w.shape)}; expected a square "
            "Conv2d kernel (D, C, P, P)"
        )
    D, C, P = int(w.shape[0]), int(w.shape[1]), int(w.shape[2])
    depth = 1 + max(int(k.split(".")[1]) for k in block_keys(state))
    fc1 = state.get("blocks.0.mlp.fc1.weight")  # (hidden, D)
    conf: dict[str, Any] = {
        "embed_dim": D,
        "patch_size": P,
        "in_chans": C,
        "depth": depth,
        "mlp_ratio": fc1.shape[0] / D if fc1 is not None else 4.0,
        "qkv_bias": "blocks.0.attn.qkv.bias" in state,
        "num_heads": D // 64 if D % 64 == 0 else 1,
    }
    pos = state.get("pos_embed")  # (1, 1+N, D)
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


def check_stated_config(state: Mapping[str, Tensor], conf: Mapping[str, Any], source: str) -> None:
    """Refuse a stated architecture (our config, a config.json) that the file's own weights
    contradict, before any model is built from it: a config edited to embed_dim=16384 or
    img_size=100000 would otherwise allocate the model it describes (gigabytes) first."""
    keys = block_keys(state)
    if "patch_embed.proj.weight" not in state or not keys:
        return  # nothing to compare: the strict load names what is missing
    try:
        blocks = {int(k.split(".")[1]) for k in keys}
    except ValueError:
        raise ValueError(f"{source}: block weights are not numbered (blocks.<i>.*)") from None
    if blocks != set(range(len(blocks))):
        raise ValueError(
            f"{source}: the block weights are numbered {min(blocks)}..{max(blocks)} with gaps "
            f"({len(blocks)} blocks found); expected blocks 0..{len(blocks) - 1}"
        )
    found = image_shapes(state, source, conf.get("img_size"))
    D = found["embed_dim"]
    pairs: list[tuple[str, Any, Any, str]] = [
        ("embed_dim", conf.get("embed_dim", D), D, "patch_embed.proj.weight"),
        ("patch_size", conf.get("patch_size", found["patch_size"]), found["patch_size"],
         "patch_embed.proj.weight"),
        ("in_chans", conf.get("in_chans", found["in_chans"]), found["in_chans"],
         "patch_embed.proj.weight"),
        ("depth", conf.get("depth", found["depth"]), found["depth"], "blocks.*"),
    ]  # fmt: skip
    fc1 = state.get("blocks.0.mlp.fc1.weight")  # (hidden, D)
    # the ratio compares by the hidden width it gives (3.99 and 4.0 both give 3072 for 768)
    if (
        fc1 is not None
        and "mlp_ratio" in conf
        and int(D * float(conf["mlp_ratio"])) != fc1.shape[0]
    ):
        pairs.append(("mlp_ratio", conf["mlp_ratio"], fc1.shape[0] / D, "blocks.0.mlp.fc1.weight"))
    if "pos_embed" in state and "img_size" in conf:
        P = found["patch_size"]
        grid = tuple(s // P for s in _pair(conf["img_size"]))
        if grid != tuple(s // P for s in _pair(found["img_size"])):
            pairs.append(("img_size", conf["img_size"], found["img_size"], "pos_embed"))
    te = state.get("time_embed")
    if te is not None and te.ndim == 3 and "num_frames" in conf:
        pairs.append(("num_frames", conf["num_frames"], int(te.shape[1]), "time_embed"))
    if "num_classes" in conf:
        head = state.get("head.weight")
        pairs.append(("num_classes", conf["num_classes"],
                      0 if head is None else int(head.shape[0]), "head.weight"))  # fmt: skip
    for name, stated, real, where in pairs:
        if stated != real:
            raise ValueError(
                f"{source}: its config says {name}={stated!r} but its weights have "
                f"{name}={real!r} ({where}): the file is damaged or its config was edited; "
                "expected a config that describes its own weights"
            )
