"""Verified exports: ONNX and `torch.export` programs that carry the preprocessing contract.

Both formats are traced from the eval-mode model under `torch.no_grad()` (the inference fast
path) with a dynamic batch axis, and verified right after writing: the exported artefact is
loaded back and run against the PyTorch model at batch 1 and 2 on seeded random clips; an
export whose largest logit difference exceeds `atol` (1e-4 in fp32) is refused and nothing is
left under the target name. The frame count and size are fixed (the position embeddings are
resampled outside the graph: export a model built for the geometry you serve).

The contract (mean, std, channel order, frames, rate, size, class names, test views, the
model config) goes into the ONNX model's `metadata_props` (keys in CONTRACT_KEYS) and into the
`.pt2` archive's extra files, so a runtime that knows nothing of this package can cut clips
the way the model was trained.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..files import atomic_write, check_output_file
from ..models.preprocess import Preprocess, preprocess_of

FORMATS = ("onnx", "exported-program")
CONTRACT_KEYS = ("timesformer.preprocess", "timesformer.config", "timesformer.class_names")
PT2_EXTRA = {"preprocess": "preprocess.json", "config": "config.json"}
MAX_BATCH = 1024


class ExportError(RuntimeError):
    """An export that failed or did not reproduce the PyTorch model."""


@dataclass
class ExportReport:
    """What was written and how closely it reproduces the PyTorch model."""

    path: str
    format: str
    input_shape: list[Any]  # ["batch", 3, T, H, W]
    max_abs_diff: dict[str, float] = field(default_factory=dict)  # batch -> max |logit diff|
    atol: float = 1e-4
    seconds: float = 0.0
    contract: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def contract_of(model: nn.Module) -> Preprocess:
    """The model's preprocessing contract (`model.preprocess`), else defaults for its geometry."""
    return preprocess_of(model)


def load_checkpoint(
    checkpoint: str | Path, device: str = "cpu", allow_pickle: bool = False
) -> tuple[nn.Module, Preprocess]:
    """A checkpoint of any supported format in eval mode, with its preprocessing contract.
    `allow_pickle=True`: see `engine.predict.load_for_inference` (runs code from the file)."""
    from ..engine.predict import load_for_inference

    return load_for_inference(checkpoint, device=device, allow_pickle=allow_pickle)


def _example(model: nn.Module, batch: int, seed: int = 0) -> torch.Tensor:
    cfg = model.config
    h, w = (cfg.img_size, cfg.img_size) if isinstance(cfg.img_size, int) else cfg.img_size
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, cfg.in_chans, cfg.num_frames, h, w, generator=g)  # (B, 3, T, H, W)


def _contract_props(model: nn.Module, pre: Preprocess) -> dict[str, str]:
    names = (
        list(pre.class_names)
        if pre.class_names
        else list(getattr(model.config, "labels", None) or [])
    )
    return {
        "timesformer.preprocess": pre.to_json(),
        "timesformer.config": json.dumps(model.config.to_dict(), sort_keys=True, default=str),
        "timesformer.class_names": json.dumps(names),
    }


