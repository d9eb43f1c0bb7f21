"""The options every model-running command shares, defined once with one meaning.

`add_model_arguments` gives predict, eval, explain and train the same five flags:

    --checkpoint/-c P   the weights (train: the initial weights, i.e. model.pretrained)
    --device D          auto (default), cpu, cuda or cuda:N
    --amp {off,bf16,fp16}   autocast precision
    --no-progress       no progress bars on stderr
    --json              machine-readable output on stdout
    --allow-pickle      read torch files only full unpickling reads (runs code from the file)

plus `--debug` (full tracebacks). Commands that read a run config (train, eval) leave
`--device` / `--amp` unset by default, so the config's train.device / train.amp apply.
`add_clip_arguments` is the clip geometry block of predict and explain; `add_views_argument`
and `add_labels_argument` the other options they share.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..engine.runtime import AMP_CHOICES
from . import UsageError

CHECKPOINT_HELP = "our .pt / .safetensors, an official .pyth, or a Hugging Face directory"
ALLOW_PICKLE_HELP = (
    "load a torch checkpoint that holds objects beyond tensors and plain data by unpickling it "
    "fully; this runs code from the file: only for files you trust (default: such files are "
    "refused)"
)


def _int_at_least(text: str, low: int, want: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a frame count, a size, a batch)."""
    return _int_at_least(text, 1, "a positive integer")


def int_in(low: int, high: int | None = None) -> Any:
    """argparse type: an integer in low..high (no upper bound when high is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            want = f"an integer in {low}..{high}" if high is not None else f"an integer >= {low}"
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}")
        return value

    return parse


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (a worker count: 0 is "in this process")."""
    return _int_at_least(text, 0, "an integer >= 0")


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (a frame rate)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def add_model_arguments(
    p: argparse.ArgumentParser,
    *,
    checkpoint_required: bool = True,
    checkpoint_help: str = CHECKPOINT_HELP,
    from_config: bool = False,
    json_help: str = "machine-readable output on stdout",
) -> None:
    """--checkpoint/-c, --allow-pickle, --device, --amp, --no-progress, --json and --debug.

    from_config: the command reads a run config; --device and --amp default to its
    train.device and train.amp (the parsed value is None when not given).
    """
    p.add_argument(
        "--checkpoint", "-c", required=checkpoint_required, metavar="P", help=checkpoint_help
    )
    add_allow_pickle_argument(p)
    p.add_argument(
        "--device",
        default=None if from_config else "auto",
        help="auto, cpu, cuda or cuda:N (default: "
        + ("the config's train.device)" if from_config else "auto: cuda when available)"),
    )
    p.add_argument(
        "--amp",
        choices=AMP_CHOICES,
        default=None if from_config else "off",
        help="autocast precision (default: "
        + ("the config's train.amp)" if from_config else "off); fp16 needs CUDA"),
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.add_argument("--json", action="store_true", help=json_help)
    p.add_argument("--debug", action="store_true", help="full tracebacks on errors")


def add_allow_pickle_argument(p: argparse.ArgumentParser) -> None:
    """--allow-pickle: the explicit opt-in to full unpickling of a checkpoint (runs its code)."""
    p.add_argument("--allow-pickle", action="store_true", help=ALLOW_PICKLE_HELP)


def add_clip_arguments(p: argparse.ArgumentParser) -> None:
    """Clip geometry options shared by `predict` and `explain` (defaults: the checkpoint's)."""
    p.add_argument(
        "--frames", type=positive_int, default=None, help="frames per clip (default: model's)"
    )
    p.add_argument(
        "--size", type=positive_int, default=None, help="crop size in pixels (default: model's)"
    )
    p.add_argument(
        "--sampling-rate",
        type=positive_int,
        default=None,
        help="frames between samples at 30 fps (default: checkpoint's, else official)",
    )
    p.add_argument(
        "--sampler",
        choices=("rate", "segments"),
        default=None,
        help="clip sampling: rate (Kinetics) or segments (SSv2); default: checkpoint's, or rate",
    )
    add_protocol_argument(p)


def add_protocol_argument(p: argparse.ArgumentParser) -> None:
    """--protocol official|centred: how test clips are placed, cropped and combined."""
    p.add_argument(
        "--protocol",
        choices=("official", "centred"),
        default=None,
        help="test protocol (docs/inference.md): official (clip placement, 256 short side for "
        "one crop, summed logits) or centred; default: the checkpoint's (predict) / "
        "data.test_protocol (eval)",
    )


def views_spec(text: str) -> str:
    """argparse type: "KxS", K >= 1 temporal clips x S = 1 or 3 crops (kept as written; the
    engine's parse_views reads it: the same rule, checked here so a bad value exits 2)."""
    parts = text.lower().split("x")
    try:
        k, s = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected KxS (K temporal clips x S spatial crops, e.g. 1x3), got {text!r}"
        ) from None
    if k < 1 or s not in (1, 3):
        raise argparse.ArgumentTypeError(
            f"expected KxS with K >= 1 clips and S = 1 or 3 crops, got {text!r}"
        )
    return text


