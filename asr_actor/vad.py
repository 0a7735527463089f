"""Where the speech is: Silero VAD (``audio.vad: silero``), run by onnxruntime on the CPU.

The ``silero-vad`` package's sequence model scores 32 ms frames in blocks of ~16 s per
ONNX call (one thread), and its own state machine turns the scores into stretches of
speech. This module only holds the model once per process and reads the thresholds
from :class:`~asr_actor.config.AudioConfig`; :func:`asr_actor.windows.plan_speech_windows`
then cuts windows that cover the stretches and nothing else. It runs in the job's CPU
stage (never in the model actor): about 2.4 ms per second of audio, one core (measured
on the 199 s fixture: 0.48 s).
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from functools import cached_property

import numpy as np

from asr_actor.audio import SAMPLE_RATE
from asr_actor.config import AudioConfig, ConfigError

INSTALL_HINT = "audio.vad: silero needs the silero-vad and onnxruntime packages: pip install 'asr-batch[vad]'"


def check_available(cfg: AudioConfig) -> None:
    """Raise a one-line :class:`ConfigError` when ``cfg`` asks for a VAD this environment lacks."""
    if cfg.vad == "off":
        return
    missing = [name for name in ("silero_vad", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:  # looked up, not imported: importing silero_vad changes torch's thread count
        raise ConfigError(f"{INSTALL_HINT} (missing: {', '.join(missing)})")


class SpeechDetector:
    """``spans(waveform)``: the ``[start, end)`` sample ranges of speech in 16 kHz audio."""

    def __init__(self, cfg: AudioConfig) -> None:
        self.cfg = cfg

    @cached_property
    def _model(self):
        check_available(self.cfg)
        torch = sys.modules.get("torch")
        threads = torch.get_num_threads() if torch is not None else None
        from silero_vad import load_silero_vad  # its import calls torch.set_num_threads(1) ...

        if threads is not None:  # ... which would slow a model in this process: put it back
            torch.set_num_threads(threads)
        with warnings.catch_warnings():  # its loader uses importlib.resources.path, deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            return load_silero_vad(sequence=True)  # the packaged ONNX file; nothing is downloaded

    def spans(self, waveform: np.ndarray) -> list[tuple[int, int]]:
        model = self._model  # first: it imports silero_vad with torch's thread count kept
        from silero_vad import get_speech_timestamps_sequence

        found = get_speech_timestamps_sequence(
            np.asarray(waveform, np.float32), model, threshold=self.cfg.vad_threshold, sampling_rate=SAMPLE_RATE,
            min_speech_duration_ms=0, min_silence_duration_ms=int(self.cfg.vad_min_silence_s * 1000),
            speech_pad_ms=int(self.cfg.vad_pad_s * 1000),
        )
        return [(int(s["start"]), int(s["end"])) for s in found]


def detector_for(cfg: AudioConfig) -> SpeechDetector | None:
    """The detector ``cfg`` asks for, or None with ``audio.vad: off``."""
    return None if cfg.vad == "off" else SpeechDetector(cfg)
