"""Dummy weights (``model.load_format: dummy``): a model's real shapes, seeded random weights, no download.

What a user runs to size a cluster before pulling gigabytes of weights, and what the
device check runs (vLLM calls it the same). openai-whisper's sizes are known here by
name (every ``openai/whisper-*`` id and short name, and the offline models); any other
model's shape is read from its ``config.json`` alone. The small files a processor needs
(config, generation config, a tokenizer with Whisper's id layout, the feature
extractor's settings for the model's mel count) are written once into a cache folder
named by their hash; the weights are drawn on the model's own device with a fixed seed,
so every actor of a run holds the same model.

Random weights never stop by themselves (or stop at once), so a dummy model decodes
exactly ``model.dummy_tokens`` tokens per window in one pass (:mod:`asr_actor.generation`
sets the count, :mod:`asr_actor.guards` scores the pass but never redoes it, and the seek
loop is told the pass ended the window). Rows say ``dummy:<id>``; ``evaluate`` refuses such a run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asr_actor.config import WHISPER_NAMES, ModelConfig
from asr_actor.model_source import ModelSourceError, cache_root, read_model_files
from asr_actor.offline import hf_files as hf
from asr_actor.offline.sources import OFFLINE_MODELS
from asr_actor.offline.vocabulary import ENGLISH_VOCAB, V3_VOCAB, VocabularyError, languages, tokenizer_json

DUMMY_PREFIX = "dummy:"  # the model column of a dummy run's rows
SEED = 0
WINDOW_POSITIONS = 1500  # encoder positions of a 30 s window
TARGET_POSITIONS = 448  # decoder positions: prompt + generated tokens


@dataclass(frozen=True)
class Size:
    """One of openai-whisper's model sizes (the feed-forward width is 4 x ``width``)."""

    width: int
    encoder_layers: int
    decoder_layers: int
    heads: int


_SIZES = {"tiny": Size(384, 4, 4, 6), "base": Size(512, 6, 6, 8), "small": Size(768, 12, 12, 12),
          "medium": Size(1024, 24, 24, 16), "large": Size(1280, 32, 32, 20), "turbo": Size(1280, 32, 4, 20)}
# Every model openai-whisper names, by the ids the config accepts: name -> its shape.
_NAMED = {**{m.id: m.name for m in OFFLINE_MODELS.values()},
          **{hub: hub.removeprefix("openai/whisper-") for hub in WHISPER_NAMES.values()}}
ARCHITECTURE_KEYS = ("vocab_size", "num_mel_bins", "d_model", "encoder_layers", "decoder_layers",
                     "encoder_attention_heads", "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim",
                     "max_source_positions", "max_target_positions")


class DummyModelError(ModelSourceError):
    """The dummy model's shape cannot be known."""


def label(cfg: ModelConfig) -> str:
    """The model as rows name it: its id, or ``dummy:<id>`` for dummy weights."""
    return f"{DUMMY_PREFIX}{cfg.id}" if cfg.dummy else cfg.id


def named_architecture(name: str) -> dict[str, Any]:
    """``WhisperConfig`` shape arguments of openai-whisper's ``name`` (``tiny.en`` ... ``large-v3-turbo``)."""
    size = _SIZES["turbo" if name.endswith("turbo") else name.split("-")[0].removesuffix(".en")]
    v3 = name.startswith("large-v3")
    vocab = ENGLISH_VOCAB if name.endswith(".en") else V3_VOCAB if v3 else hf.MULTILINGUAL_VOCAB
    return {
        "vocab_size": vocab, "num_mel_bins": 128 if v3 else 80, "d_model": size.width,
        "encoder_layers": size.encoder_layers, "decoder_layers": size.decoder_layers,
        "encoder_attention_heads": size.heads, "decoder_attention_heads": size.heads,
        "encoder_ffn_dim": 4 * size.width, "decoder_ffn_dim": 4 * size.width,
        "max_source_positions": WINDOW_POSITIONS, "max_target_positions": TARGET_POSITIONS,
    }