def export_model(
    model: nn.Module,
    out: str | Path,
    fmt: str = "onnx",
    *,
    preprocess: Preprocess | None = None,
    atol: float = 1e-4,
    verify: bool = True,
) -> ExportReport:
    """Export `model` to `out` as "onnx" or "exported-program" (.pt2) and verify it.

    Raises ExportError (one line) when tracing fails or the export does not match within atol.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} is not one of {', '.join(FORMATS)}")
    out = check_output_file(out, what="export")
    model = model.float().eval()
    pre = preprocess or contract_of(model)
    t0 = time.perf_counter()
    writer = _write_onnx if fmt == "onnx" else _write_program
    diffs: dict[str, float] = {}

    def write_and_check(tmp: Path) -> None:
        writer(model, tmp, _contract_props(model, pre))
        if verify:
            diffs.update(verify_export(model, tmp, fmt, atol=atol))

    # programs are saved to, and read from, open files: torch.export's own name check (it warns
    # on names not ending in .pt2) never sees the temporary name
    atomic_write(out, write_and_check)
    cfg = model.config
    h, w = (cfg.img_size, cfg.img_size) if isinstance(cfg.img_size, int) else cfg.img_size
    return ExportReport(
        path=str(out),
        format=fmt,
        input_shape=["batch", cfg.in_chans, cfg.num_frames, h, w],
        max_abs_diff=diffs,
        atol=atol,
        seconds=time.perf_counter() - t0,
        contract=pre.to_dict(),
    )


def _dynamic_batch() -> dict[str, Any]:
    return {"x": {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}}


@contextlib.contextmanager
def _traceable(model: nn.Module) -> Iterator[None]:
    """The reference path: the eval fast path's chunking and in-place steps specialise the
    batch size in the graph. The blocks' own settings are restored afterwards."""
    saved = [(b.fast_inference, b.inference_chunk_tokens) for b in model.blocks]
    model.set_inference_options(fast=False, chunk_tokens=None)
    try:
        with torch.no_grad():
            yield
    finally:
        for b, (fast, chunk) in zip(model.blocks, saved):
            b.fast_inference, b.inference_chunk_tokens = fast, chunk


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporters' own noise that says nothing about the user's model: the ONNX
    registry's "torchvision is not installed" lines and torch's internal LeafSpec deprecation."""
    import logging

    log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        log.setLevel(level)


def _export_program(model: nn.Module) -> Any:
    try:
        with _traceable(model), _quiet_exporter():
            return torch.export.export(
                model, (_example(model, 2),), dynamic_shapes=_dynamic_batch()
            )
    except Exception as e:  # torch raises many types; the user needs one line
        raise ExportError(f"torch.export could not trace the model: {_first_line(e)}") from e


def _write_program(model: nn.Module, path: Path, props: dict[str, str]) -> None:
    ep = _export_program(model)
    extra = {
        PT2_EXTRA["preprocess"]: props["timesformer.preprocess"],
        PT2_EXTRA["config"]: props["timesformer.config"],
        "class_names.json": props["timesformer.class_names"],
    }
    with open(path, "wb") as f:  # a file object: the archive's folder is not the temp name
        torch.export.save(ep, f, extra_files=extra)


def _write_onnx(model: nn.Module, path: Path, props: dict[str, str]) -> None:
    onnx = _need("onnx")
    _need("onnxscript")
    try:
        with _traceable(model), _quiet_exporter():
            program = torch.onnx.export(
                model,
                (_example(model, 2),),
                input_names=["video"],
                output_names=["logits"],
                dynamic_shapes=_dynamic_batch(),
                dynamo=True,
                verbose=False,
            )
    except Exception as e:
        raise ExportError(f"ONNX export failed: {_first_line(e)}") from e
    proto = program.model_proto
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(proto, str(path))


def verify_export(
    model: nn.Module,
    path: str | Path,
    fmt: str,
    *,
    atol: float = 1e-4,
    batches: tuple[int, ...] = (1, 2),
) -> dict[str, float]:
    """Max |logit difference| of the export against `model` per batch size; raises past atol."""
    runner = load_export(path, fmt)
    diffs: dict[str, float] = {}
    for b in batches:
        x = _example(model, b, seed=100 + b)
        with torch.no_grad():
            ref = model(x).float()
        with torch.no_grad():
            got = torch.as_tensor(runner(x.numpy() if fmt == "onnx" else x)).float()
        if got.shape != ref.shape:
            raise ExportError(
                f"export gives logits of shape {tuple(got.shape)}, expected {tuple(ref.shape)}"
            )
        diffs[str(b)] = float((got - ref).abs().max())
        if not diffs[str(b)] <= atol:
            raise ExportError(
                f"export does not reproduce the model: max |logit diff| {diffs[str(b)]:.2e} > {atol:.0e} at batch {b}"
            )
    return diffs


def load_export(path: str | Path, fmt: str | None = None) -> Any:
    """A callable (B, 3, T, H, W) -> logits for an exported file (format from its suffix)."""
    path = Path(path)
    fmt = fmt or ("onnx" if path.suffix == ".onnx" else "exported-program")
    if fmt == "onnx":
        ort = _need("onnxruntime")
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {name: x})[0]
    with open(path, "rb") as f:  # a buffer: torch.export warns on file names not ending in .pt2
        ep = torch.export.load(f)
    module = ep.module()
    return lambda x: module(x)


def read_contract(path: str | Path) -> dict[str, Any]:
    """The contract stored in an export: {"preprocess", "config", "class_names"} (plain JSON)."""
    path = Path(path)
    if path.suffix == ".onnx":
        onnx = _need("onnx")
        proto = onnx.load(str(path), load_external_data=False)
        props = {p.key: p.value for p in proto.metadata_props}
        raw = {k.split(".", 1)[1]: props.get(k) for k in CONTRACT_KEYS}
    else:
        extra = {PT2_EXTRA["preprocess"]: "", PT2_EXTRA["config"]: "", "class_names.json": ""}
        with open(path, "rb") as f:
            torch.export.load(f, extra_files=extra)
        raw = {
            "preprocess": extra[PT2_EXTRA["preprocess"]],
            "config": extra[PT2_EXTRA["config"]],
            "class_names": extra["class_names.json"],
        }
    return {k: json.loads(v) if v else None for k, v in raw.items()}


def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(
            f"{module} is not installed; install the export extra: pip install 'timesformer[export]'"
        ) from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__
