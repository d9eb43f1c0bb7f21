"""`timesformer extract` on disk: sharded across torchrun ranks and nodes, resumable.

Layout of the output folder DIR (the same set of files whatever the number of processes):

    DIR/features/<name>.npy   one array per video: (D,) or (windows, D)
    DIR/index.jsonl           one JSON object per video, in input order
    DIR/run.json              the settings (and the weights' SHA-256) the features were made with

`<name>` is the input's name (its relative path under a folder input) without the video
suffix; two inputs with the same name get `__2`, `__3`, ... in input order, and so does an
input whose name DIR already holds for another file. Earlier videos of DIR that a run does not
name stay in the index (a dataset extracted in batches).

Scale: each rank takes a disjoint share of the videos still to do, balanced by duration
(greedy: longest first into the lightest rank, ties by position, so every rank computes the
same split), writes its feature files and appends one line per finished video to its part
file `DIR/parts/rank-<r>.jsonl`. After all ranks are done (a gloo all-gather, which is the
barrier), rank 0 merges the part files into index.jsonl and removes them. A rank that stops
on an error still joins the merge, and its unfinished videos are listed with status failed.
Resume: a rerun skips every video whose feature file exists and whose record says ok (in
index.jsonl or a part file left by an interrupted run), of the file's recorded size, and
redoes the rest.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from torch import nn

from ..data.inputs import VIDEO_EXTENSIONS, VideoInput, expand_inputs
from ..files import atomic_write, atomic_write_text, ensure_dir
from ..models.integrity import payload_digest
from ..models.preprocess import Preprocess
from . import distributed as D
from .extract import clip_settings, iter_extract, parse_views
from .runtime import autocast

INDEX = "index.jsonl"
RUN = "run.json"
PARTS = "parts"
FEATURES = "features"


@dataclass
class ExtractSummary:
    """What a run did (on rank 0: over all ranks)."""

    out: str
    videos: int
    ok: int
    failed: int
    skipped: int  # complete from an earlier run
    clips: int  # model inputs run (clips x crops)
    seconds: float
    world_size: int = 1
    failures: list[dict[str, str]] = field(default_factory=list)  # {"video", "error"}
    per_rank: list[int] = field(default_factory=list)  # videos each rank processed this run
    # video -> the traceback of its failure in this run (not in to_dict: for --debug)
    tracebacks: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def clips_per_s(self) -> float:
        return self.clips / self.seconds if self.seconds > 0 else 0.0

    @property
    def videos_per_s(self) -> float:
        done = self.ok + self.failed - self.skipped
        return max(done, 0) / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["tracebacks"]
        d["clips_per_s"], d["videos_per_s"] = self.clips_per_s, self.videos_per_s
        d["index"] = str(Path(self.out) / INDEX)
        return d


# ---------------------------------------------------------------------------- names and shares
def feature_names(
    inputs: Sequence[VideoInput], records: Sequence[dict[str, Any]] = ()
) -> list[str]:
    """Output names (relative, POSIX, without the video suffix), unique in input order.

    `records` are the folder's earlier records: an input whose file one of them names (the
    same resolved path) keeps that record's name, even when given under another folder now,
    so it is neither extracted again nor listed twice; a name an earlier record holds for
    another video is not reused.
    """
    held: dict[str, list[Any]] = {}  # lower-case name -> paths of earlier records
    own: dict[str, list[str]] = {}  # resolved path -> names of its earlier records
    for rec in records:
        name = _record_name(rec)
        if name is not None:
            held.setdefault(name.lower(), []).append(rec.get("path"))
            if isinstance(rec.get("path"), str):
                own.setdefault(_resolved(rec["path"]), []).append(name)
    seen: set[str] = set()
    out: list[str] = []
    for v in inputs:
        stem = _stem(v)
        prior = [n for n in own.get(_resolved(v.path), []) if n.lower() not in seen] if own else []
        if prior:  # its own name if it had that, else the first name it was given
            name = stem if stem in prior else prior[0]
            seen.add(name.lower())
            out.append(name)
            continue
        name, k = stem, 2
        while name.lower() in seen or (
            name.lower() in held and not any(same_path(p, v.path) for p in held[name.lower()])
        ):  # case-insensitive: safe on macOS and Windows folders too
            name, k = f"{stem}__{k}", k + 1
        seen.add(name.lower())
        out.append(name)
    return out


def _stem(v: VideoInput) -> str:
    parts = [p for p in PurePosixPath(str(v.name).replace("\\", "/")).parts
             if p not in ("", ".", "..", "/")]  # fmt: skip
    if not parts:
        parts = [Path(v.path).name or "video"]
    last = PurePosixPath(parts[-1])
    if last.suffix.lower() in VIDEO_EXTENSIONS:
        parts[-1] = last.stem
    return "/".join(parts)


def _resolved(path: str | Path) -> str:
    """The path with links and `..` resolved (as given when that fails)."""
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return str(path)


def _file_bytes(path: str | Path) -> int | None:
    """The video file's size in bytes (None when it cannot be read)."""
    try:
        return os.path.getsize(path)
    except (OSError, ValueError):
        return None


