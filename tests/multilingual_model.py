"""A tiny randomly initialised *multilingual* Whisper saved locally, for language code paths.

Its weights are random (no accuracy is tested with it); its vocabulary, special tokens
and generation config follow the multilingual Whisper layout (51,865 ids: 99 language
tokens, translate/transcribe, timestamps after <|notimestamps|>), built with the same
helpers the offline converter uses.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from asr_actor.offline import hf_files as hf
from asr_actor.offline.vocabulary import CONTROL, languages


def _languages() -> list[str]:
    return languages(hf.MULTILINGUAL_VOCAB)  # the 99 of the 51,865-id vocabulary


def build(dest: Path, english_dir: Path) -> Path:
    """Write the model folder to ``dest``, reusing tiny.en's BPE and feature extractor."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    base = json.loads((english_dir / "tokenizer.json").read_text())
    bpe = dict(base["model"]["vocab"])
    bpe.pop(hf.EOS)
    bpe["<|filler|>"] = 50256  # the multilingual base vocabulary is one token longer
    specials = [hf.EOS, hf.SOT, *(f"<|{c}|>" for c in _languages()), *CONTROL]
    timestamps = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    vocab = sorted(bpe, key=bpe.get) + specials + timestamps
    assert len(vocab) == 51865
    tokenizer = dict(base, post_processor=None)
    tokenizer["model"] = dict(base["model"], vocab=bpe)
    tokenizer["added_tokens"] = [
        {**hf._added_token(vocab.index(t), t), "special": True} for t in specials
    ]
    tokenizer = hf.complete_tokenizer(tokenizer, vocab)

    arch = {
        "vocab_size": 51865, "d_model": 64, "num_mel_bins": 80, "encoder_layers": 1, "decoder_layers": 1,
        "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 128,
        "decoder_ffn_dim": 128, "max_source_positions": 1500, "max_target_positions": 448,
        "activation_function": "gelu", "tie_word_embeddings": True,
    }
    ct2_like = {
        "alignment_heads": [[0, 0]], "suppress_ids": [], "suppress_ids_begin": [220, vocab.index(hf.EOS)],
        "lang_ids": [vocab.index(f"<|{c}|>") for c in _languages()],
    }
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(WhisperConfig(**hf.model_config(arch, vocab)))
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest, safe_serialization=True)
    hf.write_json(dest / "generation_config.json", hf.generation_config(arch, ct2_like, vocab))
    hf.write_json(dest / "tokenizer.json", tokenizer)
    hf.write_json(dest / "tokenizer_config.json", hf.tokenizer_config(arch, tokenizer))
    shutil.copy(english_dir / "preprocessor_config.json", dest / "preprocessor_config.json")
    return dest
