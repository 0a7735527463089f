"""One call for one file, in Python: the origin script's use, on the job's own engine.

    from asr_actor import Transcriber, transcribe

    asr = Transcriber.from_pretrained("openai/whisper-large-v3")      # or "large-v3", "offline:tiny.en"
    result = asr.transcribe("call.wav", task="translate")            # a path, bytes, or 16 kHz float32 samples
    print(result.text, result.segments[0]["start"], result.wall_s)

    transcribe("call.wav", model="offline:tiny.en")                  # the same, loading (once) on first use

The model, its defaults, decoding and guards are those of the batch job
(:class:`asr_actor.transcriber.Transcriber`); a file that cannot be transcribed raises
:class:`TranscriptionError` with the job's error-row cause (:mod:`asr_actor.transcript`).
The timing goes to stderr as one plain line (no colour), as the origin script printed it;
``quiet=True`` drops it. This module sits on top: the transcriber never imports it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from asr_actor.config import OFFLINE_MODEL_ID
from asr_actor.transcriber import Transcriber
from asr_actor.transcript import Transcript, TranscriptionError

__all__ = ["Transcriber", "Transcript", "TranscriptionError", "transcribe"]


@lru_cache(maxsize=2)
def _cached(model: str, device: str) -> Transcriber:
    return Transcriber.from_pretrained(model, device=device)


def transcribe(source: Any, *, model: str = OFFLINE_MODEL_ID, device: str = "auto", task: str | None = None,
               language: str | None = None, prompt: str | None = None, quiet: bool = False) -> Transcript:
    """One call: load ``model`` (kept for the next call) and transcribe ``source``."""
    return _cached(model, device).transcribe(source, task=task, language=language, prompt=prompt, quiet=quiet)
