"""The CPU work on plain dict batches, no model."""

from __future__ import annotations

import pytest

from asr_actor.config import AudioConfig
from asr_actor.preprocess import decode_batch
from conftest import BAD, GOOD


def _flac_samples(path) -> tuple[int, int]:
    """(samples per channel, sample rate) as the FLAC file's STREAMINFO block declares them: no decoder involved.

    STREAMINFO is the first metadata block, right after ``fLaC`` and its 4-byte block header; from
    its 11th byte, 64 bits hold sample rate (20 bits), channels - 1 (3), bits per sample - 1 (5)
    and the total samples per channel (36).
    """
    data = path.read_bytes()
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # block type 0: STREAMINFO
    packed = int.from_bytes(data[8 + 10 : 8 + 18], "big")
    return packed & ((1 << 36) - 1), packed >> 44


def test_decode_batch_keeps_rows_and_marks_errors():
    paths = [GOOD / "flac16k_mono.flac", BAD / "empty.wav", GOOD / "mp3_22k_mono.mp3"]
    batch = {"id": ["a", "b", "c"], "audio": [p.read_bytes() for p in paths], "error": [None, None, "fetch: gone"]}
    out = decode_batch(batch, AudioConfig())
    assert out["id"] == ["a", "b", "c"] and "audio" not in out
    assert out["error"] == [None, "decode: empty file (0 bytes)", "fetch: gone"]
    assert out["waveform"][0].dtype.name == "float32" and out["waveform"][1] is None and out["waveform"][2] is None
    samples, rate = _flac_samples(paths[0])
    assert rate == 16_000  # the decoder's own rate: no resampling, so every sample comes through as it is
    assert len(out["waveform"][0]) == samples and out["duration_s"][0] == pytest.approx(samples / rate, abs=1 / rate)


def test_size_and_duration_limits():
    data = (GOOD / "flac16k_mono.flac").read_bytes()
    out = decode_batch({"audio": [data, data]}, AudioConfig(max_bytes=len(data) - 1))
    assert out["error"][0] == f"decode: file is {len(data)} bytes, over the {len(data) - 1} byte limit"
    samples, rate = _flac_samples(GOOD / "flac16k_mono.flac")
    out = decode_batch({"audio": [data]}, AudioConfig(max_duration_s=5))
    assert out["error"][0] == f"decode: audio is {samples / rate:.1f} s, longer than the 5 s limit"
