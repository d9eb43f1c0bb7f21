"""Files safely, for every layer: atomic replacement, output checks made up front, text reads.

One writer for the whole package (checkpoints, exports, reports, features): the bytes go to a
temporary file in the destination folder, are flushed to disk, and are renamed over the target,
so a crash or a full disk never leaves a half-written file under the final name. Output
locations are checked before work starts, so a read-only or mistyped folder fails in one line
instead of after an hour of computing. Text inputs (lists, label names) are read by one
reader whose errors name the file.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any


class OutputError(OSError):
    """An output location that cannot be written (missing parent, read-only, a file not a folder)."""


def atomic_write(path: str | Path, write: Callable[[Path], Any], durable: bool = True) -> Path:
    """Call `write(tmp)` on a temporary path beside `path`, fsync it, then rename it into place.

    `durable` also fsyncs the folder so the rename survives a power cut (checkpoints need it).
    The file gets the mode a plain open() would give it (0666 less the umask), even when
    `write` replaced the temporary file with one of its own (safetensors does).
    On any failure the temporary file is removed and the old `path`, if any, is left untouched.
    """
    path = Path(path)
    ensure_dir(path.parent)
    # the suffix repeats the target's: some writers insist on it
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    mode = 0o666 & ~_umask()  # mkstemp makes 0600; a plain open() would honour umask
    os.chmod(tmp, mode)
    try:
        write(tmp)
        if tmp.is_file():  # again: some writers (safetensors) replace the file they are given
            os.chmod(tmp, mode)
        if durable and tmp.is_file():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if durable:
            _fsync_dir(path.parent)
    except OutputError:
        raise
    except OSError as e:  # a full disk, a quota, a folder gone read-only: name the target
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from e
    except RuntimeError as e:
        # torch.save reports a failed write from its C++ zip writer as a RuntimeError
        # ("[enforce fail at inline_container.cc] unexpected pos ...", "file write failed")
        text = str(e)
        if "inline_container" not in text and "PytorchStreamWriter" not in text:
            raise
        free = _free_bytes(path.parent)
        where = f"{free / 2**20:.1f} MB free there" if free is not None else "free space unknown"
        raise OutputError(
            f"cannot write {path}: the write failed ({where}; is the disk full?)"
        ) from e
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> Path:
    """Write `data` to `path` atomically."""
    return atomic_write(path, lambda p: p.write_bytes(data), durable=durable)


def atomic_write_text(path: str | Path, text: str, durable: bool = True) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), durable=durable)


def _free_bytes(folder: Path) -> int | None:
    """Bytes free for writing in `folder`'s file system, or None where it cannot be told."""
    import shutil

    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def ensure_dir(folder: str | Path, what: str = "output folder") -> Path:
    """Make `folder` (and parents) if needed and check that files can be created in it.

    Raises OutputError with one line naming the folder and the problem.
    """
    if not str(folder).strip():  # Path("") is ".": an empty --out would write into the cwd
        raise OutputError(f"{what}: the path is empty; expected a folder name")
    folder = Path(folder)
    for part in (folder, *folder.parents):  # the nearest existing ancestor must be a folder
        if part.exists():
            if not part.is_dir():
                raise OutputError(f"{what} {folder}: {part} is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {what} {folder}: {e.strerror or e}") from None
    try:  # a real probe: os.access says yes to root even on a read-only mount
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
    except OSError as e:
        why = e.strerror or str(e)
        if e.errno == errno.ENOENT:  # the folder is there: files cannot be made in it (/proc)
            why = "files cannot be created in it"
        raise OutputError(f"{what} {folder} is not writable: {why}") from None
    os.close(fd)
    os.unlink(probe)
    return folder


@contextlib.contextmanager
def output_dir(folder: str | Path, what: str = "output folder") -> Iterator[Path]:
    """`ensure_dir` for the length of a job: if the job fails, the folders this call made are
    removed again while they are still empty, so a failed command leaves no empty folder."""
    made = missing_dirs(folder)
    path = ensure_dir(folder, what)
    try:
        yield path
    except BaseException:
        remove_empty(made)
        raise


def missing_dirs(folder: str | Path) -> list[Path]:
    """`folder` and its parents that do not exist yet, deepest first: what `ensure_dir` makes."""
    folder = Path(folder)
    return [p for p in (folder, *folder.parents) if not p.exists() and str(p) not in ("", ".")]


def remove_empty(made: list[Path]) -> None:
    """Remove the folders of `missing_dirs` again, deepest first, while they are empty."""
    for p in made:  # stops at the first folder that holds something (or is already gone)
        try:
            p.rmdir()
        except OSError:
            break


