"""Decoding every container of the fixture set, and every kind of bad input."""

from __future__ import annotations

import struct

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
        ("truncated.mp3", "decode: truncated data: the MP3 header declares 30745 bytes of audio, the file holds 12271"),
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


def _float_wav(samples: np.ndarray, rate: int = SAMPLE_RATE, data_size: int | None = None) -> bytes:
    """A 32-bit float WAV; ``data_size`` overrides the size its data chunk declares."""
    data = samples.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)  # IEEE float, mono
    size = len(data) if data_size is None else data_size
    return (b"RIFF" + struct.pack("<I", min(4 + 8 + len(fmt) + 8 + size, 0xFFFFFFFF)) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt))
            + fmt + b"data" + struct.pack("<I", size) + data)


def test_files_cut_short_are_errors_not_half_transcripts():
    wav = (GOOD / "wav16k_mono.wav").read_bytes()
    assert decode_audio(wav[: int(len(wav) * 0.97)]).error == (
        "decode: truncated data: the WAV header declares 7.52 s of audio, the file holds 7.29 s")
    tone = np.sin(np.arange(SAMPLE_RATE * 2) / 5).astype(np.float32) * 0.5
    assert decode_audio(_float_wav(tone, data_size=len(tone) * 4 * 5)).error == (
        "decode: truncated data: the WAV header declares 10.00 s of audio, the file holds 2.00 s")
    assert decode_audio(_float_wav(tone, data_size=0xFFFFFFFF)).error is None  # a streamed WAV: size unknown
    ogg = (GOOD / "opus48k_mono.ogg").read_bytes()
    last_page = ogg.rfind(b"OggS")
    assert decode_audio(ogg[:last_page]).error == "decode: truncated data: the Ogg stream ends without its end-of-stream page"
    assert decode_audio(ogg[:-10]).error == "decode: truncated data: the Ogg stream ends inside its last page"
    mp3 = (GOOD / "mp3_22k_mono.mp3").read_bytes()
    assert decode_audio(mp3[: int(len(mp3) * 0.97)]).error.startswith("decode: truncated data: the MP3 header declares")


def test_nan_or_infinite_samples_are_errors():
    tone = np.sin(np.arange(SAMPLE_RATE) / 5).astype(np.float32) * 0.5
    broken = tone.copy()
    broken[100:200], broken[300] = np.nan, np.inf
    assert decode_audio(_float_wav(broken)).error == "decode: 101 samples are NaN or infinite (a broken float encoding)"
    assert decode_audio(_float_wav(tone)).error is None


def test_an_m4a_cut_short_is_an_error(tmp_path):
    """MP4 with its index first (faststart), cut inside the audio data: FFmpeg reports it."""
    import av

    path = tmp_path / "faststart.m4a"
    with av.open(str(GOOD / "aac24k_mono.m4a")) as src, av.open(str(path), "w", format="mp4",
                                                                  options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    whole = path.read_bytes()
    assert whole.find(b"moov") < whole.find(b"mdat") and decode_audio(whole).error is None
    assert decode_audio(whole[: int(len(whole) * 0.9)]).error.startswith("decode: corrupt or truncated data at ")
