"""What a user names as input: video files, folders, globs and list files, expanded to videos.

Every command that takes many videos (predict, extract, data check) expands its arguments
here, so they all accept the same things and refuse the same things with the same words:
a folder is searched recursively for video files, a glob is expanded, a list file (.txt, .csv,
.lst) holds one path per line (a `path label` / `path,label` line keeps its first column;
relative paths are relative to the list's folder), and a URL is refused.
"""

from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass
from pathlib import Path

from ..files import hidden_below, printable_path, read_text
from .video import VIDEO_EXTENSIONS as _SCANNED

VIDEO_EXTENSIONS = frozenset(_SCANNED)  # one list for every command (data/video.py)
LIST_EXTENSIONS = frozenset({".txt", ".csv", ".lst", ".list", ".tsv"})
_URL_PREFIXES = ("http://", "https://", "ftp://", "rtsp://", "rtmp://", "s3://", "gs://")


class InputError(ValueError):
    """An input argument that names no video (missing path, URL, empty folder or glob)."""


@dataclass(frozen=True)
class VideoInput:
    """One video to process: its path, and a name relative to the input it came from.

    `name` keeps the relative path under a folder input (`a/b/clip.mp4` for `DIR/a/b/clip.mp4`),
    so outputs named after it never collide within one folder.
    """

    path: Path
    name: str


def is_url(text: str) -> bool:
    return text.lower().startswith(_URL_PREFIXES)


