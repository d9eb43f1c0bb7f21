"""Run configuration: dataclasses with defaults, YAML recipes and `key=value` overrides.

A run is described by one `RunConfig` with four sections and an output directory::

    model:  which network (a preset plus overrides) and how to initialise it
    data:   lists, decoding, sampling, augmentation and normalisation
    optim:  optimizer, schedule, clipping
    train:  epochs, batches, mixed precision, seeds, cadence of evaluation and checkpoints
    output_dir: where everything the run writes lands

`load_config("configs/k400.yaml", ["optim.lr=0.01"])` reads a recipe (a path, or the name of a
bundled recipe such as "k400"), applies dotted overrides and validates every key and value; an
unknown key or a bad value is a ValueError that names it and suggests the closest valid key.
`resolve` fills the keys left to follow others (data.num_frames from the model, ...), and
`save_config` writes the resolved config into the run directory as config.yaml.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml


class ConfigError(ValueError):
    """A config file or override that is not valid: the same on every rank of a job."""


# ------------------------------------------------------------------------------------ sections


@dataclass
class ModelSection:
    """The network: a preset (`timesformer list_models()`) plus overrides.

    Keys left at None keep the preset's value. `pretrained` takes any file or directory that
    `timesformer.from_pretrained` accepts; a head of another size is re-initialised (and said so).
    `allow_pickle: true` lets `pretrained` be a torch file that only full unpickling reads: that
    runs code from the file, so only for files you trust (`train --allow-pickle` sets it).
    """

    name: str = "timesformer_base"
    num_classes: int | None = None
    num_frames: int | None = None
    img_size: int | None = None
    attention_type: str | None = None
    pos_embed: str | None = None
    drop_path_rate: float | None = None
    pretrained: str | None = None
    allow_pickle: bool = False
    grad_checkpointing: bool = False
    # how training computes (results equal to float rounding; TimeSformer.set_training_options):
    # "auto" = the explicit batched-matmul attention for short sequences on the CPU, else SDPA
    train_attention_kernel: Literal["auto", "sdpa", "explicit", "joined"] = "auto"
    train_packed_linears: bool = True  # CPU fp32: linears on oneDNN-packed weights
    # architecture overrides (small models for CPU runs and the demo)
    patch_size: int | None = None
    embed_dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    mlp_ratio: float | None = None
    zero_init_temporal_fc: bool | None = None
    # None: the official zero init of time_embed. A std > 0 starts it from a truncated normal
    # instead (from scratch only): frames then differ from the first step, which shortens the
    # plateau a small model from scratch sits on before it uses time (docs/training.md).
    time_embed_init_std: float | None = None


@dataclass
class DataSection:
    """Where the videos are and how clips are cut from them.

    Lists are text files of `path label` lines (paths relative to `root`), or a folder of
    class sub-folders. `sampler` "rate" takes `num_frames` frames `sampling_rate` apart;
    "segments" takes one frame per equal segment (SSv2). `train_jitter` is the random short-side
    range before the random `crop_size` crop; test views are `temporal x spatial`, e.g. "1x3".
    """

    train_list: str | None = None
    val_list: str | None = None
    test_list: str | None = None
    root: str | None = None
    labels: str | None = None
    num_frames: int | None = None  # None: the model's num_frames
    sampling_rate: int = 32
    sampler: Literal["rate", "segments"] = "rate"
    target_fps: float | None = 30.0  # frame indices count at this rate (None: native rate)
    train_jitter: list[int] = field(default_factory=lambda: [256, 320])
    crop_size: int | None = None  # None: the model's img_size
    flip: bool = True
    mean: list[float] = field(default_factory=lambda: [0.45, 0.45, 0.45])
    std: list[float] = field(default_factory=lambda: [0.225, 0.225, 0.225])
    channel_order: Literal["rgb", "bgr"] = "rgb"
    num_workers: int = 4
    test_views: str = "1x3"
    test_protocol: Literal["official", "centred"] = "official"  # see docs/inference.md
    val_views: str = "1x1"  # views of the clip-level validation run during training
    list_separator: str | None = None  # list files: None/"auto" detects; "comma", "tab", "space"
    upright: bool = True  # turn frames by the display rotation (phone videos); False: as stored


@dataclass
class OptimSection:
    """Optimizer and learning-rate schedule (epochs may be fractional for warm-up)."""

    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.005
    momentum: float = 0.9
    nesterov: bool = True
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 1e-4
    no_decay_norm_bias_embed: bool = False  # no weight decay on norms, biases and embeddings
    schedule: Literal["steps", "cosine", "constant"] = "steps"
    steps: list[int] = field(default_factory=lambda: [11, 14])  # epochs where lr *= gamma
    gamma: float = 0.1
    min_lr: float = 0.0  # cosine floor
    warmup_epochs: float = 0.0
    warmup_start_factor: float = 0.01  # lr at step 0 = lr * this
    clip_grad: float | None = None  # max global gradient norm (None: no clipping)


@dataclass
class TrainSection:
    """The loop: epochs, per-device batch, global batch (accumulation), precision, cadence."""

    epochs: int = 15
    batch_size: int = 8  # clips per device per step
    global_batch_size: int | None = 64  # None: batch_size x world size (no accumulation)
    amp: Literal["off", "bf16", "fp16"] = "off"
    seed: int = 0
    eval_every: int = 1  # epochs between validations (0: never)
    save_every: int = 1  # epochs between `last` checkpoints
    log_every: int = 10  # optimizer steps between metrics.jsonl lines
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    label_smoothing: float = 0.0
    tensorboard: bool = False
    progress: bool = True  # tqdm progress bar
    max_steps_per_epoch: int | None = None  # cap for quick runs and tests
    resume: bool = True  # continue from output_dir/last.pt when it exists (false: start fresh)
    compile: bool = False  # torch.compile the training step (inductor; compiles at the first step)
    compile_mode: Literal[
        "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"
    ] = "default"


@dataclass
class RunConfig:
    """Everything a training or evaluation run reads."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    output_dir: str = "runs/default"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> RunConfig:
        return _build(cls, d, source, prefix="")


