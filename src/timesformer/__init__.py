"""timesformer: TimeSformer video transformers (Bertasius et al., ICML 2021) in PyTorch.

Public API::

    timesformer.list_models()
    timesformer.create_model(name, pretrained=None, **overrides)
    timesformer.from_pretrained(path, **overrides)
    timesformer.count_flops(model, num_frames=..., img_size=...)
"""

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

__version__ = "0.1.0"

__all__ = [
    "AttentionStep",
    "TimeSformer",
    "TimeSformerConfig",
    "__version__",
    "count_flops",
    "create_model",
    "list_models",
]
__all__ += ["Prediction", "load_for_inference", "predict"]
__all__ += ["from_pretrained", "save_checkpoint"]
__all__ += ["explain"]
