"""Where a model's files come from: the embedded default, a local folder, an object store, the hub.

Two uses. :func:`read_model_files` reads a model's small JSON files and the identity
of its weights without loading or copying any weight (the driver's preflight, before
any run folder is written). :func:`resolve_model_source` gives ``from_pretrained``
something to open: object-store folders (``s3://``, ``gs://``, any fsspec URL) are
copied once into the local cache, only the file kinds a safetensors Whisper needs (no
pickled ``.bin``), and renamed into place when complete so concurrent actors on one
node never see half a copy. This module owns the cache folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asr_actor.config import OFFLINE_MODEL_ID, ModelConfig
from asr_actor.errors import AsrBatchError, describe, redact
from asr_actor import storage
from asr_actor.storage import Store, listed_tag

# Files copied from an object-store model folder: configs, tokenizer, safetensors weights.
_WANTED_SUFFIXES = (".json", ".safetensors", ".txt", ".model", ".tiktoken")
WEIGHTS_SUFFIX = ".safetensors"


HUB_UNREACHABLE = (f"the Hugging Face hub cannot be reached and the model is not in its cache; without network "
                   f"use the model {OFFLINE_MODEL_ID} (the embedded tiny.en) or a local model folder")


def hub_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says: no network, or HF_HUB_OFFLINE, and not in the hub cache."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, LocalEntryNotFoundError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class ModelSourceError(AsrBatchError):
    """The model's files cannot be found or read; the message names the model and the cause."""


@dataclass(frozen=True)
class ModelSource:
    path: str  # what from_pretrained() is given
    local: bool  # True: load with local_files_only, nothing is downloaded


@dataclass(frozen=True)
class ModelFiles:
    """What the small files of a model say, read without touching its weights."""

    config: dict[str, Any]  # config.json
    preprocessor: dict[str, Any]  # preprocessor_config.json
    weights_id: str  # identity of the weights: hub commit, content hash, ETags or sizes and mtimes
    revision: str | None  # the hub commit to load (pinned for every actor); None off the hub


def default_cache_root() -> Path:
    """``$ASR_BATCH_CACHE``, else ``$XDG_CACHE_HOME/asr-batch``, else ``~/.cache/asr-batch``."""
    if root := os.environ.get("ASR_BATCH_CACHE"):
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asr-batch"


def cache_root(cfg: ModelConfig) -> Path:
    return Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_root()


def offline_model(cfg: ModelConfig) -> Any:
    """The :class:`~asr_actor.offline.sources.OfflineModel` ``cfg.id`` names (``offline:tiny.en``, ``offline:base``), or None."""
    from asr_actor.offline.sources import OFFLINE_MODELS

    return OFFLINE_MODELS.get(cfg.id)


def offline_model_dir(cfg: ModelConfig) -> Path:
    """Where the converted offline model ``cfg.id`` names (else the default, ``tiny.en``) is cached."""
    from asr_actor.offline.sources import TINY_EN

    return cache_root(cfg) / "models" / (offline_model(cfg) or TINY_EN).folder


def _short_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _relative(uri: str, folder: str) -> str:
    """``uri``'s path below ``folder`` (both as :meth:`Store.find` names them)."""
    return uri[len(folder) + 1 :]


