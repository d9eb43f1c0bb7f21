"""Results that survive an interruption, and warnings that do not vanish.

- `RowWriter`: a CSV file written row by row and flushed after each, so a run stopped half way
  (Ctrl-C, a crash, a late failure) keeps every row it had finished.
- `VideoStream`: the view logits of an evaluation, handed on video by video as each finishes.
- `recorded_warnings`: every `warnings.warn` raised inside the block (by the reader, a
  transform, the model), collected as one-line strings so the command can record them in its
  JSON/CSV next to the video they concern, instead of a line lost in the scrollback.
"""

from __future__ import annotations

import contextlib
import csv
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import Tensor


class RowWriter:
    """CSV rows appended and flushed one at a time (the header first)."""

    def __init__(self, path: str | Path, header: Sequence[str]) -> None:
        self.path = Path(path)
        try:
            # surrogateescape: a file name that is not UTF-8 is written as its own bytes
            self._f: TextIO | None = self.path.open(
                "w", newline="", encoding="utf-8", errors="surrogateescape"
            )
        except OSError as e:
            raise _output_error(self.path, e) from e
        self._w = csv.writer(self._f)
        self.write(header)

    def write(self, row: Sequence[Any]) -> None:
        if self._f is None:
            raise ValueError(f"{self.path}: the writer is closed")
        try:
            self._w.writerow(list(row))
            self._f.flush()
        except OSError as e:  # a full disk: the rows flushed before stay in the file
            raise _output_error(self.path, e) from e

    def close(self) -> None:
        if self._f is not None:
            f, self._f = self._f, None
            try:
                f.close()
            except OSError as e:
                raise _output_error(self.path, e) from e

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _output_error(path: Path, e: OSError) -> OSError:
    """`e` as an OutputError naming `path` (an OutputError already names its path)."""
    from ..files import OutputError

    if isinstance(e, OutputError):
        return e
    return OutputError(f"cannot write {path}: {e.strerror or e}")


def warning_text(w: warnings.WarningMessage) -> str:
    """`Category: message` on one line."""
    msg = " ".join(str(w.message).split())
    return f"{w.category.__name__}: {msg}"


@contextlib.contextmanager
def recorded_warnings() -> Iterator[list[str]]:
    """Collect the warnings raised inside the block; the list is filled when the block ends.

    Every warning is kept (filter "always"), duplicates within the block once each.
    """
    out: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield out
        finally:
            for w in caught:
                text = warning_text(w)
                if text not in out:
                    out.append(text)


def attribute_warnings(
    caught: list[str], index: list[int], paths: list[str], warned: dict[int, list[str]]
) -> None:
    """Warnings of one batch onto its videos: the one whose path a warning names, else all."""
    for text in caught:
        named = [v for v, p in zip(index, paths) if p and p in text]
        for v in dict.fromkeys(named or index):
            if text not in warned.setdefault(v, []):
                warned[v].append(text)


class VideoStream:
    """Hands each finished video's view logits to `on_video` (views of a video arrive in a
    row when one process reads the dataset in order)."""

    def __init__(
        self,
        on_video: Callable[[dict[str, Any]], None] | None,
        failed: dict[int, tuple[str, str]],
        warned: dict[int, list[str]],
    ) -> None:
        self.on_video, self.failed, self.warned = on_video, failed, warned
        self.current: int | None = None
        self.meta: tuple[str, int] = ("", -1)
        self.rows: list[Tensor] = []

    def add(
        self, index: Tensor, ok: Tensor, logits: Tensor, paths: list[str], label: Tensor
    ) -> None:
        if self.on_video is None:
            return
        j = 0
        for i, v in enumerate(index.tolist()):
            if v != self.current:
                self.finish()
                self.current, self.meta = v, (paths[i], int(label[i]))
            if bool(ok[i]):
                self.rows.append(logits[j])
                j += 1

    def finish(self) -> None:
        if self.on_video is None or self.current is None:
            return
        v = self.current
        C = self.rows[0].numel() if self.rows else 0
        self.on_video({
            "index": v, "path": self.meta[0], "label": self.meta[1],
            "scores": torch.stack(self.rows) if self.rows else torch.zeros(0, C),
            "error": self.failed.get(v, ("", ""))[1], "warnings": self.warned.get(v, []),
        })  # fmt: skip
        self.current, self.rows = None, []