def _record_name(rec: dict[str, Any]) -> str | None:
    """The output name of a record ("features/<name>.npy" -> <name>); None if malformed."""
    feat = rec.get("feature")
    if isinstance(feat, str) and feat.startswith(FEATURES + "/") and feat.endswith(".npy"):
        return feat[len(FEATURES) + 1 : -4]
    return None


def same_path(recorded: Any, path: str | Path) -> bool:
    """Whether a record's path names the file `path` (as given, or the same file resolved);
    a record without a path (written by hand or by an old version) matches by name alone."""
    if recorded is None or recorded == str(path):
        return True
    if not isinstance(recorded, str):
        return False
    try:
        return os.path.realpath(recorded) == os.path.realpath(path)
    except (OSError, ValueError):
        return False


def assign_shards(durations: Sequence[float], world_size: int) -> list[list[int]]:
    """Disjoint shares of the positions 0..n-1, balanced by duration (longest first into the
    lightest rank, ties by position and rank): deterministic, so every rank agrees."""
    loads = [0.0] * world_size
    shares: list[list[int]] = [[] for _ in range(world_size)]
    for i in sorted(range(len(durations)), key=lambda i: (-durations[i], i)):
        r = min(range(world_size), key=lambda r: (loads[r], r))
        shares[r].append(i)
        loads[r] += max(durations[i], 1e-3)
    return [sorted(s) for s in shares]


def probe_duration(path: str | Path) -> float:
    """Seconds of video from the container header (no decoding); 0 when unreadable."""
    import av

    from ..data.video import video_stream

    try:
        with av.open(str(path), metadata_errors="ignore") as c:
            s = video_stream(c)
            if s is not None:
                if s.duration is not None and s.time_base is not None:
                    return float(s.duration * s.time_base)
            if c.duration is not None:
                return float(c.duration) / 1e6
    except Exception:  # noqa: BLE001 - a bad file fails later, with its reason, in a worker
        return 0.0
    return os.path.getsize(path) / 1e6 if os.path.isfile(path) else 0.0


# ---------------------------------------------------------------------------- records
def read_records(out: Path) -> list[dict[str, Any]]:
    """Every record of index.jsonl and the part files, oldest first (unreadable lines skipped)."""
    files = [out / INDEX]
    parts = out / PARTS
    if parts.is_dir():
        files += sorted(parts.glob("rank-*.jsonl"))
    return [rec for f in files for rec in _read_jsonl(f)]


def _read_jsonl(f: Path) -> list[dict[str, Any]]:
    if not f.is_file():
        return []
    recs: list[dict[str, Any]] = []
    for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
        if isinstance(rec, dict) and isinstance(rec.get("video"), str):
            recs.append(rec)
    return recs


def _is_complete(out: Path, rec: dict[str, Any]) -> bool:
    """Whether the record's feature file is on disk with the record's shape."""
    try:
        arr = np.load(out / str(rec.get("feature")), mmap_mode="r")
    except (OSError, ValueError):
        return False
    return list(arr.shape) == rec.get("shape")


