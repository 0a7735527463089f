"""A Whisper tokenizer with the real layout of ids and no real words, built in code.

Random weights (:mod:`asr_actor.dummy`) decode random ids, so their text needs no real
BPE: what must be right is where every special id sits. Whisper's vocabularies are
laid out alike: the BPE ids (50,256 for English-only models, 50,257 for multilingual
ones), ``<|endoftext|>``, ``<|startoftranscript|>``, one token per language (99, or
100 from large-v3 on), six task and control tokens ending in ``<|notimestamps|>``,
then 1,501 timestamps. The BPE part here is the 256 byte-level symbols (any text
still encodes, a byte a token) padded with placeholder words that decode as
`` w<id>``.
"""

from __future__ import annotations

import json
from typing import Any

from asr_actor.offline import hf_files as hf

ENGLISH_VOCAB = 51864  # tiny.en ... medium.en
V3_VOCAB = 51866  # large-v3 and large-v3-turbo: one more language (yue)
CONTROL = ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", hf.NO_TIMESTAMPS]
TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|>


class VocabularyError(ValueError):
    """A vocabulary size that is not one of Whisper's."""


def languages(vocab_size: int) -> list[str]:
    """The language codes of a vocabulary of ``vocab_size`` ids, in id order."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    codes = list(LANGUAGES)  # yue, added by large-v3, is last
    return codes if vocab_size == V3_VOCAB else [c for c in codes if c != "yue"]


def layout(vocab_size: int) -> tuple[list[str], list[str]]:
    """(every token in id order, the special tokens) of Whisper's vocabulary of ``vocab_size`` ids."""
    from tokenizers.pre_tokenizers import ByteLevel

    if vocab_size not in (ENGLISH_VOCAB, hf.MULTILINGUAL_VOCAB, V3_VOCAB):
        raise VocabularyError(f"Whisper's vocabularies have {ENGLISH_VOCAB}, {hf.MULTILINGUAL_VOCAB} or {V3_VOCAB} "
                              f"ids, not {vocab_size}")
    specials = [hf.EOS, hf.SOT, *(f"<|{c}|>" for c in languages(vocab_size)), *CONTROL]
    n_text = vocab_size - len(specials) - TIMESTAMPS
    symbols = sorted(ByteLevel.alphabet())
    text = symbols + [f"Ġw{i}" for i in range(len(symbols), n_text)]  # Ġ: byte-level's space
    timestamps = [f"<|{i * 0.02:.2f}|>" for i in range(TIMESTAMPS)]
    return text + specials + timestamps, specials


def tokenizer_json(vocab_size: int) -> tuple[dict[str, Any], list[str]]:
    """(``tokenizer.json`` as a mapping, the vocabulary in id order) for ``vocab_size`` ids."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab, specials = layout(vocab_size)
    n_text = len(vocab) - len(specials) - TIMESTAMPS
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(vocab[:n_text])}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in vocab[n_text + len(specials):]])
    if tok.get_vocab_size() != vocab_size or tok.token_to_id(hf.NO_TIMESTAMPS) != vocab.index(hf.NO_TIMESTAMPS):
        raise VocabularyError(f"the built tokenizer does not have Whisper's layout of {vocab_size} ids")
    return json.loads(tok.to_str()), vocab
