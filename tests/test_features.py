"""The numpy log-mel features against transformers' WhisperFeatureExtractor (the reference)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from transformers import WhisperFeatureExtractor

from asr_actor.audio import decode_audio
from asr_actor.features import LogMel, mel_filters
from conftest import good_fixtures


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filters_match_transformers(n_mels):
    reference = WhisperFeatureExtractor(feature_size=n_mels).mel_filters
    np.testing.assert_allclose(mel_filters(n_mels, 400, 16_000), reference, atol=1e-12)


def _settings(folder) -> LogMel:
    return LogMel.from_preprocessor_config(json.loads((folder / "preprocessor_config.json").read_text()))


@pytest.mark.parametrize("audio", good_fixtures(), ids=lambda p: p.name)
def test_features_match_the_feature_extractor(audio, offline_model_dir):
    fe = WhisperFeatureExtractor.from_pretrained(offline_model_dir)
    waveform = decode_audio(audio.read_bytes()).waveform[: fe.n_samples]
    reference = fe([waveform], sampling_rate=16_000, return_tensors="np")["input_features"]
    ours = _settings(offline_model_dir)([waveform])
    assert ours.shape == reference.shape == (1, 80, 3000) and ours.dtype == np.float32
    # The reference runs its STFT in float32, ours in float64: the values differ in the
    # last float32 digits only (features span about -1 .. 2).
    assert np.abs(ours - reference).max() < 1e-4


def test_shapes_padding_and_settings(offline_model_dir):
    lm = _settings(offline_model_dir)
    assert lm == LogMel.of(WhisperFeatureExtractor.from_pretrained(offline_model_dir)) == LogMel()
    assert lm([]).shape == (0, 80, 3000)
    tone = np.sin(np.arange(40 * 16_000) * 2 * np.pi * 440 / 16_000).astype(np.float32)
    # Over 30 s is cut to 30 s; under 30 s is padded with silence, as the reference does.
    np.testing.assert_array_equal(lm([tone])[0], lm([tone[:480_000]])[0])
    short = lm([tone[:16_000]])[0]
    assert short[:, 200:].std() < 1e-6 < short[:, :90].std()
    assert LogMel.from_preprocessor_config({"feature_size": 128}).n_mels == 128


@pytest.mark.parametrize("n_mels", [80, 128])
def test_preprocessor_config_round_trips_through_the_feature_extractor(n_mels, tmp_path):
    written = LogMel(n_mels=n_mels).to_preprocessor_config()
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(written))
    fe = WhisperFeatureExtractor.from_pretrained(tmp_path)
    assert LogMel.of(fe) == LogMel(n_mels=n_mels) == LogMel.from_preprocessor_config(written)
    assert fe.chunk_length == 30 and fe.mel_filters.shape == (201, n_mels)
    assert LogMel(n_mels=n_mels).differences(LogMel()) == ([] if n_mels == 80 else ["n_mels: 128 != 80"])


def test_the_cpu_stage_and_the_driver_plan_never_import_torch(offline_model_dir):
    code = (
        "import sys; import pyarrow as pa; from jobs.run.workers import PrepareWorker; from asr_actor.config import "
        "AudioConfig, ModelConfig; from asr_actor.model_plan import plan_model; "
        f"plan = plan_model(ModelConfig(id={str(offline_model_dir)!r}), gpus=False); "
        f"out = PrepareWorker(AudioConfig(), plan.log_mel, True)(pa.table({{'id': ['a'], 'uri': [{str(good_fixtures()[0])!r}]}})); "
        "print(plan.log_mel.n_mels, len(out.column('features_f32')[0].as_py()), "
        "'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["80", str(80 * 3000 * 4), "False", "False"]
