"""TimeSformer models: configuration, presets, the network and checkpoint loading."""

from .attention import AttentionStep
from .config import PRESETS, TimeSformerConfig, get_config, list_models
from .factory import count_flops, create_model
from .timesformer import (
    TimeSformer,
    head_missing,
    require_head,
    resample_pos_embed,
    resample_time_embed,
)
from .weights import (
    from_pretrained,
    load_into,
    read_checkpoint,
    save_checkpoint,
    save_hf,
    save_official,
    save_safetensors,
)

__all__ = [
    "PRESETS",
    "AttentionStep",
    "TimeSformer",
    "TimeSformerConfig",
    "count_flops",
    "create_model",
    "get_config",
    "head_missing",
    "list_models",
    "require_head",
    "resample_pos_embed",
    "resample_time_embed",
]
__all__ += [
    "from_pretrained",
    "load_into",
    "read_checkpoint",
    "save_checkpoint",
    "save_hf",
    "save_official",
    "save_safetensors",
]