def complete_records(
    out: Path, names: Sequence[str], inputs: Sequence[VideoInput] | None = None
) -> dict[str, dict[str, Any]]:
    """name -> the ok record of each of `names` complete on disk (file present, its shape;
    with `inputs`, names[i]'s record must also be of the video inputs[i], and of its present
    size in bytes when the record has one: a video replaced since is extracted again)."""
    pos = {n: i for i, n in enumerate(names)}
    done: dict[str, dict[str, Any]] = {}
    for rec in read_records(out):
        n = _record_name(rec)
        if rec.get("status") != "ok" or n not in pos:
            continue
        if inputs is not None:
            path = inputs[pos[n]].path
            if not same_path(rec.get("path"), path):
                continue
            if rec.get("bytes") is not None and rec["bytes"] != _file_bytes(path):
                continue
        if _is_complete(out, rec):
            done[n] = rec
    return done


def merge_index(
    out: Path,
    inputs: Sequence[VideoInput],
    names: Sequence[str],
    rank_errors: dict[int, str] | None = None,
) -> list[dict[str, Any]]:
    """Write index.jsonl and remove the part files; return this run's records, one per input
    (ok if complete on disk, else the last failure seen, else failed as not processed).

    The index keeps the folder's earlier videos that this run did not name (a dataset
    extracted in batches into one folder): the old index's order first, then this run's new
    videos in input order, then videos only an interrupted earlier run's part files list.
    """
    records = read_records(out)
    done = complete_records(out, names, inputs)
    failed: dict[str, dict[str, Any]] = {}
    for rec in records:
        n = _record_name(rec)
        if rec.get("status") == "failed" and n is not None:
            failed[n] = rec
    why = "; ".join(f"rank {r} stopped: {e}" for r, e in sorted((rank_errors or {}).items()))
    lines: dict[str, dict[str, Any]] = {}
    for v, n in zip(inputs, names):
        rec = done.get(n) or failed.get(n)
        if rec is None:
            rec = {"video": str(v.name), "feature": f"{FEATURES}/{n}.npy", "shape": None,
                   "status": "failed", "path": str(v.path),
                   "error": f"not processed ({why or 'no record'})"}  # fmt: skip
        lines[n] = rec
    earlier: dict[str, dict[str, Any]] = {}  # videos of earlier runs that this run did not name
    for rec in records:
        n = _record_name(rec)
        if n is None or n in lines:
            continue
        if n not in earlier or rec.get("status") == "ok" or earlier[n].get("status") != "ok":
            earlier[n] = rec
    for n, rec in earlier.items():
        if rec.get("status") == "ok" and not _is_complete(out, rec):
            earlier[n] = {**rec, "status": "failed",
                          "error": "feature file missing or incomplete; extract it again"}  # fmt: skip
    order = [_record_name(r) for r in _read_jsonl(out / INDEX)]
    order += list(lines) + list(earlier)
    seen: set[str] = set()
    rows = []
    for n in order:
        if n is None or n in seen:
            continue
        seen.add(n)
        rows.append(lines.get(n) or earlier[n])
    atomic_write_text(out / INDEX, "".join(json.dumps(r) + "\n" for r in rows))
    parts = out / PARTS
    if parts.is_dir():
        for f in parts.glob("rank-*.jsonl"):
            f.unlink()
        try:
            parts.rmdir()
        except OSError:
            pass
    return list(lines.values())


def _append(part: Path, rec: dict[str, Any]) -> None:
    """One record line, flushed to disk before the next video starts. A line cut by a crash
    (no newline at the end of the file) is closed first, so it cannot swallow this record."""
    line = (json.dumps(rec) + "\n").encode("utf-8")
    with open(part, "a+b") as f:  # appends go to the end whatever the read position
        if f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = b"\n" + line
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def _save_array(path: Path, arr: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, arr)

    atomic_write(path, write)


def _remove_stale_temps(feats: Path) -> None:
    """Remove the temporary files of feature writes that a killed run left half-written
    (`files.atomic_write` names them .<name>.npy.<random>.tmp.npy beside their target)."""
    if not feats.is_dir():
        return
    for f in feats.rglob(".*.npy.*.tmp.npy"):
        try:
            f.unlink()
        except OSError:
            pass  # gone already, or not ours to remove: it is never read as a feature