def architecture(cfg: ModelConfig) -> dict[str, Any]:
    """The shape of ``cfg.id``: by name for openai-whisper's models, else from its ``config.json``."""
    if cfg.id in _NAMED:
        return named_architecture(_NAMED[cfg.id])
    config = read_model_files(dataclasses.replace(cfg, load_format="auto")).config
    missing = [k for k in ARCHITECTURE_KEYS if k not in config]
    if missing:
        raise DummyModelError(f"model {cfg.id!r}: its config.json lacks {missing}, so its shape is unknown")
    return {k: int(config[k]) for k in ARCHITECTURE_KEYS}


def _files(arch: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from asr_actor.offline.folder import full_model_config

    try:
        tokenizer, vocab = tokenizer_json(arch["vocab_size"])
    except VocabularyError as exc:
        raise DummyModelError(f"dummy weights: {exc}") from exc
    ct2_like = {  # what the converter reads from a CTranslate2 export, stated for a made-up model
        "alignment_heads": [[arch["decoder_layers"] // 2, 0]],
        "suppress_ids": [],
        "suppress_ids_begin": [vocab.index(hf.EOS)],
        "lang_ids": [vocab.index(f"<|{c}|>") for c in languages(arch["vocab_size"])],
    }
    return {
        "config.json": full_model_config(hf.model_config(arch, vocab)),
        "generation_config.json": hf.generation_config(arch, ct2_like, vocab),
        "tokenizer.json": tokenizer,
        "tokenizer_config.json": hf.tokenizer_config(arch, tokenizer),
        "preprocessor_config.json": hf.preprocessor_config(arch["num_mel_bins"]),
    }


def shape_id(arch: dict[str, Any]) -> str:
    """What names a dummy model's weights: its shape and the seed."""
    digest = hashlib.sha256(json.dumps(arch, sort_keys=True).encode()).hexdigest()[:12]
    return f"dummy-seed{SEED}-{digest}"


def dummy_folder(cfg: ModelConfig) -> Path:
    """A folder with the small files of ``cfg.id``'s dummy model (no weights), written once per shape."""
    arch = architecture(cfg)
    dest = cache_root(cfg) / "dummy" / shape_id(arch)
    if (dest / "config.json").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for name, content in _files(arch).items():
            hf.write_json(tmp / name, content)
        tmp.chmod(0o755)
        try:
            tmp.rename(dest)
        except OSError:
            if not (dest / "config.json").is_file():  # another process finished first: keep its copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def build_model(folder: Path, device: str, dtype: str, attention: str):
    """``WhisperForConditionalGeneration`` of ``folder``'s config with weights drawn on ``device`` from :data:`SEED`."""
    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig.from_pretrained(folder, local_files_only=True)
    target = torch.device(device)
    with torch.random.fork_rng(devices=[target] if target.type == "cuda" else []):
        torch.manual_seed(SEED)
        with target:
            model = WhisperForConditionalGeneration._from_config(
                config, dtype=getattr(torch, dtype), attn_implementation=attention
            )
    model.generation_config = GenerationConfig.from_pretrained(folder, local_files_only=True)
    _one_pass_per_window(model)
    return model


def _one_pass_per_window(model) -> None:
    """Whatever a pass's random tokens, it ends its window.

    transformers' seek loop decodes a window again from its last timestamp pair when a
    pass does not end on a lone timestamp, which random tokens rarely do: the window
    would cost a varying number of passes. transformers calls ``_retrieve_segment``
    (keyword arguments) once per pass and window; its segments are kept as they are,
    its offset becomes the whole window.
    """
    segments_of = model._retrieve_segment

    def whole_window(**kwargs):
        segments, _ = segments_of(**kwargs)
        return segments, kwargs["seek_num_frames"][kwargs["prev_idx"]]

    model._retrieve_segment = whole_window
