"""Hugging Face Hub ids ("facebook/timesformer-base-finetuned-k400") to a local model folder.

`resolve(name)` downloads (or finds in the cache) only the files a Timesformer folder needs:
config.json, preprocessor_config.json and the weights (model.safetensors / pytorch_model.bin,
sharded or not). The cache is the Hub's own (`HF_HUB_CACHE`, else `HF_HOME/hub`, else
~/.cache/huggingface/hub), read at call time; `HF_HUB_OFFLINE=1` never touches the network.
A local path always wins over a Hub id of the same spelling (the caller checks it first).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ALLOW_PATTERNS = [
    "config.json",
    "preprocessor_config.json",
    "*.safetensors",
    "pytorch_model.bin",
    "*.index.json",
]
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


class HubError(FileNotFoundError):
    """A Hub id that could not be resolved (offline and not cached, unknown repo, network)."""


def is_hub_id(name: str | os.PathLike) -> bool:
    """ "org/name" with no suffix on the name part and not an absolute or relative path."""
    s = str(name)
    if not _ID.match(s) or s.startswith((".", "~")):
        return False
    return not Path(s).suffix or Path(s).suffix.lower() not in (
        ".pt", ".pth", ".pyth", ".bin", ".safetensors", ".ckpt",
    )  # fmt: skip


def cache_dir() -> Path:
    """The Hub cache folder, from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expanduser(os.environ["HF_HUB_CACHE"]))
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(os.path.expanduser(home)) / "hub"


def offline() -> bool:
    """HF_HUB_OFFLINE set to a true value (1, true, yes, on)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve(repo_id: str, revision: str | None = None) -> Path:
    """The local snapshot folder of `repo_id`, downloading the model files when allowed."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - a declared dependency
        raise HubError(f"{repo_id}: huggingface_hub is not installed") from None
    cache, off = cache_dir(), offline()
    try:
        path = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=ALLOW_PATTERNS,
            cache_dir=str(cache),
            local_files_only=off,
        )
    except Exception as e:  # noqa: BLE001 - the Hub raises many types; the user needs one line
        name = type(e).__name__
        if off or "LocalEntryNotFound" in name or "Offline" in name:
            raise HubError(
                f"{repo_id}: not in the Hugging Face cache {cache}"
                + (" and HF_HUB_OFFLINE=1 forbids downloading" if off else " and not reachable")
                + "; run once online without HF_HUB_OFFLINE, or point HF_HUB_CACHE / HF_HOME at "
                "a cache that holds it, or pass a local folder"
            ) from None
        if "RepositoryNotFound" in name or "RevisionNotFound" in name:
            raise HubError(f"{repo_id}: no such model on the Hugging Face Hub") from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else name
        raise HubError(
            f"{repo_id}: could not download from the Hugging Face Hub ({first})"
        ) from None
    return Path(path)
