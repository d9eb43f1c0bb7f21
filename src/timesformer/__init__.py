"""timesformer: TimeSformer video transformers (Bertasius et al., ICML 2021) in PyTorch.

Public API::

    timesformer.list_models()
    timesformer.create_model(name, pretrained=None, **overrides)
    timesformer.from_pretrained(path, **overrides)        # official, HF (folder or Hub id), ViT, ours
    timesformer.save_checkpoint(model, path)
    timesformer.count_flops(model, num_frames=..., img_size=...)
    timesformer.predict(model, video_path, views="1x3", long=False)
    timesformer.load_for_inference(checkpoint) -> (model, model.preprocess with overrides)
    timesformer.extract(model, videos, mode="video"|"windows") -> [VideoFeatures]
    timesformer.explain(model, clip, method="rollout")
"""

from importlib import import_module as _import_module
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it, imported on first use (PEP 562), so that
# `import timesformer.cli` (the command line) does not pay for torch before it parses arguments
_LAZY = {
    "VideoFeatures": ".engine.extract",
    "extract": ".engine.extract",
    "Prediction": ".engine.predict",
    "load_for_inference": ".engine.predict",
    "predict": ".engine.predict",
    "AttentionStep": ".models",
    "TimeSformer": ".models",
    "TimeSformerConfig": ".models",
    "count_flops": ".models",
    "create_model": ".models",
    "list_models": ".models",
    "from_pretrained": ".models.weights",
    "save_checkpoint": ".models.weights",
    "explain": ".tools.explain",
}

if TYPE_CHECKING:
    from .engine.extract import VideoFeatures, extract
    from .engine.predict import Prediction, load_for_inference, predict
    from .models import (
        AttentionStep,
        TimeSformer,
        TimeSformerConfig,
        count_flops,
        create_model,
        list_models,
    )
    from .models.weights import from_pretrained, save_checkpoint
    from .tools.explain import explain


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'timesformer' has no attribute {name!r}")
    value = getattr(_import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


try:  # the installed distribution's version: one source of truth, pyproject.toml
    __version__ = _metadata.version("timesformer")
except _metadata.PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "AttentionStep",
    "Prediction",
    "TimeSformer",
    "TimeSformerConfig",
    "VideoFeatures",
    "__version__",
    "count_flops",
    "create_model",
    "explain",
    "extract",
    "from_pretrained",
    "list_models",
    "load_for_inference",
    "predict",
    "save_checkpoint",
]
