"""One call for one file, in Python: the origin script's use, on the job's own engine.

    from asr_actor import Transcriber, transcribe

    asr = Transcriber.from_pretrained("openai/whisper-large-v3")      # or "large-v3", "offline:tiny.en"
    result = asr.transcribe("call.wav", task="translate")            # a path, bytes, or 16 kHz float32 samples
    print(result.text, result.segments[0]["start"], result.wall_s)

    transcribe("call.wav", model="offline:tiny.en")                  # the same, loading (once) on first use

The model, its defaults, decoding and guards are those of the batch job
(:class:`asr_actor.transcriber.Transcriber`); a file that cannot be transcribed raises
:class:`TranscriptionError` with the job's error-row cause. The timing goes to stderr
as one plain line (no colour), as the origin script printed it; ``quiet=True`` drops it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from asr_actor.audio import SAMPLE_RATE
from asr_actor.config import OFFLINE_MODEL_ID, AudioConfig, DecodingConfig, ModelConfig, TranscriberConfig, from_mapping
from asr_actor.errors import AsrBatchError
from asr_actor.schema import AUDIO, DURATION, ERROR, ID, LANGUAGE, PROMPT, SEGMENTS, TASK, TEXT, WAVEFORM

if TYPE_CHECKING:
    from asr_actor.transcriber import Transcriber

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

    @property
    def rtfx(self) -> float:
        return self.duration_s / self.wall_s if self.wall_s else float("inf")


def load(model: str = OFFLINE_MODEL_ID, *, revision: str | None = None, device: str = "auto", dtype: str = "auto",
         attention: str = "auto", decoding: Mapping[str, Any] | None = None,
         audio: Mapping[str, Any] | None = None) -> "Transcriber":
    """A :class:`Transcriber` for ``model`` (any ``model.id``); ``decoding``/``audio``: config keys as in YAML."""
    from asr_actor.transcriber import Transcriber

    cfg = TranscriberConfig(
        model=ModelConfig(id=model, revision=revision, device=device, dtype=dtype, attention=attention),
        decoding=from_mapping(DecodingConfig, decoding, "decoding"), audio=from_mapping(AudioConfig, audio, "audio"),
    )
    return Transcriber(cfg)


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


def transcribe_one(transcriber: "Transcriber", source: Any, *, task: str | None = None, language: str | None = None,
                   prompt: str | None = None, quiet: bool = False) -> Transcript:
    """Transcribe one file (a path, bytes, or 16 kHz mono float32 samples) with ``transcriber``."""
    started = time.perf_counter()
    name, batch = _row(source)
    out = transcriber({ID: [name], TASK: [task], LANGUAGE: [language], PROMPT: [prompt], **batch})
    if out[ERROR][0] is not None:
        raise TranscriptionError(f"{name}: {out[ERROR][0]}")
    result = Transcript(out[TEXT][0], out[SEGMENTS][0], out[LANGUAGE][0], float(out[DURATION][0]),
                        time.perf_counter() - started)
    if not quiet:
        print(f"transcribed {name}: {result.duration_s:.1f} s of audio in {result.wall_s:.2f} s "
              f"(RTFx {result.rtfx:.1f}, {transcriber.info.device}, {transcriber.info.dtype})", file=sys.stderr)
    return result


@lru_cache(maxsize=2)
def _cached(model: str, device: str) -> "Transcriber":
    return load(model, device=device)


def transcribe(source: Any, *, model: str = OFFLINE_MODEL_ID, device: str = "auto", task: str | None = None,
               language: str | None = None, prompt: str | None = None, quiet: bool = False) -> Transcript:
    """One call: load ``model`` (kept for the next call) and transcribe ``source``."""
    return transcribe_one(_cached(model, device), source, task=task, language=language, prompt=prompt, quiet=quiet)