# ------------------------------------------------------------------------------- validation

# (lowest, highest) allowed value of each numeric key; None: no bound
_BOUNDS: list[tuple[tuple[float | None, float | None], tuple[str, ...]]] = [
    ((1, None), (
        *("model.num_classes", "model.num_frames", "model.img_size", "model.patch_size"),
        *("model.embed_dim", "model.depth", "model.num_heads"),
        *("data.num_frames", "data.sampling_rate", "data.crop_size"),
        *("train.epochs", "train.batch_size", "train.global_batch_size", "train.save_every"),
        *("train.log_every", "train.max_steps_per_epoch"),
    )),
    ((0, None), ("data.num_workers", "train.eval_every")),
    ((0.0, None), (
        *("model.time_embed_init_std", "optim.lr", "optim.weight_decay", "optim.gamma"),
        *("optim.min_lr", "optim.warmup_epochs", "optim.clip_grad"),
    )),
    ((0.0, 0.999), ("model.drop_path_rate", "train.label_smoothing")),
    ((0.0, 1.0), ("optim.momentum", "optim.warmup_start_factor")),
]  # fmt: skip
_RANGES = {key: bounds for bounds, keys in _BOUNDS for key in keys}


def _suggest(key: str, choices: list[str]) -> str:
    # the same last component first ("lr" or "train.lr" -> "optim.lr": a key in the wrong
    # section), then the closest spelling
    tail = key.rsplit(".", 1)[-1]
    close = [c for c in choices if c != key and c.rsplit(".", 1)[-1] == tail][:1]
    if not close:
        close = difflib.get_close_matches(key, choices, n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def valid_keys(cls: type = RunConfig, prefix: str = "") -> list[str]:
    """Every dotted key of `cls` ("model.name", "optim.lr", "output_dir", ...)."""
    out: list[str] = []
    for name, tp in _hints(cls).items():
        if _is_section(tp):
            out.extend(valid_keys(tp, f"{prefix}{name}."))
        else:
            out.append(prefix + name)
    return out


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or null"
    if origin is list:
        return f"a list of {_type_name(get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check `value` against the annotation `tp`; return it (ints widen to floats)."""
    origin = get_origin(tp)
    bad = ConfigError(f"{source}: {key}={value!r} is not valid; expected {_type_name(tp)}.")
    if isinstance(value, float) and not math.isfinite(value):  # YAML's .inf / .nan
        raise ConfigError(f"{source}: {key}={value!r} is not valid; expected a finite number.")
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key, source)
            except ValueError:
                pass
        raise bad
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(
                f"{source}: {key}={value!r} is not one of {', '.join(map(repr, choices))}."
                + _suggest(str(value), [str(c) for c in choices])
            )
        return value
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise bad
        (item,) = get_args(tp)
        return [_coerce(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise TypeError(f"unsupported config annotation {tp!r} for {key}")


def _build(cls: type, d: Any, source: str, prefix: str) -> Any:
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: section {prefix.rstrip('.') or '<top>'} must be a mapping")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if k not in hints:
            here = [prefix + n for n in hints]  # this section's keys first ("modle" -> "model")
            raise ConfigError(
                f"{source}: unknown key {key!r}." + _suggest(key, here + valid_keys())
            )
        tp = hints[k]
        if _is_section(tp):
            kwargs[k] = _build(tp, v, source, key + ".")
        else:
            v = _coerce(v, tp, key, source)
            _check_range(key, v, source)
            kwargs[k] = v
    obj = cls(**kwargs)
    if cls is RunConfig:
        _check_consistency(obj, source)
    return obj


def _check_range(key: str, v: Any, source: str) -> None:
    if key not in _RANGES or v is None:
        return
    lo, hi = _RANGES[key]
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        want = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"{source}: {key}={v!r} is out of range; expected {want}.")


def parse_views(spec: str, key: str = "test_views") -> tuple[int, int]:
    """ "KxS" -> (K temporal clips, S spatial crops), e.g. "1x3" -> (1, 3)."""
    parts = str(spec).lower().split("x")
    try:
        k, s = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(
            f"{key}={spec!r} is not 'KxS' (temporal x spatial views, e.g. '1x3')"
        ) from None
    if k < 1 or s < 1:
        raise ConfigError(f"{key}={spec!r}: both view counts must be >= 1")
    if s not in (1, 3):
        raise ConfigError(
            f"{key}={spec!r}: S (spatial crops) must be 1 (centre) or 3 (the two ends and the "
            "centre)"
        )
    return k, s


def _check_consistency(cfg: RunConfig, source: str) -> None:
    from ..models.config import ATTENTION_TYPES, POS_EMBED_TYPES, PRESETS

    m, d, o = cfg.model, cfg.data, cfg.optim
    if not str(cfg.output_dir).strip():
        raise ConfigError(
            f"{source}: output_dir is empty; name the folder the run writes to (e.g. runs/exp1)"
        )
    if m.name not in PRESETS:
        raise ConfigError(
            f"{source}: model.name={m.name!r} is not a preset ({', '.join(PRESETS)})."
            + _suggest(m.name, list(PRESETS))
        )
    if m.attention_type is not None and m.attention_type not in ATTENTION_TYPES:
        raise ConfigError(
            f"{source}: model.attention_type={m.attention_type!r} is not one of "
            f"{', '.join(ATTENTION_TYPES)}." + _suggest(m.attention_type, list(ATTENTION_TYPES))
        )
    if m.pos_embed is not None and m.pos_embed not in POS_EMBED_TYPES:
        raise ConfigError(
            f"{source}: model.pos_embed={m.pos_embed!r} is not one of "
            f"{', '.join(POS_EMBED_TYPES)}." + _suggest(m.pos_embed, list(POS_EMBED_TYPES))
        )
    if len(d.train_jitter) != 2 or d.train_jitter[0] > d.train_jitter[1]:
        raise ConfigError(
            f"{source}: data.train_jitter={d.train_jitter!r} must be [min, max] short sides"
        )
    for key in ("mean", "std"):
        v = getattr(d, key)
        if len(v) != 3:
            raise ConfigError(f"{source}: data.{key}={v!r} must hold 3 values (one per channel)")
    if any(s <= 0 for s in d.std):
        raise ConfigError(f"{source}: data.std={d.std!r} must be positive")
    parse_views(d.test_views, "data.test_views")
    parse_views(d.val_views, "data.val_views")
    if len(o.betas) != 2:
        raise ConfigError(f"{source}: optim.betas={o.betas!r} must be [beta1, beta2]")
    if sorted(o.steps) != list(o.steps):
        raise ConfigError(f"{source}: optim.steps={o.steps!r} must be increasing epochs")
    t = cfg.train
    if t.global_batch_size is not None and t.global_batch_size % t.batch_size:
        raise ConfigError(
            f"{source}: train.global_batch_size={t.global_batch_size} is not a multiple of "
            f"train.batch_size={t.batch_size}"
        )


# ---------------------------------------------------------------------------------- YAML


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with two changes for config files and overrides: numbers in
    exponent form without a dot ("1e-3", YAML 1.2's float) read as floats, not strings, and a
    key given twice in one mapping is an error instead of the last one silently winning."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    mark = key_node.start_mark
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice", mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(text: str) -> Any:
    """Parse config YAML with `ConfigLoader` (safe: no Python tags)."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 (a SafeLoader subclass)


# ---------------------------------------------------------------------------------- overrides


def parse_value(text: str) -> Any:
    """A command-line value as YAML reads it: 0.01 -> float, true -> bool, [1,2] -> list,
    null -> None, anything else a string."""
    try:
        return read_yaml(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def apply_overrides(d: dict[str, Any], overrides: list[str], source: str = "override") -> None:
    """Apply `key=value` strings (dotted keys) to the nested dict `d` in place."""
    keys = valid_keys()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(
                f"{source}: {item!r} is not key=value (e.g. optim.lr=0.01)." + _suggest(item, keys)
            )
        key, text = item.split("=", 1)
        key = key.strip()
        if key not in keys:
            raise ConfigError(f"{source}: unknown key {key!r}." + _suggest(key, keys))
        value = parse_value(text)
        # values typed as str stay strings even when YAML reads them as numbers (e.g. "1x3")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            tp = _field_type(key)
            if tp is str or (get_origin(tp) in (Union, types.UnionType) and str in get_args(tp)):
                value = text
        node = d
        parts = key.split(".")
        for p in parts[:-1]:
            if node.get(p) is None:
                node[p] = {}
            node = node[p]
            if not isinstance(node, dict):
                raise ConfigError(f"{source}: {p} is not a section")
        node[parts[-1]] = value


def _field_type(key: str) -> Any:
    cls: Any = RunConfig
    for p in key.split("."):
        tp = _hints(cls)[p]
        cls = tp
    return cls


# ------------------------------------------------------------------------------------ recipes


def recipes_dir() -> Path:
    """The folder of bundled YAML recipes (package data; configs/ at the repo root mirrors it)."""
    return Path(__file__).resolve().parent.parent / "configs"


def list_recipes() -> list[str]:
    """Names of the bundled recipes ("k400", "ssv2", "demo", ...)."""
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def find_config(spec: str | Path) -> Path:
    """A config path, or the name of a bundled recipe ("k400" or "k400.yaml"). A bare name
    (the string "k400") is the recipe even beside a folder "k400"; "./k400" is the folder."""
    p = Path(spec)
    name = p.name[:-5] if p.name.endswith(".yaml") else p.name
    bundled = recipes_dir() / f"{name}.yaml"
    if p.is_file():
        return p
    if p.is_dir() and not (isinstance(spec, str) and spec == name and bundled.is_file()):
        raise FileNotFoundError(f"config {str(spec)!r} is a folder; expected a YAML file")
    if (p.parent == Path(".") or str(p.parent) == "configs") and bundled.is_file():
        return bundled
    raise FileNotFoundError(
        f"config {str(spec)!r} not found (neither a file nor a bundled recipe: "
        f"{', '.join(list_recipes())})." + _suggest(name, list_recipes())
    )


def load_config(spec: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML recipe (path or bundled name; None: all defaults), apply `key=value`
    overrides, validate and return the RunConfig (not yet resolved)."""
    raw: dict[str, Any] = {}
    source = "config"
    if spec is not None:
        path = find_config(spec)
        source = str(path)
        try:
            raw = read_yaml(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {yaml_error_text(e)}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a text file; expected a YAML config") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
    # validate the file alone first, so that its errors name the file
    RunConfig.from_dict(raw, source)
    if overrides:
        apply_overrides(raw, list(overrides))
        return RunConfig.from_dict(raw, "override")
    return RunConfig.from_dict(raw, source)


def yaml_error_text(e: Exception) -> str:
    """`line N, column M: problem` of a YAML syntax error (its problem_mark), on one line."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return problem


def resolve(cfg: RunConfig) -> RunConfig:
    """A copy with the keys that follow others filled in from the model preset: model
    geometry (num_classes, num_frames, img_size, ...) and data.num_frames / data.crop_size."""
    from ..models.config import get_config

    cfg = RunConfig.from_dict(cfg.to_dict())
    m = cfg.model
    try:
        preset = get_config(m.name, **model_overrides(m))
    except ValueError as e:  # the model's words ("img_size=30 ...") with the config's keys
        raise ConfigError(_MODEL_KEY_RE.sub(r"model.\1=", str(e))) from None
    for k in _MODEL_KEYS:
        if k == "img_size":
            continue  # resolved below from the preset's grid
        if getattr(m, k) is None:
            setattr(m, k, getattr(preset, k))
    if m.img_size is None:
        h, w = preset.grid_size
        if h != w:
            raise ConfigError(f"model {m.name}: non-square img_size is not supported by training")
        m.img_size = h * preset.patch_size
    if cfg.data.num_frames is None:
        cfg.data.num_frames = m.num_frames
    if cfg.data.crop_size is None:
        cfg.data.crop_size = m.img_size
    lo = cfg.data.train_jitter[0]
    if lo < cfg.data.crop_size:
        raise ConfigError(
            f"data.train_jitter={cfg.data.train_jitter!r}: the shortest side {lo} is smaller "
            f"than the crop (data.crop_size / model.img_size = {cfg.data.crop_size}); raise "
            "data.train_jitter or lower data.crop_size"
        )
    return cfg


# the ModelSection keys that are TimeSformerConfig fields (create_model overrides)
_MODEL_KEYS = (
    *("num_classes", "num_frames", "img_size", "attention_type", "pos_embed"),
    *("drop_path_rate", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio"),
    "zero_init_temporal_fc",
)


_MODEL_KEY_RE = re.compile(r"(?<![.\w])(" + "|".join(_MODEL_KEYS) + r")=")


def model_overrides(m: ModelSection) -> dict[str, Any]:
    """The model keys that are set (not None), as `create_model` overrides."""
    return {k: getattr(m, k) for k in _MODEL_KEYS if getattr(m, k) is not None}


def save_config(cfg: RunConfig, path: str | Path) -> Path:
    """Write `cfg` as YAML (the run directory's config.yaml), headed by a comment naming the
    folder its relative paths are relative to (the one training ran in)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    here = str(Path.cwd()).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    head = f"# relative paths below are relative to {here} (where this run started)\n"
    path.write_text(head + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return path


def config_from_yaml_text(text: str, source: str = "config") -> RunConfig:
    """Parse a YAML string into a validated RunConfig (used for configs stored in checkpoints)."""
    return RunConfig.from_dict(read_yaml(text) or {}, source)
