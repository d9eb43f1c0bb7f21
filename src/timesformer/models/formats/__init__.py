"""Checkpoint formats as pure filters: state dict in, state dict out, plus config inference.

One module per format: `native` (ours, and configs from shapes of our key names), `official`
(facebookresearch/TimeSformer .pyth), `hf` (Hugging Face Timesformer), `vit` (timm and Hugging
Face ViT image weights, and the ImageNet inflation). Files are read and written by
`models.checkpoint_io`; `models.weights` puts it together.
"""

from .common import ACCEPTED_FORMATS
from .vit import image_state_to_video

__all__ = ["ACCEPTED_FORMATS", "image_state_to_video"]
