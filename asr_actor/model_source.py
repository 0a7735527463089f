"""Where a model's files come from: the embedded default, a local folder, an object store, the hub.

Object-store folders (``s3://``, ``gs://``, any fsspec URL) are copied once into the
local cache, only the file kinds a safetensors Whisper needs (no pickled ``.bin``), and
renamed into place when complete so concurrent actors on one node never see half a
copy. This module owns the cache folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from asr_actor.config import OFFLINE_MODEL_ID, ModelConfig

# Files copied from an object-store model folder: configs, tokenizer, safetensors weights.
_WANTED_SUFFIXES = (".json", ".safetensors", ".txt", ".model", ".tiktoken")
OFFLINE_FOLDER = "whisper-tiny.en"  # the converted default, under <cache>/models/


@dataclass(frozen=True)
class ModelSource:
    path: str  # what from_pretrained() is given
    local: bool  # True: load with local_files_only, nothing is downloaded


def default_cache_root() -> Path:
    """``$ASR_BATCH_CACHE``, else ``$XDG_CACHE_HOME/asr-batch``, else ``~/.cache/asr-batch``."""
    if root := os.environ.get("ASR_BATCH_CACHE"):
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asr-batch"


def cache_root(cfg: ModelConfig) -> Path:
    return Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_root()


def offline_model_dir(cfg: ModelConfig) -> Path:
    """Where the converted offline ``tiny.en`` is cached."""
    return cache_root(cfg) / "models" / OFFLINE_FOLDER


def _copy_remote_folder(url: str, dest: Path) -> None:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    files = [f for f in fs.find(root) if f.endswith(_WANTED_SUFFIXES)]
    if not any(f.endswith(".safetensors") for f in files):
        raise FileNotFoundError(f"{url}: no .safetensors weights in this folder (pickled weights are refused)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for f in files:
            target = tmp / Path(f).relative_to(root.rstrip("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(f, str(target))
        try:
            tmp.rename(dest)
        except OSError:
            if not dest.is_dir():  # another actor finished first: keep its copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_model_source(cfg: ModelConfig) -> ModelSource:
    """Map ``cfg.id`` to something ``from_pretrained`` can open, copying remote folders first."""
    if cfg.id == OFFLINE_MODEL_ID:
        from asr_actor.offline.folder import prepare_offline_model

        return ModelSource(str(prepare_offline_model(offline_model_dir(cfg))), local=True)
    if cfg.id.startswith("file://"):
        return ModelSource(cfg.id[len("file://") :], local=True)
    if "://" in cfg.id:
        key = hashlib.sha256(f"{cfg.id}@{cfg.revision}".encode()).hexdigest()[:16]
        dest = cache_root(cfg) / "remote-models" / key
        if not dest.is_dir():
            _copy_remote_folder(cfg.id, dest)
        return ModelSource(str(dest), local=True)
    folder = Path(cfg.id).expanduser()
    if folder.is_dir():
        return ModelSource(str(folder), local=True)
    return ModelSource(cfg.id, local=False)  # a hub id: transformers downloads and caches it
