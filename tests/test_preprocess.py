"""The CPU work on plain dict batches, no model."""

from __future__ import annotations

from asr_actor.config import AudioConfig
from asr_actor.preprocess import decode_batch
from conftest import BAD, GOOD


def test_decode_batch_keeps_rows_and_marks_errors():
    paths = [GOOD / "flac16k_mono.flac", BAD / "empty.wav", GOOD / "mp3_22k_mono.mp3"]
    batch = {"id": ["a", "b", "c"], "audio": [p.read_bytes() for p in paths], "error": [None, None, "fetch: gone"]}
    out = decode_batch(batch, AudioConfig())
    assert out["id"] == ["a", "b", "c"] and "audio" not in out
    assert out["error"] == [None, "decode: empty file (0 bytes)", "fetch: gone"]
    assert out["waveform"][0].dtype.name == "float32" and out["waveform"][1] is None and out["waveform"][2] is None
    assert out["duration_s"][0] > 7


def test_size_and_duration_limits():
    data = (GOOD / "flac16k_mono.flac").read_bytes()
    out = decode_batch({"audio": [data, data]}, AudioConfig(max_bytes=len(data) - 1))
    assert out["error"][0] == f"decode: file is {len(data)} bytes, over the {len(data) - 1} byte limit"
    out = decode_batch({"audio": [data]}, AudioConfig(max_duration_s=5))
    assert out["error"][0].startswith("decode: audio is 7.8 s, longer than the 5 s limit")
