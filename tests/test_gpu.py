"""float16 + SDPA (and Flash-Attention 2 where installed) end to end on a CUDA GPU.

Skipped without CUDA. On a GPU machine: ``.venv/bin/python -m pytest tests/test_gpu.py -s``
prints the card, dtype, attention, batch size and windows per second.
"""

from __future__ import annotations

import importlib.util
import time

import pytest
import torch

from asr_actor.config import DecodingConfig, ModelConfig, TranscriberConfig
from asr_actor.transcriber import Transcriber
from asr_actor.wer import word_errors
from conftest import good_fixtures, reference_text

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CASES = [("float16", "sdpa"), ("bfloat16", "sdpa"), ("float16", "flash_attention_2")]


@pytest.mark.parametrize("dtype, attention", CASES)
def test_half_precision_end_to_end(offline_model_dir, dtype, attention):
    if attention == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        pytest.skip("flash-attn is not installed (pip install 'asr-batch[gpu]')")
    if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    batch_size = 16
    t = Transcriber(TranscriberConfig(
        model=ModelConfig(id=str(offline_model_dir), device="cuda", dtype=dtype, attention=attention),
        decoding=DecodingConfig(batch_size=batch_size),
    ))
    assert (t.info.dtype, t.info.attention) == (dtype, attention)
    assert t.loaded.model.dtype == getattr(torch, dtype)
    paths = good_fixtures()
    batch = t.preprocess({"id": [p.name for p in paths], "audio": [p.read_bytes() for p in paths]})
    t(batch)  # warm-up
    torch.cuda.synchronize()
    started = time.perf_counter()
    out = t(batch)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    windows = sum(len(f) for f in batch["features"])
    for p, text, err in zip(paths, out["text"], out["error"]):
        assert err is None
        assert word_errors(reference_text(p), text).wer <= 0.25, (p.name, text)
    print(f"\n{torch.cuda.get_device_name()} {dtype} {attention} batch {batch_size}: "
          f"{windows / elapsed:.1f} windows/s, {sum(out['duration_s']) / elapsed:.0f}x real time")


def test_auto_picks_half_precision_and_the_best_attention(offline_model_dir):
    t = Transcriber(TranscriberConfig(model=ModelConfig(id=str(offline_model_dir))))
    assert t.info.device == "cuda" and t.info.dtype == "float16"
    expected = "flash_attention_2" if importlib.util.find_spec("flash_attn") else "sdpa"
    if torch.cuda.get_device_capability() < (8, 0):
        expected = "sdpa"
    assert t.info.attention == expected