def _copy_remote_folder(url: str, dest: Path, store: Store) -> None:
    files = {u: info for u, info in store.find(url).items() if u.endswith(_WANTED_SUFFIXES)}
    if not any(u.endswith(WEIGHTS_SUFFIX) for u in files):
        raise ModelSourceError(f"{url}: no .safetensors weights in this folder (pickled weights are refused)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for uri, info in files.items():
            target = tmp / _relative(uri, storage.listed_uri(url))
            target.parent.mkdir(parents=True, exist_ok=True)
            store.download(uri, str(target), int(info.get("size") or 0))
        try:
            tmp.rename(dest)
        except OSError:
            if not dest.is_dir():  # another actor finished first: keep its copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _offline_folder(cfg: ModelConfig) -> Path:
    from asr_actor.offline.folder import prepare_offline_model

    return prepare_offline_model(offline_model_dir(cfg), offline_model(cfg))


def resolve_model_source(cfg: ModelConfig, store: Store = Store()) -> ModelSource:
    """Map ``cfg.id`` to something ``from_pretrained`` can open, copying remote folders first (through ``store``)."""
    if cfg.dummy:
        from asr_actor.dummy import dummy_folder

        return ModelSource(str(dummy_folder(cfg)), local=True)
    if offline_model(cfg) is not None:
        return ModelSource(str(_offline_folder(cfg)), local=True)
    if cfg.id.startswith("file://"):
        return ModelSource(cfg.id[len("file://") :], local=True)
    if "://" in cfg.id:
        dest = cache_root(cfg) / "remote-models" / _short_hash(f"{cfg.id}@{cfg.revision}")
        if not dest.is_dir():
            _copy_remote_folder(cfg.id, dest, store)
        return ModelSource(str(dest), local=True)
    folder = Path(cfg.id).expanduser()
    if folder.is_dir():
        return ModelSource(str(folder), local=True)
    return ModelSource(cfg.id, local=False)  # a hub id: transformers downloads and caches it


def _read_json(store: Store, uri: str, shown: str) -> dict[str, Any]:
    try:
        return json.loads(store.read_bytes(uri))
    except FileNotFoundError:
        raise ModelSourceError(f"{shown}: no such file; is this a Whisper model folder?") from None
    except (OSError, ValueError) as exc:
        raise ModelSourceError(f"{shown}: cannot read it ({type(exc).__name__}: {describe(exc)})") from exc


def _folder_files(url: str, store: Store) -> ModelFiles:
    """A local or object-store folder: its JSON files and its weights' identity (ETags, else sizes + mtimes)."""
    shown = redact(url.rstrip("/"))
    root = storage.listed_uri(url)
    try:
        weights = {u: info for u, info in store.find(root).items() if u.endswith(WEIGHTS_SUFFIX)}
    except OSError as exc:
        raise ModelSourceError(f"{shown}: cannot list the model folder ({describe(exc)})") from exc
    if not weights:
        raise ModelSourceError(f"{shown}: no .safetensors weights in this folder (pickled weights are refused)")
    # listed_tag as it comes (not object_tag's string): the identities recorded by earlier runs stay the same
    identity = {_relative(u, root): [info.get("size"), listed_tag(info)] for u, info in weights.items()}
    config, pre = (_read_json(store, storage.join(root, name), f"{shown}/{name}")
                   for name in ("config.json", "preprocessor_config.json"))
    return ModelFiles(config, pre, weights_id=_short_hash(identity), revision=None)


def _hub_files(cfg: ModelConfig) -> ModelFiles:
    """A hub id: only the two JSON files are downloaded; the commit they came from pins the weights."""
    from huggingface_hub import hf_hub_download

    paths = {}
    for name in ("config.json", "preprocessor_config.json"):
        try:
            paths[name] = Path(hf_hub_download(cfg.id, name, revision=cfg.revision))
        except Exception as exc:  # noqa: BLE001 - network, auth, missing repo: all mean "cannot use this model"
            if hub_unreachable(exc):
                raise ModelSourceError(f"model {cfg.id!r}: {HUB_UNREACHABLE}") from exc
            raise ModelSourceError(
                f"model {cfg.id!r}: cannot get {name} from the Hugging Face hub or its cache "
                f"({type(exc).__name__}: {describe(exc)})"
            ) from exc
    commit = paths["config.json"].parent.name  # <cache>/snapshots/<commit>/config.json
    read = {name: json.loads(path.read_text(encoding="utf-8")) for name, path in paths.items()}
    return ModelFiles(read["config.json"], read["preprocessor_config.json"], weights_id=commit, revision=commit)


def read_model_files(cfg: ModelConfig, store: Store = Store()) -> ModelFiles:
    """The model's ``config.json`` and ``preprocessor_config.json`` and its weights' identity.

    Nothing is loaded and no weight is copied. The offline default is converted here if
    its cache is cold (its identity is the packaged source's SHA-256). Dummy weights are
    named by their shape and seed.
    """
    if cfg.dummy:
        from asr_actor.dummy import dummy_folder

        folder = dummy_folder(cfg)
        config, pre = (json.loads((folder / n).read_text()) for n in ("config.json", "preprocessor_config.json"))
        return ModelFiles(config, pre, weights_id=folder.name, revision=None)
    if offline_model(cfg) is not None:
        from asr_actor.offline.folder import CONVERTER_VERSION, read_marker

        folder = _offline_folder(cfg)
        marker = read_marker(folder) or {}
        files = _folder_files(str(folder), store)
        source = (marker.get("source") or {}).get("sha256", "")[:16]
        return ModelFiles(files.config, files.preprocessor, f"{source}-c{CONVERTER_VERSION}", None)
    if "://" in cfg.id or Path(cfg.id).expanduser().is_dir():
        return _folder_files(cfg.id if "://" in cfg.id else str(Path(cfg.id).expanduser()), store)
    if cfg.id.startswith((".", "/", "~")):
        raise ModelSourceError(f"model folder {cfg.id!r} does not exist")
    return _hub_files(cfg)
