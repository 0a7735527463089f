"""asr_actor: the Whisper transcriber of asr-batch (decoding, the model, the transcriber).

``from asr_actor import Transcriber, transcribe`` for one call per file (:mod:`asr_actor.api`);
the names load on first use, so importing a submodule (the job's CPU workers) never imports torch.
"""

from __future__ import annotations

from typing import Any

_LAZY = {"Transcriber": "asr_actor.transcriber", "transcribe": "asr_actor.api", "Transcript": "asr_actor.transcript",
         "TranscriptionError": "asr_actor.transcript"}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'asr_actor' has no attribute {name!r}")