def check_output_file(path: str | Path, what: str = "output file") -> Path:
    """Check up front that `path` can be written: its folder exists or can be made, and is writable.

    Nothing is created except missing parent folders.
    """
    if not str(path).strip():
        raise OutputError(f"{what}: the path is empty; expected a file name")
    path = Path(path)
    if path.exists() and path.is_dir():
        raise OutputError(f"{what} {path} is a folder, expected a file path")
    try:
        ensure_dir(path.parent, what="folder")
    except OutputError as e:  # "export out/m.onnx: folder out is not writable: ..."
        raise OutputError(f"{what} {path}: {e}") from None
    return path


def check_report_file(path: str | Path, header: Sequence[str], what: str) -> Path:
    """`check_output_file` for a CSV report that is rewritten on every run: an existing `path`
    is replaced only when it is empty or an earlier report of the same kind (its first line is
    `header`), so that a mistyped --out never overwrites a video, a list or a script."""
    path = check_output_file(path, what)
    if not path.exists():
        return path
    try:
        with open(path, "rb") as f:
            head = f.read(64 * 1024)
    except OSError as e:
        raise OutputError(f"{what} {path}: cannot read it: {e.strerror or e}") from None
    first = head.split(b"\n", 1)[0].strip().decode("utf-8", errors="replace")
    want = ",".join(header)
    if head.strip() and first != want:
        raise OutputError(
            f"{what} {path} exists and is not an earlier report of this command (those begin "
            f"{','.join(header[:2])},...); name a new file, or remove it first"
        )
    return path


def same_file_as(path: str | Path, others: Iterable[str | Path | None]) -> str | None:
    """The first of `others` that is the file `path` names (the same path, through links, or a
    hard link to it), or None. Missing paths compare by their resolved names."""
    try:
        st = os.stat(path)
        key: Any = (st.st_dev, st.st_ino)
    except OSError:
        key = None
    real = os.path.realpath(path) if key is None else None
    for other in others:
        if other is None or not str(other):
            continue
        if key is not None:
            try:
                st = os.stat(other)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == key:
                return str(other)
        elif os.path.realpath(other) == real:
            return str(other)
    return None


def read_text(path: str | Path, what: str, expected: str) -> str:
    """The text of `path` as UTF-8 (a leading BOM dropped, newlines as `Path.read_text` has them).

    A folder, or a file that is not text (bytes that are not UTF-8, or NUL bytes), is a
    ValueError of one line that names it: "{what} {path} is not UTF-8 text; expected {expected}".
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; expected a text file: {expected}")
    try:
        text: str | None = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        raise ValueError(f"{what} {path} is not UTF-8 text; expected {expected}")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def json_safe(x: Any) -> Any:
    """`x` with NaN and infinities as None (null): JSON has neither, and `json.dumps` would
    write the bare words NaN / Infinity that strict JSON readers refuse."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def shown(path: str | Path) -> str:
    """`path` for a "not found" message: a relative one also says what it is relative to (the
    current folder), since a config run from elsewhere reads its paths from there."""
    p = Path(path)
    return str(p) if p.is_absolute() else f"{p} (relative to the current folder {Path.cwd()})"


def printable_path(path: str | Path) -> str:
    """`path` for a one-line message: control characters and line separators (a newline or a
    tab in a file name) written as escapes (``\\n``), so the line stays one line and names the
    file in full. Bytes that are not UTF-8 (surrogate escapes) stay, printed as themselves."""
    text = str(path)
    if text.isprintable():
        return text
    return "".join(
        c.encode("unicode_escape").decode() if unicodedata.category(c) in _BREAKS else c
        for c in text
    )


_BREAKS = ("Cc", "Zl", "Zp")  # control characters, line and paragraph separators


def missing_reason(path: str | Path) -> str:
    """Why `path` is not there: a link loop, a broken link (and its target) or no such file."""
    p = Path(path)
    if p.is_symlink():
        try:
            os.stat(p)
        except OSError as e:
            if e.errno == errno.ELOOP:
                return "a symbolic link loop"
        return f"a broken link (to {os.readlink(p)})"
    return "file not found"


def hidden_below(path: Path, root: Path) -> bool:
    """Whether `path` or a folder between `root` and it has a dot name (.DS_Store, macOS
    `._clip.mp4` stubs, `.thumbnails/`): every folder scan leaves those out, the same way."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = (path.name,)
    return any(part.startswith(".") for part in parts)