def _check_run(out: Path, run: dict[str, Any]) -> None:
    """Refuse to mix features made with different settings in one folder."""
    f = out / RUN
    old, damage = _read_run(f) if f.is_file() else ({}, "is missing")
    if damage is not None:
        if _holds_features(out):  # the earlier features' weights cannot be told: refuse
            raise ValueError(
                f"output folder {out}: {RUN} {damage}, so the weights and settings that made "
                f"the features there cannot be told; choose another --out, or delete its "
                f"{FEATURES}/, {INDEX} and {RUN} to extract again"
            )
        return  # no features yet: this run writes a new run.json
    settings = old["settings"]
    diff = [k for k in run if k in settings and settings[k] != run[k]]
    if diff == ["weights"]:  # other --frames / --size change the weights too: name those first
        was = str(settings["weights"])[:12]
        ck = f" (checkpoint {old['checkpoint']})" if old.get("checkpoint") else ""
        raise ValueError(
            f"output folder {out} holds features of other weights{ck}: sha256 {was}..., not "
            f"{str(run['weights'])[:12]}...; choose another --out or delete it"
        )
    if diff:
        k = diff[0]  # a setting (never "weights": it comes last)
        raise ValueError(
            f"output folder {out} holds features made with {k}={settings[k]!r}, not "
            f"{run[k]!r}; choose another --out or delete it"
        )


def _read_run(f: Path) -> tuple[dict[str, Any], str | None]:
    """run.json's object and None, or ({}, what is wrong with it) when it cannot be used."""
    try:
        old = json.loads(f.read_text(encoding="utf-8"))
    except OSError as e:
        return {}, f"cannot be read ({e.strerror or e})"
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}, "is damaged (not valid JSON)"
    if not isinstance(old, dict):
        return {}, f"is damaged (JSON {type(old).__name__}, expected an object)"
    if not isinstance(old.get("settings"), dict):
        return {}, 'is damaged (no "settings" object)'
    return old, None


def _holds_features(out: Path) -> bool:
    """Whether `out` already holds feature files or records of an earlier run."""
    feats = out / FEATURES
    return (feats.is_dir() and any(feats.rglob("*.npy"))) or bool(read_records(out))


def _video_inputs(inputs: Any) -> list[VideoInput]:
    """`VideoInput`s as given; paths (files, folders, list files, globs) expanded."""
    if isinstance(inputs, (str, Path, VideoInput)):
        inputs = [inputs]
    items = list(inputs)
    if all(isinstance(v, VideoInput) for v in items):
        return items
    if not any(isinstance(v, VideoInput) for v in items):
        return expand_inputs([str(v) for v in items])
    return [
        w for v in items for w in ([v] if isinstance(v, VideoInput) else expand_inputs([str(v)]))
    ]


# ---------------------------------------------------------------------------- the run
def _start_group(timeout_s: float) -> bool:
    """Start a gloo process group under torchrun (object collectives only); True if started."""
    import torch.distributed as dist

    _, world, _ = D.env_world()
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        return False
    dist.init_process_group("gloo", timeout=timedelta(seconds=timeout_s))
    return True


