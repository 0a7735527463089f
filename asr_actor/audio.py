"""Decode audio bytes to a 16 kHz mono float32 waveform with PyAV (or one per channel).

Any container and codec FFmpeg reads is accepted (wav, flac, mp3, m4a/AAC, ogg/Opus,
video files with an audio track), at any rate and channel count. Channels are mixed
down to one, or with ``split_channels`` kept apart (``audio.channels: split``) as the
rows of a ``[channels, samples]`` array, each resampled as the downmix is. Failure is a value,
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

    waveform: np.ndarray | None  # float32 at SAMPLE_RATE: [samples] mono, [channels, samples] split; None on error
    error: str | None = None

    @property
    def duration_s(self) -> float:
        return 0.0 if self.waveform is None else self.waveform.shape[-1] / SAMPLE_RATE


def _fail(reason: str) -> DecodedAudio:
    return DecodedAudio(waveform=None, error=f"{STAGE}: {reason}")


def _declared_duration_s(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # av.time_base is microseconds
    return None


def _resampler(split_channels: bool):
    import av

    if split_channels:  # planar float in the source's layout (the default): one plane per channel
        return av.AudioResampler(format="fltp", rate=SAMPLE_RATE)
    # format "flt" + layout "mono" is the same downmix and resampling as ``ffmpeg -ac 1
    # -ar 16000`` (openai-whisper) and faster-whisper's decoder, without s16 rounding.
    return av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)


def _samples(out, split_channels: bool) -> np.ndarray:
    array = out.to_ndarray()  # planar: [channels, samples]; packed mono: [1, samples]
    return array if split_channels else array.reshape(-1)


def _decode_stream(
    container, stream, max_samples: int | None, chunks: list[np.ndarray], split_channels: bool = False
) -> None:
    """Append resampled chunks to ``chunks`` (so a failure midway still knows how far it got)."""
    resampler = _resampler(split_channels)
    total = 0
    for frame in container.decode(stream):
        frame.pts = None  # let the resampler count samples; broken pts must not matter
        for out in resampler.resample(frame):
            chunk = _samples(out, split_channels)
            chunks.append(chunk)
            total += chunk.shape[-1]
        if max_samples is not None and total > max_samples:
            return
    for out in resampler.resample(None):
        chunks.append(_samples(out, split_channels))


def decode_audio(data: bytes, max_duration_s: float | None = None, split_channels: bool = False) -> DecodedAudio:
    """Decode ``data`` into 16 kHz mono float32; errors come back in the result.

    ``max_duration_s`` rejects longer audio, from the container's declared duration
    when it has one (nothing decoded) and otherwise as soon as decoding passes it.
    ``split_channels``: a ``[channels, samples]`` waveform instead (a mono file: one row).
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
            _decode_stream(container, stream, max_samples, chunks, split_channels)
        except (av.FFmpegError, ValueError, OSError) as exc:
            done = sum(c.shape[-1] for c in chunks) / SAMPLE_RATE
            return _fail(f"corrupt or truncated data at {done:.2f} s ({describe(exc)})")
    waveform = np.concatenate(chunks, axis=-1).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    samples = waveform.shape[-1]  # per channel
    if max_samples is not None and samples > max_samples:
        return _fail(f"audio is longer than the {max_duration_s:g} s limit")
    if samples == 0:
        return _fail("no audio samples decoded")
    if bad := int(np.count_nonzero(~np.isfinite(waveform))):
        return _fail(f"{bad} samples are NaN or infinite (a broken float encoding)")
    got = samples / SAMPLE_RATE
    if declared is not None and got < declared - max(TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_FRACTION * declared):
        return _fail(f"truncated data at {got:.2f} s (the container declares {declared:.2f} s)")
    return DecodedAudio(waveform=waveform)
