"""`timesformer data lists`: train/val/test list files and labels.txt from what people have.

Three sources, one output format (what ``read_list_file`` reads and training uses directly):

- a folder-per-class tree ``SRC/<class>/<video>``: classes sorted by name, each class split
  on its own (stratified) by the ratios, after a shuffle seeded by ``seed``;
- Kinetics annotation CSVs (``label,youtube_id,time_start,time_end,split``): videos matched as
  ``{youtube_id}_{time_start:06d}_{time_end:06d}.<ext>`` (or ``{youtube_id}.<ext>``) anywhere
  under the videos folder, the split from the ``split`` column (else the file name), class ids
  by sorted class name as the Kinetics releases number them;
- Something-Something v2 JSON: the labels file maps template -> id; each entry's
  ``template`` with its ``[something]`` brackets removed is its class; videos ``{id}.<ext>``.

Written: ``train.csv``, ``val.csv``, ``test.csv`` (``path,label`` with a header, paths relative
to the output folder, ids as labels; a split with no videos is not written), ``labels.txt``
(one class name per line, line i = id i) and, when annotations have no video, ``missing.csv``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..files import OutputError, atomic_write_text, ensure_dir, hidden_below, read_text
from .datasets import scan_folder
from .video import VIDEO_EXTENSIONS

SPLITS = ("train", "val", "test")
_SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                "validate": "val", "validation": "val", "test": "test", "testing": "test"}  # fmt: skip
KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")

Splits = dict[str, list[tuple[str, int]]]


def parse_split(text: str) -> tuple[float, ...]:
    """ "0.8,0.1,0.1" -> (0.8, 0.1, 0.1): two or three non-negative fractions summing to 1."""
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) not in (2, 3) or any(p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        raise ValueError(
            f"--split: expected 2 or 3 non-negative fractions train,val[,test] summing to 1, "
            f"got {text!r}"
        )
    return parts


def split_stratified(
    samples: Sequence[tuple[str, int]], ratios: Sequence[float], seed: int = 0
) -> Splits:
    """Split each class on its own: shuffle (seeded), then cut val and test by ratio.

    Val and test take ``round(n * ratio)`` videos of a class of ``n``, but a class always keeps
    at least one training video.
    """
    by_class: dict[int, list[str]] = {}
    for path, label in samples:
        by_class.setdefault(label, []).append(path)
    out: Splits = {s: [] for s in SPLITS}
    rng = random.Random(seed)
    for label in sorted(by_class):
        files = sorted(by_class[label])
        rng.shuffle(files)
        n = len(files)
        n_val = round(n * ratios[1])
        n_test = round(n * ratios[2]) if len(ratios) > 2 else 0
        while n_val + n_test > n - 1 and n_val + n_test > 0:  # keep one for training
            if n_test >= n_val:
                n_test -= 1
            else:
                n_val -= 1
        cut = [n - n_val - n_test, n - n_test]
        for split, part in zip(SPLITS, (files[: cut[0]], files[cut[0] : cut[1]], files[cut[1] :])):
            out[split].extend((p, label) for p in part)
    return out


def from_folder(
    src: str | Path, ratios: Sequence[float], seed: int = 0
) -> tuple[Splits, list[str]]:
    """A folder-per-class tree -> (splits, class names)."""
    samples, classes = scan_folder(src)
    return split_stratified(samples, ratios, seed), classes


def index_videos(videos: str | Path) -> dict[str, str]:
    """File stem -> path for every video below ``videos`` (.mp4 preferred over other suffixes)."""
    root = Path(videos)
    if not root.is_dir():
        raise FileNotFoundError(f"videos folder not found: {root}")
    rank = {e: i for i, e in enumerate(VIDEO_EXTENSIONS)}
    found: dict[str, tuple[int, str]] = {}
    for p in root.rglob("*"):
        r = rank.get(p.suffix.lower())
        if r is None or hidden_below(p, root) or not p.is_file():
            continue
        if p.stem not in found or r < found[p.stem][0]:
            found[p.stem] = (r, str(p))
    return {k: v for k, (_, v) in found.items()}


def _split_of(value: str | None, file: Path) -> str:
    if value:
        split = _SPLIT_NAMES.get(value.strip().lower())
        if split is None:
            raise ValueError(f"{file}: unknown split {value!r} (expected train, val or test)")
        return split
    for word, split in (("train", "train"), ("val", "val"), ("test", "test")):
        if word in file.stem.lower():
            return split
    raise ValueError(f"{file}: no split given and the file name says neither train, val nor test")


def _read_kinetics(file: Path) -> list[dict[str, str]]:
    if not file.exists():
        raise FileNotFoundError(f"Kinetics CSV not found: {file}")
    want = f"CSV rows {','.join(KINETICS_COLUMNS)}[,split]"
    with io.StringIO(read_text(file, "Kinetics CSV", want), newline="") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        for c in KINETICS_COLUMNS:
            if c not in columns:
                raise ValueError(
                    f"{file}: no column {c!r} (columns: {', '.join(columns) or 'none'}; expected "
                    f"{','.join(KINETICS_COLUMNS)}[,split])"
                )
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]


def from_kinetics(
    csv_files: Sequence[str | Path], videos: str | Path
) -> tuple[Splits, list[str], list[dict[str, str]]]:
    """Kinetics annotation CSVs -> (splits, sorted class names, missing annotations)."""
    index = index_videos(videos)
    tables = [(Path(f), _read_kinetics(Path(f))) for f in csv_files]
    classes = sorted({row["label"] for _, rows in tables for row in rows})
    ids = {c: i for i, c in enumerate(classes)}
    splits: Splits = {s: [] for s in SPLITS}
    missing: list[dict[str, str]] = []
    for file, rows in tables:
        for n, row in enumerate(rows, 2):
            try:
                start, end = int(float(row["time_start"])), int(float(row["time_end"]))
            except ValueError:
                raise ValueError(
                    f"{file}:{n}: time_start/time_end must be numbers, got "
                    f"{row['time_start']!r}, {row['time_end']!r}"
                ) from None
            split = _split_of(row.get("split"), file)
            stem = f"{row['youtube_id']}_{start:06d}_{end:06d}"
            path = index.get(stem) or index.get(row["youtube_id"])
            if path is None:
                missing.append({"split": split, "label": row["label"], "video": stem})
                continue
            splits[split].append((path, ids[row["label"]]))
    return splits, classes, missing


def _load_json(file: Path, what: str) -> Any:
    if not file.exists():
        raise FileNotFoundError(f"{what} not found: {file}")
    try:
        return json.loads(read_text(file, what, "JSON"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {file} is not valid JSON: {e}") from None


def from_ssv2(
    json_files: Sequence[str | Path], labels_file: str | Path, videos: str | Path
) -> tuple[Splits, list[str], list[dict[str, str]]]:
    """Something-Something v2 JSON -> (splits, class names by id, missing annotations)."""
    labels_file = Path(labels_file)
    table = _load_json(labels_file, "SSv2 labels JSON")
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{labels_file}: expected an object mapping template -> id")
    try:
        ids = {str(k): int(v) for k, v in table.items()}
    except (TypeError, ValueError):
        raise ValueError(f'{labels_file}: ids must be integers (as strings), e.g. "0"') from None
    if sorted(ids.values()) != list(range(len(ids))):
        raise ValueError(f"{labels_file}: ids must be 0..{len(ids) - 1}, each once")
    classes = [name for name, _ in sorted(ids.items(), key=lambda kv: kv[1])]
    index = index_videos(videos)
    splits: Splits = {s: [] for s in SPLITS}
    missing: list[dict[str, str]] = []
    for f in json_files:
        file = Path(f)
        entries = _load_json(file, "SSv2 annotation JSON")
        if not isinstance(entries, list):
            raise ValueError(f"{file}: expected a list of entries with 'id' and 'template'")
        split = _split_of(None, file)
        for n, e in enumerate(entries):
            if not isinstance(e, dict) or "id" not in e or "template" not in e:
                raise ValueError(f"{file}: entry {n} has no 'id' and 'template' (a test file?)")
            name = str(e["template"]).replace("[", "").replace("]", "")
            if name not in ids:
                raise ValueError(f"{file}: entry {n}: template {name!r} is not in {labels_file}")
            path = index.get(str(e["id"]))
            if path is None:
                missing.append({"split": split, "label": name, "video": str(e["id"])})
                continue
            splits[split].append((path, ids[name]))
    return splits, classes, missing


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _refuse_foreign_files(out: Path) -> None:
    """OutputError naming a file in ``out`` that ``write_lists`` would replace or remove but
    did not write: a list of another format (a synthetic dataset's, say) or a labels.txt."""
    headers = {f"{s}.csv": "path,label" for s in SPLITS} | {"missing.csv": "split,label,video"}
    ours = False
    for name, header in headers.items():
        path = out / name
        if not path.is_file():
            continue
        with open(path, "rb") as f:
            head = f.read(64 * 1024)
        first = head.split(b"\n", 1)[0].strip().decode("utf-8", errors="replace")
        if head.strip() and first != header:
            raise OutputError(
                f"{path} exists and is not a list `data lists` wrote (those begin {header}); "
                "choose another --out, or remove it first"
            )
        ours = ours or name != "missing.csv"
    labels = out / "labels.txt"
    if labels.is_file() and labels.stat().st_size and not ours:
        raise OutputError(
            f"{labels} exists beside no list `data lists` wrote, so it is not one of its "
            "outputs; choose another --out, or remove it first"
        )


def write_lists(
    out: str | Path,
    splits: Splits,
    classes: Sequence[str],
    missing: Sequence[dict[str, str]] = (),
) -> dict[str, str]:
    """Write the list files (module doc) into ``out``; returns {name: path written}.

    The files of one call are one consistent set: a split this call leaves empty has its
    ``{split}.csv`` from an earlier run removed (it would hold videos now in another split), as
    is an old ``missing.csv`` when nothing is missing. Files of those names that an earlier
    call did not write (another header; a ``labels.txt`` beside none of these lists) are
    neither replaced nor removed: OutputError, before anything is written."""
    out = ensure_dir(out)
    _refuse_foreign_files(out)
    written: dict[str, str] = {}
    for split in SPLITS:
        rows = [(os.path.relpath(p, out), y) for p, y in splits.get(split, [])]
        if rows:
            written[split] = str(
                atomic_write_text(out / f"{split}.csv", _csv_text(("path", "label"), rows))
            )
        else:
            (out / f"{split}.csv").unlink(missing_ok=True)
    if not missing:
        (out / "missing.csv").unlink(missing_ok=True)
    written["labels"] = str(
        atomic_write_text(out / "labels.txt", "".join(f"{c}\n" for c in classes))
    )
    if missing:
        rows = [(m["split"], m["label"], m["video"]) for m in missing]
        written["missing"] = str(
            atomic_write_text(out / "missing.csv", _csv_text(("split", "label", "video"), rows))
        )
    return written