def run_extract(
    model: nn.Module,
    inputs: Sequence[VideoInput | str | Path],
    out: str | Path,
    *,
    mode: str = "video",
    views: str | tuple[int, int] | None = None,
    stride: float | None = None,
    pool: str = "cls",
    dtype: str = "fp32",
    batch_size: int = 8,
    device: Any = None,
    amp: str = "off",
    settings: Preprocess | None = None,
    workers: int = 0,
    progress: bool = False,
    info: dict[str, Any] | None = None,
    timeout_s: float = 7 * 24 * 3600.0,
) -> ExtractSummary:
    """Extract `inputs` into `out` (see the module doc); this rank's share under torchrun.

    `info` (e.g. {"checkpoint": ...}) is stored in run.json. Returns the summary (over all
    ranks on rank 0, this rank's elsewhere). Raises on bad settings before any work starts.
    """
    t0 = time.perf_counter()
    inputs = _video_inputs(inputs)
    out = ensure_dir(out)
    st = clip_settings(model, settings)
    K, S = parse_views(views, model, mode)
    run = {"mode": mode, "pool": pool, "dtype": dtype, "views": f"{K}x{S}",
           "stride": stride, "num_frames": st.num_frames, "img_size": st.img_size,
           "sampling_rate": st.sampling_rate, "target_fps": st.target_fps,
           "sampler": st.sampler, "mean": list(st.mean), "std": list(st.std),
           "channel_order": st.channel_order, "short_side": st.short_side,
           "test_protocol": st.test_protocol, "amp": amp,
           "weights": payload_digest(model.state_dict())}  # fmt: skip
    _check_run(out, run)
    dev = device if device is not None else next(model.parameters()).device
    autocast(dev, amp)  # a bad amp for the device: one error before any rank starts work
    started = _start_group(timeout_s)
    try:
        rank, world = (D.env_world()[0], D.env_world()[1]) if D.is_dist() else (0, 1)
        names = feature_names(inputs, read_records(out))  # read by every rank before any write
        done = complete_records(out, names, inputs)
        todo = [i for i, n in enumerate(names) if n not in done]
        if rank == 0:  # no rank writes before the gather below: nothing of this run is removed
            _remove_stale_temps(out / FEATURES)
        mine_probe = {i: probe_duration(inputs[i].path) for i in todo[rank::world]}
        durations: dict[int, float] = {}
        for d in D.all_gather_objects(mine_probe):  # also the barrier before any writing
            durations.update(d)
        if rank == 0:  # before any feature: an interrupted run's folder is claimed too
            atomic_write_text(out / RUN, json.dumps({"settings": run, **(info or {})}, indent=2))
        shares = assign_shards([durations[i] for i in todo], world)
        mine = [todo[j] for j in shares[rank]]
        ensure_dir(out / PARTS)
        part = out / PARTS / f"rank-{rank}.jsonl"
        ok = failed = clips = 0
        failures: list[dict[str, str]] = []
        error: str | None = None
        try:
            for vf in iter_extract(
                model, [inputs[i] for i in mine], mode=mode, views=(K, S), stride=stride,
                pool=pool, dtype=dtype, batch_size=batch_size, device=device, amp=amp,
                settings=st, workers=workers, progress=progress and rank == 0,
            ):  # fmt: skip
                name = names[mine[vf.position]]
                rel = f"{FEATURES}/{name}.npy"
                if vf.ok:
                    _save_array(out / rel, vf.features)  # type: ignore[arg-type]
                    ok += 1
                else:
                    failed += 1
                    failures.append({"video": vf.video, "error": str(vf.error),
                                     "traceback": vf.traceback or ""})  # fmt: skip
                clips += vf.num_clips
                size = _file_bytes(inputs[mine[vf.position]].path)  # a later change: redo it
                _append(part, {**vf.record(rel), "bytes": size})
        except Exception as e:  # noqa: BLE001 - the merge still lists every video
            text = str(e).strip().splitlines()
            error = f"{type(e).__name__}: {text[0] if text else ''}"
        stats = D.all_gather_objects((rank, ok, failed, clips, failures, error))
        rank_errors = {r: e for r, *_, e in stats if e is not None}
        if rank == 0:
            lines = merge_index(out, inputs, names, rank_errors)
            atomic_write_text(out / RUN, json.dumps({"settings": run, **(info or {})}, indent=2))
            bad = [r for r in lines if r.get("status") != "ok"]
            summary = ExtractSummary(
                out=str(out), videos=len(inputs), ok=len(lines) - len(bad), failed=len(bad),
                skipped=len(done), clips=sum(s[3] for s in stats),
                seconds=time.perf_counter() - t0, world_size=world,
                failures=[{"video": r["video"], "error": str(r.get("error"))} for r in bad],
                per_rank=[s[1] + s[2] for s in sorted(stats)],
                tracebacks=_tracebacks(f for s in stats for f in s[4]),
            )  # fmt: skip
        else:
            summary = ExtractSummary(str(out), len(mine), ok, failed, 0, clips,
                                     time.perf_counter() - t0, world,
                                     [{k: f[k] for k in ("video", "error")} for f in failures],
                                     tracebacks=_tracebacks(failures))  # fmt: skip
        D.barrier()  # rank 0 has written the index before anyone returns
        if error is not None:
            raise RuntimeError(f"extract rank {rank} stopped: {error}")
        return summary
    finally:
        if started:
            D.cleanup()


def _tracebacks(failures: Iterable[dict[str, str]]) -> dict[str, str]:
    """{video: traceback} of the failures that carry one."""
    return {f["video"]: f["traceback"] for f in failures if f.get("traceback")}
