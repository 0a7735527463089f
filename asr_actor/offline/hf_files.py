"""The non-weight files of a transformers Whisper folder, built from a CTranslate2 export.

CTranslate2's Whisper export keeps the model's token-id facts in its ``config.json``
(suppressed ids, language ids, alignment heads) and ships a ``tokenizer.json`` without
the timestamp tokens. These functions turn that into ``config.json``,
``generation_config.json``, a complete ``tokenizer.json`` and the side files that
``WhisperProcessor.from_pretrained`` reads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

from asr_actor.features import LogMel

EOS = "<|endoftext|>"  # also pad and unk
SOT = "<|startoftranscript|>"  # bos and decoder start
NO_TIMESTAMPS = "<|notimestamps|>"
_TIMESTAMP_RE = re.compile(r"^<\|\d+\.\d\d\|>$")
MULTILINGUAL_VOCAB = 51865  # vocab sizes from here up carry the translate/transcribe tokens


def is_multilingual(vocab_size: int) -> bool:
    """Whether a Whisper model of ``vocab_size`` ids knows languages and tasks (OpenAI's own test).

    The one rule: the driver's plan (from ``config.json``), every model actor (from the
    loaded model's config) and the converted ``generation_config.json`` all apply it.
    """
    return vocab_size >= MULTILINGUAL_VOCAB


def model_config(architecture: Mapping[str, Any], vocab: list[str]) -> dict[str, Any]:
    """``WhisperConfig`` keyword arguments: architecture read off the weights plus token ids.

    Suppressed tokens live in ``generation_config.json`` only: transformers 5 warns when
    the model config carries generation parameters too.
    """
    eos, sot = vocab.index(EOS), vocab.index(SOT)
    return {
        **architecture,
        "pad_token_id": eos,
        "bos_token_id": sot,
        "eos_token_id": eos,
        "decoder_start_token_id": sot,
    }


def generation_config(
    architecture: Mapping[str, Any], ct2_config: Mapping[str, Any], vocab: list[str]
) -> dict[str, Any]:
    """The ``generation_config.json`` that Whisper's ``generate`` reads its prompts from."""
    no_ts, eos, sot = vocab.index(NO_TIMESTAMPS), vocab.index(EOS), vocab.index(SOT)
    multilingual = is_multilingual(architecture["vocab_size"])
    cfg: dict[str, Any] = {
        "alignment_heads": [list(h) for h in ct2_config["alignment_heads"]],
        "begin_suppress_tokens": list(ct2_config["suppress_ids_begin"]),
        "suppress_tokens": list(ct2_config["suppress_ids"]),
        "bos_token_id": sot,
        "decoder_start_token_id": sot,
        "eos_token_id": eos,
        "pad_token_id": eos,
        "no_timestamps_token_id": no_ts,
        "prev_sot_token_id": vocab.index("<|startofprev|>"),
        "max_initial_timestamp_index": 50,  # 1 s: the first timestamp may not start later
        "max_length": architecture["max_target_positions"],
        "return_timestamps": False,
        "is_multilingual": multilingual,
    }
    if multilingual:
        cfg["lang_to_id"] = {vocab[i]: i for i in ct2_config["lang_ids"]}
        cfg["task_to_id"] = {t: vocab.index(f"<|{t}|>") for t in ("transcribe", "translate")}
    return cfg


def complete_tokenizer(tokenizer: dict[str, Any], vocab: list[str]) -> dict[str, Any]:
    """Add the timestamp tokens that CTranslate2's ``tokenizer.json`` leaves out.

    They go in as non-special added tokens, so ``<|notimestamps|>`` stays the last
    special id, which is what transformers' timestamp logic expects.
    """
    present = {t["id"] for t in tokenizer["added_tokens"]}
    start = vocab.index(NO_TIMESTAMPS) + 1
    added = []
    for token_id in range(start, len(vocab)):
        if token_id in present:
            continue
        if not _TIMESTAMP_RE.match(vocab[token_id]):
            raise ValueError(f"vocabulary id {token_id} is {vocab[token_id]!r}, expected a timestamp")
        added.append(_added_token(token_id, vocab[token_id]))
    out = dict(tokenizer)
    out["added_tokens"] = sorted([*tokenizer["added_tokens"], *added], key=lambda t: t["id"])
    return out


def _added_token(token_id: int, content: str) -> dict[str, Any]:
    return {
        "id": token_id,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": False,
    }


def tokenizer_config(architecture: Mapping[str, Any], tokenizer: Mapping[str, Any]) -> dict[str, Any]:
    """``tokenizer_config.json``: the class and the special tokens transformers expects.

    ``extra_special_tokens`` lists the special added tokens in id order: transformers'
    Whisper tokenizer takes the last of ``all_special_ids`` (``<|notimestamps|>``) + 1
    as the first timestamp id when it decodes with timestamps.
    """
    special = [t["content"] for t in sorted(tokenizer["added_tokens"], key=lambda t: t["id"]) if t["special"]]
    if special[-1] != NO_TIMESTAMPS:
        raise ValueError(f"the last special token is {special[-1]!r}, expected {NO_TIMESTAMPS}")
    return {
        "extra_special_tokens": special,
        "tokenizer_class": "WhisperTokenizer",
        "bos_token": EOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "add_prefix_space": False,
        "errors": "replace",
        "model_max_length": architecture["max_target_positions"],
    }


def preprocessor_config(num_mel_bins: int) -> dict[str, Any]:
    """``preprocessor_config.json`` for ``WhisperFeatureExtractor``: Whisper's log-mel settings."""
    return LogMel(n_mels=num_mel_bins).to_preprocessor_config()


def read_vocabulary(path: Path) -> list[str]:
    """``vocabulary.txt``: one token a line, the line number is the id."""
    lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines(): "\n" only
    return lines[:-1] if lines and lines[-1] == "" else lines


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
