"""The converted model against CTranslate2 itself running the same model.bin in float32.

ctranslate2 is only the reference here; the project never uses it to read weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asr_actor.audio import decode_audio
from asr_actor.offline.folder import source_dir
from conftest import GOOD

ctranslate2 = pytest.importorskip("ctranslate2")
PROMPT = [50257, 50362]  # <|startoftranscript|><|notimestamps|>, as transformers builds it for .en


@pytest.fixture(scope="module")
def ct2_model():
    return ctranslate2.models.Whisper(str(source_dir()), device="cpu", compute_type="float32")


@pytest.mark.parametrize("name", ["wav16k_mono.wav", "wav44k_stereo.wav", "flac16k_mono.flac", "aac24k_mono.m4a"])
def test_same_tokens_and_encoder_as_ctranslate2(name, hf_whisper, ct2_model):
    model, processor = hf_whisper
    waveform = decode_audio((GOOD / name).read_bytes()).waveform
    feats = processor.feature_extractor(waveform, sampling_rate=16_000, return_tensors="np").input_features
    storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(feats))

    ct2_encoded = np.array(ct2_model.encode(storage, to_cpu=True))
    with torch.inference_mode():
        hf_encoded = model.model.encoder(torch.from_numpy(feats)).last_hidden_state.numpy()
        hf_tokens = model.generate(torch.from_numpy(feats), num_beams=1, do_sample=False)[0].tolist()
    # float32 rounding differs between the two GEMM libraries: compare against the scale.
    scale = float(np.abs(hf_encoded).max())
    assert float(np.abs(hf_encoded - ct2_encoded).max()) <= 5e-5 * scale
    assert float(np.abs(hf_encoded - ct2_encoded).mean()) <= 5e-6

    ct2_tokens = ct2_model.generate(storage, [PROMPT], beam_size=1)[0].sequences_ids[0]
    assert [t for t in hf_tokens if t < 50256] == ct2_tokens
