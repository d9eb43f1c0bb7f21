"""Optimisation: parameter groups (no weight decay on norms, biases, embeddings), the
optimizer (SGD or AdamW) and the learning-rate schedule per optimizer step."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..models.factory import unwrap_model
from .config import OptimSection


def param_groups(
    model: nn.Module, weight_decay: float, no_decay_norm_bias_embed: bool
) -> list[dict[str, Any]]:
    """Parameter groups; with `no_decay_norm_bias_embed`, norms, biases and embeddings (the
    model's `no_weight_decay()` names and every 1-D tensor) get no weight decay."""
    if not no_decay_norm_bias_embed:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    skip = set(getattr(unwrap_model(model), "no_weight_decay", lambda: set())())
    decay, no_decay = [], []
    for name, p in unwrap_model(model).named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name in skip or name.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: OptimSection) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov) or AdamW over `param_groups`."""
    groups = param_groups(model, cfg.weight_decay, cfg.no_decay_norm_bias_embed)
    if cfg.name == "sgd":
        return torch.optim.SGD(
            groups,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
    kw = dict(lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    try:  # the fused kernel: one pass per tensor (CPU: about 4-9x faster than the loop here)
        return torch.optim.AdamW(groups, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):  # a device or dtype it does not support
        return torch.optim.AdamW(groups, **kw)


class LRSchedule:
    """Learning rate per optimizer step: linear warm-up, then step decay or cosine.

    Epochs may be fractional: at optimizer step s the position is e = s / steps_per_epoch.
    Warm-up rises linearly from `lr * warmup_start_factor` to `lr` over `warmup_epochs`;
    "steps" multiplies by `gamma` at each epoch in `steps` (e >= milestone); "cosine" falls
    from `lr` to `min_lr` between the end of warm-up and the last epoch; "constant" stays.
    Every param group keeps its own base lr in `initial_lr`.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        cfg: OptimSection,
        epochs: int,
        steps_per_epoch: int,
    ) -> None:
        self.optimizer = optimizer
        self.cfg = cfg
        self.epochs = epochs
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.last_step = 0
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.set_step(0)

    def factor(self, step: int) -> float:
        """Multiplier of the base lr at optimizer step `step` (0-based)."""
        c = self.cfg
        e = step / self.steps_per_epoch
        if c.warmup_epochs > 0 and e < c.warmup_epochs:
            f0 = c.warmup_start_factor
            return f0 + (1.0 - f0) * e / c.warmup_epochs
        if c.schedule == "steps":
            return c.gamma ** sum(e >= m for m in c.steps)
        if c.schedule == "cosine":
            span = max(self.epochs - c.warmup_epochs, 1e-8)
            p = min(max((e - c.warmup_epochs) / span, 0.0), 1.0)
            floor = c.min_lr / c.lr if c.lr > 0 else 0.0
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * p))
        return 1.0

    def set_step(self, step: int) -> None:
        """Set every group's lr for optimizer step `step`."""
        self.last_step = step
        f = self.factor(step)
        for g in self.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * f

    def step(self) -> None:
        """Advance one optimizer step."""
        self.set_step(self.last_step + 1)

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"last_step": self.last_step, "steps_per_epoch": self.steps_per_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.set_step(int(state["last_step"]))
