"""Benchmark cases and the models they run: ours, Hugging Face's, and ours without the fast path.

A `Case` is a model geometry, a dtype and a mode (inference or training step); `make_runner`
builds one implementation of it with random weights and a random clip, ready to step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import Tensor, nn

from ...engine.runtime import autocast
from ...models.config import TimeSformerConfig, _pair, get_config
from ...models.kernels import check_kernel
from ...models.timesformer import TimeSformer

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}
HF_ATTENTION_TYPES = ("divided_space_time", "joint_space_time", "space_only")
# ours; Hugging Face transformers; ours with the inference fast path off (the model before the
# speed work: the A/B baseline of docs/performance.md)
IMPLS = ("ours", "hf", "baseline")


# ---------------------------------------------------------------------------------------------
# Cases


@dataclass
class Case:
    """One benchmark case: a model geometry, a dtype and a mode (inference or training step)."""

    model: str = "timesformer_base"
    attention_type: str | None = None  # None: the preset's
    frames: int | None = None  # None: the preset's
    img_size: int | None = None  # None: the preset's
    batch_size: int = 1
    dtype: str = "fp32"
    compile: bool = False
    train: bool = False
    grad_checkpointing: bool = False
    device: str = "cpu"
    # bf16: cast the weights and the clip once (model.to(bfloat16)) instead of autocast
    cast_weights: bool = False
    optimizer: bool = False  # training step: also an AdamW step (foreach; fused where asked)
    attention_kernel: str = "auto"  # ours, inference: one of kernels.KERNELS
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {self.batch_size}")
        if self.cast_weights and self.dtype == "fp32":
            raise ValueError("cast_weights needs dtype bf16 (fp32 weights are already fp32)")
        check_kernel(self.attention_kernel)
        self.config()  # validates model name, attention type and overrides

    def config(self) -> TimeSformerConfig:
        """The model configuration of this case (preset + geometry + overrides)."""
        over = dict(self.overrides)
        if self.attention_type:
            over["attention_type"] = self.attention_type
        if self.frames:
            over["num_frames"] = self.frames
        if self.img_size:
            over["img_size"] = self.img_size
        return get_config(self.model, **over)

    @property
    def label(self) -> str:
        cfg = self.config()
        h, w = _pair(cfg.img_size)
        size = f"{h}" if h == w else f"{h}x{w}"
        parts = [
            self.model.removeprefix("timesformer_"),
            _SHORT[cfg.attention_type],
            f"{cfg.num_frames}x{size}",
            f"b{self.batch_size}",
            self.dtype + ("-weights" if self.cast_weights else ""),
        ]
        if self.attention_kernel != "auto":
            parts.append(f"attn={self.attention_kernel}")
        if self.compile:
            parts.append("compile")
        if self.train:
            parts.append("train+ckpt" if self.grad_checkpointing else "train")
            if self.optimizer:
                parts.append("+adamw")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Case:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


_SHORT = {
    "divided_space_time": "divided",
    "joint_space_time": "joint",
    "space_only": "space",
    "sparse_local_global": "local-global",
    "axial": "axial",
}


def build_hf_model(cfg: TimeSformerConfig) -> nn.Module:
    """Hugging Face `TimesformerForVideoClassification` with the geometry of `cfg`, random weights.

    Its input layout is (B, T, C, H, W); its divided layers read frames and size from its config.
    """
    try:
        from transformers import TimesformerConfig, TimesformerForVideoClassification
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "--compare hf needs Hugging Face transformers: pip install 'transformers>=4.40'"
        ) from e
    from ...models.formats.hf import hf_config_dict

    # the same config.json our Hugging Face export writes (checks scheme and square frames)
    fields = hf_config_dict(cfg.replace(labels=None, num_classes=max(cfg.num_classes, 1)))
    fields.pop("timesformer_drop_path_rate", None)
    hcfg = TimesformerConfig(**fields)
    # transformers 5.x types drop_path_rate as int and rejects 0.1: set it past the validator
    object.__setattr__(hcfg, "drop_path_rate", float(cfg.drop_path_rate))
    return TimesformerForVideoClassification(hcfg)


@dataclass
class Runner:
    """A built model and a zero-argument `step` running one forward (or training) step."""

    impl: str
    model: nn.Module
    step: Callable[[], Tensor]
    params: int
    device: torch.device


def make_runner(case: Case, impl: str, seed: int = 0) -> Runner:
    """Build `impl` (see IMPLS) for `case` with random weights and a random input clip."""
    if impl not in IMPLS:
        raise ValueError(f"unknown implementation {impl!r}; expected one of {IMPLS}")
    device = torch.device(case.device)
    cfg = case.config()
    torch.manual_seed(seed)
    if impl in ("ours", "baseline"):
        model: nn.Module = TimeSformer(cfg)
        if case.grad_checkpointing:
            model.set_grad_checkpointing(True)
        if impl == "baseline":
            model.set_inference_options(fast=False)
        elif case.attention_kernel != "auto":
            model.set_inference_options(attention_kernel=case.attention_kernel)
    else:
        model = build_hf_model(cfg)
        if case.grad_checkpointing:
            enable = getattr(model, "activation_checkpointing_enable", None)
            (enable or model.gradient_checkpointing_enable)()
    model.to(device).train(case.train)
    h, w = _pair(cfg.img_size)
    x = torch.randn(case.batch_size, cfg.in_chans, cfg.num_frames, h, w, device=device)
    if impl == "hf":
        x = x.transpose(1, 2).contiguous()  # (B, T, C, H, W)
    amp: str | None = case.dtype
    if case.cast_weights:  # weights and clip in bf16 once, no autocast re-casting every call
        model.to(DTYPES[case.dtype])
        x = x.to(DTYPES[case.dtype])
        amp = None
    fn: Any = model
    if case.compile:  # inference: weights frozen into the graph (constant-folded, pre-packed)
        fn = torch.compile(model, options=None if case.train else {"freezing": True})
    params = sum(p.numel() for p in model.parameters())
    opt = make_optimizer(model, device) if case.train and case.optimizer else None

    def forward() -> Tensor:
        with autocast(device, amp):
            return fn(pixel_values=x).logits if impl == "hf" else fn(x)

    def infer() -> Tensor:
        with torch.no_grad():
            return forward()

    def train_step() -> Tensor:
        # keep the gradient buffers between steps, so that a step's memory growth is activations
        model.zero_grad(set_to_none=False)
        logits = forward()
        loss = logits.float().logsumexp(-1).mean()  # any scalar of the logits
        loss.backward()
        if opt is not None:
            opt.step()
        return logits.detach()

    return Runner(impl, model, train_step if case.train else infer, params, device)


def make_optimizer(model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """The benchmark's AdamW, the same for every implementation: the fused kernel where this
    torch has it for the device (CPU and CUDA in torch >= 2.4), else the foreach one."""
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return torch.optim.AdamW(params, lr=1e-4, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch or an unsupported device
        return torch.optim.AdamW(params, lr=1e-4, foreach=True)
