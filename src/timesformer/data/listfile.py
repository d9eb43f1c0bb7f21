"""List files: ``path label`` lines with space, comma or tab separators, headers, class names.

The format is PySlowFast's (one ``path label`` per line) widened to what people have:

- separator: whitespace, ``,`` or tab, detected from the file (every data line of the first 50
  holds a tab: tab; else every one a comma: comma; else whitespace), or chosen
  (``separator="comma"|"tab"|"space"|"auto"`` or any literal string such as ``";"``);
- the label is the last field, so a path may contain the separator (spaces with whitespace,
  commas with comma); comma/tab fields may also be quoted as CSV writes them;
- an optional header line naming the columns (``path,label``, ``video label``,
  ``label,path,...``): with a header the columns are found by name and others are ignored;
- a label is a class id (a non-negative integer) or a class name, mapped through the labels
  (``label_names``, else a ``labels.txt`` beside the list file), compared case-insensitively
  with ``_`` and spaces treated alike.

Blank lines and ``#`` comments are skipped. Relative paths join ``root``, or the list file's
folder when no root is given. Errors are ValueError naming the file, the line and what was
expected (FileNotFoundError for a missing file).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from ..files import read_text
from ..files import shown as shown_path

PATH_COLUMNS = ("path", "video", "video_path", "file", "filename", "file_name")
LABEL_COLUMNS = ("label", "labels", "class", "class_id", "class_name", "label_id", "target")
SEPARATOR_NAMES = {"auto": None, "space": " ", "whitespace": " ", "comma": ",", "tab": "\t"}
_DETECT_LINES = 50


def resolve_separator(value: str | None) -> str | None:
    """A config value (None/"auto", "space", "comma", "tab", "\\t" or a literal) -> separator.

    Returns None for auto-detection and " " for whitespace.
    """
    if value is None:
        return None
    key = value.strip().lower() if value.strip() else "space"
    if key in SEPARATOR_NAMES:
        return SEPARATOR_NAMES[key]
    if value in ("\\t", "\t"):
        return "\t"
    return value


def _data_lines(path: Path) -> list[tuple[int, str]]:
    text = read_text(path, "list file", "one 'path label' line per video")
    lines = [(n, raw.strip()) for n, raw in enumerate(text.split("\n"), 1)]
    return [(n, s) for n, s in lines if s and not s.startswith("#")]


def detect_separator(lines: Sequence[str]) -> str:
    """Tab if every line holds one, else comma if every line does, else whitespace (" ")."""
    sample = list(lines[:_DETECT_LINES])
    for sep in ("\t", ","):
        if sample and all(sep in s for s in sample):
            return sep
    return " "


def _fields(line: str, sep: str) -> list[str]:
    """All fields of a line (CSV quoting understood for one-character separators)."""
    if sep == " ":
        return line.split()
    if len(sep) == 1:
        return [f.strip() for f in next(csv.reader([line], delimiter=sep))]
    return [f.strip() for f in line.split(sep)]


def _path_label(line: str, sep: str) -> list[str]:
    """``[path, label]`` split at the last separator (a path may contain the separator)."""
    if sep == " ":
        return [p.strip() for p in line.rsplit(None, 1)]
    if len(sep) == 1 and line.startswith('"'):
        fields = _fields(line, sep)
        return [sep.join(fields[:-1]), fields[-1]] if len(fields) >= 2 else fields
    return [p.strip() for p in line.rsplit(sep, 1)]


def _is_int(text: str) -> bool:
    return text.lstrip("+").isdigit() or (text.startswith("-") and text[1:].isdigit())


def _header(fields: list[str]) -> tuple[int, int] | None:
    """(path column, label column) when ``fields`` is a header line, else None."""
    names = [f.strip().lower() for f in fields]
    if _is_int(names[-1]) or not any(n in PATH_COLUMNS or n in LABEL_COLUMNS for n in names):
        return None
    path_col = next((i for i, n in enumerate(names) if n in PATH_COLUMNS), -1)
    label_col = next((i for i, n in enumerate(names) if n in LABEL_COLUMNS), -1)
    return path_col, label_col


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").strip().strip('"').lower().split())


def _beside_labels(path: Path) -> list[str] | None:
    f = path.parent / "labels.txt"
    if not f.is_file():
        return None
    text = read_text(f, "labels file", "one class name per line")
    return [s.strip() for s in text.splitlines() if s.strip()]


def _rows(path: Path, separator: str | None) -> list[tuple[int, str, str]]:
    """``[(line number, path, label text)]`` of a list file."""
    if not path.exists():
        raise FileNotFoundError(f"list file not found: {shown_path(path)}")
    lines = _data_lines(path)
    if not lines:
        raise ValueError(f"list file {path} has no entries")
    sep = resolve_separator(separator) or detect_separator([s for _, s in lines])
    shown = {" ": "' '", "\t": "tab", ",": "','"}.get(sep, repr(sep))
    head = _fields(lines[0][1], sep)
    cols = _header(head)
    simple = cols is None or (cols == (0, 1) and len(head) == 2)  # split at the last separator
    if cols is not None:
        lineno, header = lines[0]
        for col, kind, names in (
            (cols[0], "path", PATH_COLUMNS),
            (cols[1], "label", LABEL_COLUMNS),
        ):
            if col < 0:
                raise ValueError(
                    f"{path}:{lineno}: header {header!r} names no {kind} column "
                    f"(expected one of {', '.join(names)})"
                )
        lines = lines[1:]
    rows: list[tuple[int, str, str]] = []
    for lineno, line in lines:
        if simple or cols is None:
            parts = _path_label(line, sep)
            if len(parts) != 2 or not parts[0] or not parts[1]:
                raise ValueError(
                    f"{path}:{lineno}: expected 'path{sep if sep != ' ' else ' '}label' "
                    f"(separator {shown}), got {line!r}"
                )
            rows.append((lineno, parts[0], parts[1]))
            continue
        fields = _fields(line, sep)
        need = max(cols) + 1
        if len(fields) < need or not fields[cols[0]] or not fields[cols[1]]:
            raise ValueError(
                f"{path}:{lineno}: expected at least {need} fields (separator {shown}) as the "
                f"header says, got {line!r}"
            )
        rows.append((lineno, fields[cols[0]], fields[cols[1]]))
    if not rows:
        raise ValueError(f"list file {path} has no entries")
    return rows


def _join(video: str, path: Path, root: str | Path | None) -> str:
    if os.path.isabs(video):
        return video
    return os.path.join(str(path.parent if root is None else root), video)


def read_list_file(
    path: str | Path,
    root: str | Path | None = None,
    separator: str | None = None,
    label_names: Sequence[str] | None = None,
) -> list[tuple[str, int]]:
    """Parse a list file into ``[(video_path, label), ...]`` (the format in the module doc).

    ``separator``: None/"auto" detects it; ``label_names`` maps class names to ids (default: a
    ``labels.txt`` beside the list file, read only when a name appears). ValueError names the
    file and line: a malformed line, a negative id, an unknown class name, no entries.
    """
    path = Path(path)
    rows = _rows(path, separator)
    lookup: dict[str, int] | None = None
    source = "the labels given"
    samples: list[tuple[str, int]] = []
    for lineno, video, label in rows:
        if _is_int(label):
            value = int(label)
            if value < 0:
                raise ValueError(f"{path}:{lineno}: label must be non-negative, got {value}")
        else:
            if lookup is None:
                names = label_names
                if names is None:
                    names = _beside_labels(path)
                    source = f"{path.parent / 'labels.txt'}"
                if names is None:
                    raise ValueError(
                        f"{path}:{lineno}: label must be a non-negative integer id, or a class "
                        f"name with a labels file to map it (data.labels, or labels.txt beside "
                        f"the list); got {label!r}"
                    )
                lookup = {}
                for i, n in enumerate(names):
                    lookup.setdefault(_norm(n), i)
            value = lookup.get(_norm(label), -1)
            if value < 0:
                raise ValueError(
                    f"{path}:{lineno}: class name {label!r} is not in {source} "
                    f"({len(lookup)} names)"
                )
        samples.append((_join(video, path, root), value))
    return samples


def list_file_paths(
    path: str | Path, root: str | Path | None = None, separator: str | None = None
) -> list[str]:
    """The video paths of a list file, labels unread (for ``data check``)."""
    path = Path(path)
    return [_join(video, path, root) for _, video, _ in _rows(path, separator)]