def is_video_path(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def expand_user(text: str) -> Path:
    """`text` with a leading `~` or `~user` expanded; one that names no known user (or no home)
    stays as written, as a shell leaves it (Path.expanduser would raise a RuntimeError)."""
    return Path(os.path.expanduser(text))


def _tilde_note(text: str) -> str:
    """The note " (~user names no user here)" for a `~user` path left unexpanded, else ""."""
    if not text.startswith("~") or os.path.expanduser(text) != text:
        return ""
    user = text[1:].split("/", 1)[0]
    return f" ({'~' + user} names no user here)" if user else " (no home folder to expand ~)"


def expand_inputs(
    inputs: list[str] | tuple[str, ...],
    recursive: bool = True,
    duplicates: list[tuple[Path, Path]] | None = None,
) -> list[VideoInput]:
    """Videos named by `inputs`, in the order given (folders sorted), without duplicates (each
    one left out is appended to `duplicates` as (its path, the path kept), where given).

    Raises InputError (one line naming the argument) for a URL, a path that does not exist, a
    glob that matches nothing, or a folder or list file with no video in it.
    """
    out: list[VideoInput] = []
    seen: dict[Path, Path] = {}

    def add(path: Path, name: str) -> None:
        key = path_key(path)
        if key not in seen:
            seen[key] = path
            out.append(VideoInput(path, name))
        elif duplicates is not None:
            duplicates.append((path, seen[key]))

    for arg in inputs:
        if is_url(arg):
            raise InputError(f"{printable_path(arg)}: URLs are not read; download the file first")
        path = expand_user(arg)
        try:
            path.stat()
        except PermissionError:  # a folder on its path is not searchable: named when read
            add(path, path.name)
            continue
        except OSError:
            pass
        if path.is_dir():
            found = _scan(path, recursive)
            if not found:
                raise InputError(
                    f"folder {printable_path(path)} holds no video files ({extensions_hint()})"
                )
            for p in found:
                add(p, p.relative_to(path).as_posix())
        elif path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
            try:
                listed = read_path_list(path)
            except ValueError as e:  # not text: a binary file given a list's name
                raise InputError(str(e)) from None
            if not listed:
                raise InputError(f"list file {printable_path(path)} names no videos")
            if not any(p.exists() or p.is_symlink() for p in listed):
                raise InputError(
                    f"list file {printable_path(path)}: none of its {len(listed)} entries is a file (first: "
                    f"{printable_path(listed[0])}); expected one video path per line, relative to the list's folder"
                )
            for p in listed:
                add(p, _rel(p, path.parent))
        elif path.exists() or path.is_symlink():  # a broken link is named when read
            add(path, path.name)
        elif glob.has_magic(arg):
            matches = sorted(glob.glob(os.path.expanduser(arg), recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                raise InputError(f"{printable_path(arg)}: the pattern matches no file")
            for p in files:
                add(p, p.name)
        else:
            raise InputError(f"{printable_path(arg)}: no such file or folder{_tilde_note(arg)}")
    return out


def expand_each(
    args: list[str] | tuple[str, ...], duplicates: list[tuple[Path, Path]] | None = None
) -> tuple[list[VideoInput], list[tuple[str, str]]]:
    """`expand_inputs` argument by argument: the videos (without duplicates, see
    `expand_inputs`) and (argument, one line) for each that names none (a URL, a missing
    path), so that one bad argument does not stop a batch. Every argument bad: InputError."""
    found: list[VideoInput] = []
    bad: list[tuple[str, str]] = []
    for arg in args:
        try:
            found.extend(expand_inputs([arg], duplicates=duplicates))
        except InputError as e:
            bad.append((arg, str(e)))
    if not found:
        raise InputError(bad[0][1] if bad else "no input given")
    seen: dict[Path, Path] = {}
    unique = []
    for v in found:
        key = path_key(v.path)
        if key not in seen:
            seen[key] = v.path
            unique.append(v)
        elif duplicates is not None:
            duplicates.append((v.path, seen[key]))
    return unique, bad


def duplicates_note(duplicates: list[tuple[Path, Path]]) -> str | None:
    """One line saying which inputs were left out as the same file as another, or None."""
    if not duplicates:
        return None
    (a, b), n = duplicates[0], len(duplicates)
    return (f"{n} input{'s' if n > 1 else ''} left out as the same file as another "
            f"(e.g. {a} is {b})")  # fmt: skip


def path_key(path: Path) -> Path:
    """The resolved path, the key duplicates share; a link loop or an unsearchable folder on
    the way keeps the absolute path (the reader names the problem when the file is read)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def read_path_list(path: Path) -> list[Path]:
    """Paths of a list file: the first column of each non-empty, non-comment line.

    Columns are split on a tab or a comma when the line has one, else on the last run of
    spaces only when what follows is a bare label (so paths with spaces survive). A header line
    whose first column is `path`/`video`/`filename` is skipped. A file that is not UTF-8 text
    is a ValueError naming it.
    """
    paths: list[Path] = []
    text = read_text(path, "list file", "one video path per line")
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        first = _first_column(line)
        if lineno == 1 and first.lower() in ("path", "video", "filename", "file", "video_path"):
            continue
        p = expand_user(first)
        paths.append(p if p.is_absolute() else path.parent / p)
    return paths


def _first_column(line: str) -> str:
    """The path of a list line: the first field of a tab- or comma-separated row (CSV quoting
    honoured: `data lists` writes `"a, b.mp4",1`), else `path label` or the whole line."""
    for sep in ("\t", ","):
        if sep in line:
            if line.lstrip().startswith('"'):
                return next(csv.reader([line], delimiter=sep))[0].strip()
            return line.split(sep, 1)[0].strip()
    head, _, tail = line.rpartition(" ")
    if head and tail and not is_video_path(Path(tail)) and "/" not in tail:
        return head.strip()  # `path label`
    return line


def is_listed_video(p: Path) -> bool:
    """A file a folder scan takes as a video: a video suffix, not hidden, and a file or a
    broken link (kept, so that it is reported by name instead of vanishing)."""
    return (
        is_video_path(p)
        and not p.name.startswith(".")
        and (p.is_file() or (p.is_symlink() and not p.exists()))
    )


def _scan(folder: Path, recursive: bool) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if is_listed_video(p) and not hidden_below(p, folder))


def _rel(p: Path, base: Path) -> str:
    try:
        return p.relative_to(base).as_posix()
    except ValueError:
        return p.name


def extensions_hint() -> str:
    """The first video suffixes a folder scan looks for, for messages: ".avi, .m4v, ..."."""
    return ", ".join(sorted(VIDEO_EXTENSIONS)[:6]) + ", ..."
