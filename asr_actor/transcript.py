"""One file through a transcriber, in Python: its one-row batch, its :class:`Transcript`, or its cause as an exception.

It sits below both callers: :meth:`asr_actor.transcriber.Transcriber.transcribe` and the
module-level call of :mod:`asr_actor.api`. It needs of a transcriber only that it is called
on a dict batch and tells its ``info``, so it imports neither.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol

import numpy as np

from asr_actor.audio import SAMPLE_RATE
from asr_actor.errors import AsrBatchError
from asr_actor.schema import (
    AUDIO, DURATION, ERROR, ID, LANGUAGE, LANGUAGE_PROBABILITY, PROMPT, SEGMENTS, TASK, TEXT, WAVEFORM,
)


class TranscriptionError(AsrBatchError):
    """This file could not be transcribed; the message is the job's cause (``decode: ...``)."""


@dataclass(frozen=True)
class Transcript:
    """One file's result: what a row of the job holds, and how long it took."""

    text: str
    segments: list[dict[str, Any]]  # start, end (s), text, avg_logprob, no_speech_prob, compression_ratio, words
    language: str | None
    duration_s: float  # audio seconds
    wall_s: float  # seconds this call took
    task: str  # transcribe | translate: what made the text
    language_probability: float | None  # how sure the detection was; None when the language was given

    @property
    def rtfx(self) -> float:
        return self.duration_s / self.wall_s if self.wall_s else float("inf")


class BatchTranscriber(Protocol):
    """What :func:`transcribe_one` needs of a transcriber (:class:`asr_actor.transcriber.Transcriber`)."""

    info: Any  # asr_actor.model.ModelInfo: device and dtype for the timing line

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list]: ...


def _row(source: Any) -> tuple[str, dict[str, list]]:
    """The name to report and the one-row batch for ``source``."""
    if isinstance(source, np.ndarray):
        return "<samples>", {WAVEFORM: [np.asarray(source, np.float32)], DURATION: [len(source) / SAMPLE_RATE]}
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>", {AUDIO: [bytes(source)]}
    path = Path(source).expanduser()
    try:
        return str(path), {AUDIO: [path.read_bytes()]}
    except OSError as exc:
        raise TranscriptionError(f"fetch: cannot read {path}: {exc.strerror or exc}") from exc


def transcribe_one(transcriber: BatchTranscriber, source: Any, *, task: str | None = None, language: str | None = None,
                   prompt: str | None = None, quiet: bool = False) -> Transcript:
    """Transcribe one file (a path, bytes, or 16 kHz mono float32 samples) with ``transcriber``."""
    started = time.perf_counter()
    name, batch = _row(source)
    out = transcriber({ID: [name], TASK: [task], LANGUAGE: [language], PROMPT: [prompt], **batch})
    if out[ERROR][0] is not None:
        raise TranscriptionError(f"{name}: {out[ERROR][0]}")
    result = Transcript(out[TEXT][0], out[SEGMENTS][0], out[LANGUAGE][0], float(out[DURATION][0]),
                        time.perf_counter() - started, out[TASK][0], out[LANGUAGE_PROBABILITY][0])
    if not quiet:
        print(f"transcribed {name}: {result.duration_s:.1f} s of audio in {result.wall_s:.2f} s "
              f"(RTFx {result.rtfx:.1f}, {transcriber.info.device}, {transcriber.info.dtype})", file=sys.stderr)
    return result