def add_views_argument(p: argparse.ArgumentParser, help_text: str) -> None:
    """--views KxS: K temporal clips x S spatial crops."""
    p.add_argument("--views", type=views_spec, default=None, metavar="KxS", help=help_text)


def add_labels_argument(p: argparse.ArgumentParser) -> None:
    """--labels FILE: class names, one per line."""
    p.add_argument("--labels", default=None, metavar="FILE", help="class names, one per line (default: the checkpoint's, else Kinetics-400 "
                        "for a 400-way head, else class_<i>)")  # fmt: skip


def refuse_input_as_output(out: str | Path, inputs: Iterable[Any], what: str | None = None) -> None:
    """UsageError (exit 2) when the output file `out` is one of the files read (`inputs`: paths,
    None skipped), before anything is opened for writing: writing it would destroy the input.
    `what` names the output in the message (default "--out OUT")."""
    from ..files import same_file_as

    hit = same_file_as(out, inputs)
    if hit is not None:
        raise UsageError(
            f"{what or f'--out {out}'} is the same file as the input {hit}; writing there "
            "would destroy it: name another file"
        )


def device_of(args: argparse.Namespace) -> Any:
    """The torch.device of `--device` (the package's one device pick)."""
    from ..engine.runtime import pick_device

    return pick_device(args.device or "auto", what="--device")


def load_model_for_clips(args: argparse.Namespace, device: Any = None) -> tuple[Any, Any, Any]:
    """(model, Preprocess, device) of --checkpoint with the clip options applied (recorded as
    "command line" in its sources); `log_settings` prints where each setting came from.
    `device`: already picked (e.g. this rank's under torchrun), else `--device`'s."""
    from ..engine.predict import load_for_inference

    device = device if device is not None else device_of(args)
    model, settings = load_for_inference(
        args.checkpoint,
        num_frames=args.frames,
        img_size=args.size,
        sampling_rate=args.sampling_rate,
        sampler=args.sampler,
        protocol=getattr(args, "protocol", None),
        device=device,
        allow_pickle=getattr(args, "allow_pickle", False),
    )
    return model, settings, device


def add_compile_argument(p: argparse.ArgumentParser) -> None:
    """--compile: the model through torch.compile, for long batch jobs."""
    p.add_argument(
        "--compile", action="store_true",
        help="run the model through torch.compile (inductor, weights frozen): faster per clip "
        "(0.67x the time, bf16 on an AMX CPU) after a first batch that compiles for minutes on "
        "a CPU; pays off over many videos. Needs a C++ compiler (Triton on CUDA)",
    )  # fmt: skip


def maybe_compile(args: argparse.Namespace, model: Any, device: Any, command: str) -> None:
    """Compile `model` in place when --compile is given (batches of exactly --batch-size)."""
    if not getattr(args, "compile", False):
        return
    import sys

    from ..engine.runtime import compile_for_inference

    compile_for_inference(model, device, args.batch_size)
    print(f"timesformer {command}: compiling the model for batches of {args.batch_size} on first "
          "use (minutes on a CPU, once per run)", file=sys.stderr)  # fmt: skip


def log_settings(settings: Any) -> None:
    """The one stderr line: each clip setting and where it came from."""
    import sys

    print(settings.log_line(), file=sys.stderr)


def print_file_traceback(args: argparse.Namespace, error: BaseException | str | None) -> None:
    """With --debug, the traceback of one input's error (a batch goes on after it) on stderr,
    after its one-line message. `error`: the exception, or a traceback already formatted (one
    a decoding worker process caught); None or an empty text prints nothing."""
    if not getattr(args, "debug", False) or not error:
        return
    import sys
    import traceback

    if isinstance(error, BaseException):
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    else:
        text = error
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
