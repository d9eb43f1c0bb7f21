"""`timesformer convert SRC DST`: between our, the official and the Hugging Face formats."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from ..models.config import ATTENTION_TYPES, EMBED_RESAMPLE_MODES
from ..models.weights import (
    from_pretrained,
    read_checkpoint,
    save_checkpoint,
    save_hf,
    save_official,
    save_safetensors,
)
from .common import add_allow_pickle_argument, non_negative_int, positive_int

TARGETS = ("ours", "safetensors", "official", "hf")
_SUFFIXES = {
    ".pt": "ours",
    ".pth": "ours",
    ".ckpt": "ours",
    ".tar": "ours",
    ".safetensors": "safetensors",
    ".pyth": "official",
}

DESCRIPTION = """\
Convert a checkpoint between formats. SRC may be any format that from_pretrained reads (detected
from its content): ours (.pt / .safetensors), an official facebookresearch/TimeSformer .pyth, a
Hugging Face Timesformer directory, or ImageNet ViT weights (timm state dict or Hugging Face
ViTModel directory; the paper's recipe turns them into a video model).

Targets (--to, or inferred from DST):
  ours         torch.save dict with config and weights   (DST .pt, .pth, .ckpt)
  safetensors  weights only, config in the metadata       (DST .safetensors)
  official     facebookresearch/TimeSformer layout         (DST .pyth)
  hf           directory for transformers' TimesformerForVideoClassification.from_pretrained
               (DST an existing directory or a path without extension)
Official and Hugging Face targets hold divided, joint and space-only models only."""

EPILOG = """\
examples:
  timesformer convert TimeSformer_divST_8x32_224_K400.pyth k400.pt
  timesformer convert runs/demo/best.pt hf_model/
  timesformer convert vit_base_patch16_224.pth init.pt --num-frames 8 --num-classes 174"""


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.description = DESCRIPTION
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("src", metavar="SRC", help="checkpoint file or directory to read")
    p.add_argument("dst", metavar="DST", help="file or directory to write")
    p.add_argument("--to", choices=TARGETS, help="target format (default: from DST)")
    p.add_argument(
        "--num-frames",
        type=positive_int,
        metavar="N",
        help="resample the time embedding to N frames (default: the source's)",
    )
    p.add_argument(
        "--img-size",
        type=positive_int,
        metavar="PX",
        help="resample the position embedding to PX x PX (default: the source's)",
    )
    p.add_argument(
        "--num-classes",
        type=non_negative_int,
        metavar="K",
        help="head size (default: the source's; a new size needs --reset-head; 0: no head)",
    )
    p.add_argument("--reset-head", action="store_true", help="re-initialise the classifier head")
    add_allow_pickle_argument(p)
    p.add_argument(
        "--attention-type",
        choices=ATTENTION_TYPES,
        help="scheme for ImageNet ViT sources (default divided_space_time), or to tell joint "
        "from space-only",
    )
    p.add_argument(
        "--num-heads",
        type=positive_int,
        metavar="H",
        help="attention heads where the file does not say (official, timm: default dim/64)",
    )
    p.add_argument(
        "--embed-resample",
        choices=EMBED_RESAMPLE_MODES,
        help="how embeddings are resampled to other sizes (default: the source's, else bicubic; "
        "nearest: as the official code)",
    )
    p.add_argument("--labels", metavar="FILE", help="class names, one per line, to store")
    p.add_argument("--force", action="store_true", help="overwrite DST if it exists")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.add_argument("--debug", action="store_true", help="full tracebacks on errors")
    return p


def target_format(dst: Path, to: str | None) -> str:
    """The target format: --to, else from DST's extension (a directory or none: hf)."""
    if to:
        return to
    if dst.is_dir() or dst.suffix == "":
        return "hf"
    fmt = _SUFFIXES.get(dst.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot tell the target format from DST {str(dst)!r}; use an extension "
            f"({', '.join(_SUFFIXES)}), a directory for hf, or pass --to {{{','.join(TARGETS)}}}"
        )
    return fmt


def run(args: argparse.Namespace) -> int:
    src, dst = Path(args.src), Path(args.dst)
    fmt = target_format(dst, args.to)
    if fmt == "hf" and dst.exists() and not dst.is_dir():
        raise ValueError(f"DST {str(dst)!r} is a file; the hf target is a directory")
    if fmt != "hf" and dst.is_dir():
        raise ValueError(f"DST {str(dst)!r} is a directory; the {fmt} target is a file")
    existing = dst / "config.json" if fmt == "hf" else dst
    if existing.exists() and not args.force:
        raise ValueError(f"{existing} exists; pass --force to overwrite it")
    from ..files import check_output_file, ensure_dir

    if fmt == "hf":  # checked before anything is read: a folder that can be made and written
        ensure_dir(dst.parent if not dst.exists() else dst, "folder for DST")
    else:
        check_output_file(dst, "DST")

    overrides: dict[str, Any] = {}
    for name in ("num_frames", "img_size", "num_classes", "attention_type", "num_heads"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.embed_resample:
        overrides["embed_resample"] = args.embed_resample
    if args.labels:
        overrides["labels"] = _read_labels(Path(args.labels))
        overrides.setdefault("num_classes", len(overrides["labels"]))

    ck = read_checkpoint(src, allow_pickle=args.allow_pickle)
    try:
        model = from_pretrained(ck, reset_head=args.reset_head, **overrides)
    except ValueError as e:  # the API's advice in the command's words
        text = str(e)
        if "reset_head=True" in text:
            why = f"--num-classes {args.num_classes}" if args.num_classes else ""
            if args.labels:
                why = f"--labels names {len(overrides['labels'])} classes"
            text = re.sub(r"call (from_pretrained|load_into)\(.*?reset_head=True\)",
                          "pass --reset-head", text)  # fmt: skip
            text = re.sub(r"\(or use num_classes=(\d+)\)", r"(or give \1 classes)", text)
            text = text.replace(" classes were requested", f" classes were requested ({why})")
        raise ValueError(text) from None
    if fmt == "ours":
        save_checkpoint(model, dst)
    elif fmt == "safetensors":
        save_safetensors(model, dst)
    elif fmt == "official":
        save_official(model, dst)
    else:
        save_hf(model, dst)

    cfg = model.config
    summary = {
        "src": str(src),
        "src_format": ck.format,
        "dst": str(dst),
        "format": fmt,
        "attention_type": cfg.attention_type,
        "num_frames": cfg.num_frames,
        "img_size": cfg.img_size if isinstance(cfg.img_size, int) else list(cfg.img_size),
        "num_classes": cfg.num_classes,
        "params": sum(p.numel() for p in model.parameters()),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{src} ({ck.format}) -> {dst} ({fmt}): {cfg.attention_type}, "
            f"{cfg.num_frames} frames x {cfg.img_size} px, {cfg.num_classes} classes, "
            f"{summary['params'] / 1e6:.2f}M parameters"
        )
    return 0


def _read_labels(path: Path) -> list[str]:
    if not path.exists():
        raise FileNotFoundError(f"labels file not found: {path}")
    from ..files import read_text

    text = read_text(path, "labels file", "one class name per line")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ValueError(f"labels file {path} holds no class names")
    return names
