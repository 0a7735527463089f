"""Decode audio bytes to a 16 kHz mono float32 waveform with PyAV.

Any container and codec FFmpeg reads is accepted (wav, flac, mp3, m4a/AAC, ogg/Opus,
video files with an audio track), at any rate and channel count. Failure is a value,
never an exception: a batch of files must survive one bad file, so
:func:`decode_audio` returns a :class:`DecodedAudio` whose ``error`` names the stage
and the cause ("decode: no audio stream", "decode: truncated data at 3.20 s"). A
file that is cut short (:mod:`asr_actor.integrity`) or decodes to NaN or infinite
samples is an error too, never a transcript of half a file or of noise.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from asr_actor.errors import describe
from asr_actor.integrity import truncation

SAMPLE_RATE = 16_000  # Hz, what Whisper's feature extractor expects
STAGE = "decode"
# Decoded audio shorter than the container's declared length by more than this is
# treated as truncated (encoder priming and padding account for a few hundred ms).
TRUNCATION_TOLERANCE_S = 0.5
TRUNCATION_TOLERANCE_FRACTION = 0.02


@dataclass(frozen=True)
class DecodedAudio:
    """A waveform, or the reason there is none."""

    waveform: np.ndarray | None  # float32, mono, SAMPLE_RATE; None on error
    error: str | None = None

    @property
    def duration_s(self) -> float:
        return 0.0 if self.waveform is None else len(self.waveform) / SAMPLE_RATE


def _fail(reason: str) -> DecodedAudio:
    return DecodedAudio(waveform=None, error=f"{STAGE}: {reason}")


def _declared_duration_s(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # av.time_base is microseconds
    return None


def _decode_stream(container, stream, max_samples: int | None, chunks: list[np.ndarray]) -> None:
    """Append resampled chunks to ``chunks`` (so a failure midway still knows how far it got)."""
    import av

    # format "flt" + layout "mono" is the same downmix and resampling as ``ffmpeg -ac 1
    # -ar 16000`` (openai-whisper) and faster-whisper's decoder, without s16 rounding.
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    total = 0
    for frame in container.decode(stream):
        frame.pts = None  # let the resampler count samples; broken pts must not matter
        for out in resampler.resample(frame):
            chunk = out.to_ndarray().reshape(-1)
            chunks.append(chunk)
            total += len(chunk)
        if max_samples is not None and total > max_samples:
            return
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray().reshape(-1))


def decode_audio(data: bytes, max_duration_s: float | None = None) -> DecodedAudio:
    """Decode ``data`` into 16 kHz mono float32; errors come back in the result.

    ``max_duration_s`` rejects longer audio, from the container's declared duration
    when it has one (nothing decoded) and otherwise as soon as decoding passes it.
    """
    import av

    if not data:
        return _fail("empty file (0 bytes)")
    if cut := truncation(data):
        return _fail(f"truncated data: {cut}")
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError) as exc:
        return _fail(f"not a readable audio container ({describe(exc)})")
    with container:
        if not container.streams.audio:
            return _fail("no audio stream")
        stream = container.streams.audio[0]
        declared = _declared_duration_s(container, stream)
        if max_duration_s is not None and declared is not None and declared > max_duration_s:
            return _fail(f"audio is {declared:.1f} s, longer than the {max_duration_s:g} s limit")
        max_samples = None if max_duration_s is None else int(max_duration_s * SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        try:
            _decode_stream(container, stream, max_samples, chunks)
        except (av.FFmpegError, ValueError, OSError) as exc:
            done = sum(len(c) for c in chunks) / SAMPLE_RATE
            return _fail(f"corrupt or truncated data at {done:.2f} s ({describe(exc)})")
    waveform = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if max_samples is not None and len(waveform) > max_samples:
        return _fail(f"audio is longer than the {max_duration_s:g} s limit")
    if len(waveform) == 0:
        return _fail("no audio samples decoded")
    if bad := int(np.count_nonzero(~np.isfinite(waveform))):
        return _fail(f"{bad} samples are NaN or infinite (a broken float encoding)")
    got = len(waveform) / SAMPLE_RATE
    if declared is not None and got < declared - max(TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_FRACTION * declared):
        return _fail(f"truncated data at {got:.2f} s (the container declares {declared:.2f} s)")
    return DecodedAudio(waveform=waveform)
