"""The offline models (:mod:`asr_actor.offline.sources`) as transformers folders, converted once and cached.

The packages ship the weights in CTranslate2 format; :func:`prepare_offline_model`
converts them once into a transformers folder (float32 safetensors, configs,
tokenizer, feature extractor) behind a marker that records each file's size, mtime
and SHA-256 (and the source's: ``model.bin``'s, and for a model shipped in halves each
half's). A later call checks sizes and mtimes only and re-hashes just a file whose size
or mtime changed, so a warm cache costs a few ``stat`` calls, not a hash of every
weight. Halves are joined into a temporary ``model.bin``, checked against the recorded
SHA-256, converted and removed. Nothing is downloaded. Where the folder lives is
:mod:`asr_actor.model_source`'s concern.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from asr_actor.offline import hf_files as hf
from asr_actor.offline.reader import read_model_bin
from asr_actor.offline.sources import MODEL_BIN, TINY_EN, OfflineModel, OfflineModelMissing
from asr_actor.offline.spec import convert_whisper_spec

CONVERTER_VERSION = 2  # bump when the produced folder (or its marker) changes for the same source
MARKER = ".asr-batch-offline.json"
_CHUNK = 1 << 20  # bytes read at a time while hashing

__all__ = ["OfflineModelMissing", "prepare_offline_model", "read_marker", "source_dir"]


def source_dir(model: OfflineModel = TINY_EN) -> Path:
    """The CTranslate2 folder of a model shipped whole (``tiny.en``: ``model.bin`` beside its config), checked."""
    model.side_dir()
    return model.pieces()[0].parent


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _stat(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def file_record(path: Path) -> dict[str, Any]:
    """What the marker keeps of one file: size, mtime and SHA-256."""
    return {**_stat(path), "sha256": sha256_file(path)}


def _still_holds(path: Path, record: dict[str, Any]) -> bool:
    """``path`` has the recorded content: same size and mtime, or else the same hash."""
    if not path.is_file():
        return False
    if _stat(path) == {k: record.get(k) for k in ("size", "mtime_ns")}:
        return True
    return sha256_file(path) == record.get("sha256")


def read_marker(dest: Path) -> dict[str, Any] | None:
    try:
        return json.loads((dest / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _source_holds(model: OfflineModel, source: dict[str, Any]) -> bool:
    """The installed pieces of ``model.bin`` are those the marker's ``source`` recorded."""
    pieces = model.pieces()
    if model.sha256 is None:
        return _still_holds(pieces[0], source)
    parts = source.get("parts") or {}
    return source.get("sha256") == model.sha256 and all(_still_holds(p, parts.get(p.name) or {}) for p in pieces)


def _is_complete(dest: Path, model: OfflineModel) -> bool:
    marker = read_marker(dest)
    if not marker or marker.get("converter_version") != CONVERTER_VERSION:
        return False
    files: dict[str, dict[str, Any]] = marker.get("files") or {}
    return (
        bool(files)
        and _source_holds(model, marker.get("source") or {})
        and all(_still_holds(dest / name, record) for name, record in files.items())
    )


def _joined(model: OfflineModel, scratch: Path) -> tuple[Path, dict[str, Any]]:
    """``model.bin`` and the marker's record of its source: the shipped file, or the halves joined in
    ``scratch`` and checked against the recorded SHA-256 (:class:`OfflineModelMissing` when they differ)."""
    pieces = model.pieces()
    if model.sha256 is None:
        return pieces[0], file_record(pieces[0])
    digest, joined = hashlib.sha256(), scratch / MODEL_BIN
    with joined.open("wb") as out:
        for piece in pieces:
            with piece.open("rb") as fh:
                while block := fh.read(_CHUNK):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != model.sha256:
        raise model.corrupt(digest.hexdigest())
    return joined, {"sha256": model.sha256, "size": joined.stat().st_size, "parts": {p.name: file_record(p) for p in pieces}}


def _write_folder(model_bin: Path, src: Path, out: Path) -> None:
    """Convert ``model_bin`` (with ``src``'s config, tokenizer and vocabulary) into a transformers folder ``out``."""
    import torch
    from safetensors.torch import save_file

    converted = convert_whisper_spec(read_model_bin(model_bin))
    ct2_config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    vocab = hf.read_vocabulary(src / "vocabulary.txt")
    arch = converted.architecture
    if len(vocab) != arch["vocab_size"]:
        raise OfflineModelMissing(f"{src}/vocabulary.txt has {len(vocab)} tokens, the weights {arch['vocab_size']}")
    tensors = {k: torch.from_numpy(np.array(v)) for k, v in converted.state_dict.items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    hf.write_json(out / "config.json", full_model_config(hf.model_config(arch, vocab)))
    hf.write_json(out / "generation_config.json", hf.generation_config(arch, ct2_config, vocab))
    tokenizer = hf.complete_tokenizer(json.loads((src / "tokenizer.json").read_text(encoding="utf-8")), vocab)
    hf.write_json(out / "tokenizer.json", tokenizer)
    hf.write_json(out / "tokenizer_config.json", hf.tokenizer_config(arch, tokenizer))
    hf.write_json(out / "preprocessor_config.json", hf.preprocessor_config(arch["num_mel_bins"]))


def full_model_config(kwargs: dict[str, object]) -> dict[str, object]:
    # Round-trip through WhisperConfig so every field transformers writes is present.
    from transformers import WhisperConfig

    cfg = WhisperConfig(**kwargs)
    cfg.architectures = ["WhisperForConditionalGeneration"]
    cfg.dtype = "float32"  # transformers 5 loads in the checkpoint dtype; fp16 on CPU is ~4x slower
    return cfg.to_dict()


def _finish(tmp: Path, source: dict[str, Any]) -> None:
    # mkdtemp makes a private folder; the cache is meant to be shared by every worker.
    tmp.chmod(0o755)
    for p in tmp.iterdir():
        p.chmod(0o644)
    files = {p.name: file_record(p) for p in sorted(tmp.iterdir()) if p.is_file()}
    marker = {"converter_version": CONVERTER_VERSION, "source": source, "files": files}
    hf.write_json(tmp / MARKER, marker)


def _install(tmp: Path, dest: Path, model: OfflineModel) -> None:
    """Move the finished folder into place; another process may have won the race.

    The rename keeps every file's mtime, so the marker written in ``tmp`` holds in ``dest``.
    """
    try:
        tmp.rename(dest)
        return
    except OSError:
        if _is_complete(dest, model):
            shutil.rmtree(tmp, ignore_errors=True)
            return
    shutil.rmtree(dest)
    tmp.rename(dest)


def prepare_offline_model(dest: str | Path, model: OfflineModel = TINY_EN) -> Path:
    """Convert the packaged ``model`` (default ``tiny.en``) into a transformers folder at ``dest``; return it.

    Idempotent: a folder whose marker matches the installed source and whose files
    still hold their recorded content is reused as it is.
    """
    src = model.side_dir()
    dest = Path(dest).expanduser().resolve()
    if _is_complete(dest, model):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    scratch = Path(tempfile.mkdtemp(prefix=f".{dest.name}.src.", dir=dest.parent))
    try:
        model_bin, source = _joined(model, scratch)
        _write_folder(model_bin, src, tmp)
        _finish(tmp, source)
        _install(tmp, dest, model)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return dest
