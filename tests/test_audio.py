"""Decoding every container of the fixture set, and every kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest

from asr_actor.audio import SAMPLE_RATE, decode_audio
from conftest import BAD, GOOD

# Durations as ffprobe reports them for the committed fixtures, seconds.
EXPECTED_S = {
    "wav16k_mono.wav": 7.52,
    "wav44k_stereo.wav": 4.17,
    "flac16k_mono.flac": 7.81,
    "mp3_22k_mono.mp3": 5.09,
    "aac24k_mono.m4a": 5.53,
    "opus48k_mono.ogg": 5.47,
    "video_with_audio.mp4": 5.0,
    "long_pauses.ogg": 199.12,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_S))
def test_each_container_decodes_to_16k_mono_float32(name):
    result = decode_audio((GOOD / name).read_bytes())
    assert result.error is None
    w = result.waveform
    assert w.dtype == np.float32 and w.ndim == 1
    assert abs(result.duration_s - EXPECTED_S[name]) < 0.1
    assert 0.05 < float(np.abs(w).max()) <= 1.0  # speech, not silence or clipping garbage


def test_stereo_is_downmixed_not_one_channel():
    stereo = decode_audio((GOOD / "wav44k_stereo.wav").read_bytes()).waveform
    assert len(stereo) == pytest.approx(4.17 * SAMPLE_RATE, abs=SAMPLE_RATE * 0.05)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("empty.wav", "decode: empty file (0 bytes)"),
        ("random_bytes.wav", "decode: not a readable audio container"),
        ("text_file.m4a", "decode: not a readable audio container"),
        ("no_audio_stream.mp4", "decode: no audio stream"),
        ("truncated.flac", "decode: corrupt or truncated data at "),
        ("truncated.mp3", "decode: truncated data at "),
    ],
)
def test_bad_inputs_become_error_values(name, reason):
    result = decode_audio((BAD / name).read_bytes())
    assert result.waveform is None
    assert result.error.startswith(reason), result.error


def test_short_clip_and_silence_decode():
    # Not decode errors: what the model makes of them is the transcriber's business.
    assert decode_audio((BAD / "short_0.1s.wav").read_bytes()).duration_s == pytest.approx(0.1, abs=0.01)
    silence = decode_audio((BAD / "silence_30s.flac").read_bytes())
    assert silence.duration_s == pytest.approx(30.0, abs=0.01)
    assert float(np.abs(silence.waveform).max()) < 1e-3


def test_max_duration_rejects_long_audio():
    data = (GOOD / "long_pauses.ogg").read_bytes()
    result = decode_audio(data, max_duration_s=60)
    assert result.waveform is None
    assert result.error == "decode: audio is 199.1 s, longer than the 60 s limit"
    assert decode_audio(data, max_duration_s=600).error is None
