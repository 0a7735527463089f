"""The transcriber: one Whisper model, a dict batch of files in, one result per file out.

A plain callable class (the Ray Data actor of the job, and usable with no Ray at all):
``Transcriber(config)(batch)``. The batch has one row per file and carries either
encoded ``audio`` bytes, a decoded ``waveform``, or the ``windows`` and ``features``
of the CPU work (:mod:`asr_actor.preprocess`). Windows of every file in the batch are
packed into full model batches; each file's windows are stitched back into one row
with ``text``, ``segments``, ``language``, ``duration_s`` and ``error``. A bad row
never disturbs the others. With ``audio.channels: split`` a file's windows are those
of every channel; each segment keeps its window's channel.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from asr_actor.audio import SAMPLE_RATE
from asr_actor.config import (
    OFFLINE_MODEL_ID, TASKS, AudioConfig, DecodingConfig, ModelConfig, TranscriberConfig, from_mapping,
)
from asr_actor.features import LogMel
from asr_actor.generation import STAGE, WindowRequest, detect_languages, generate_windows
from asr_actor.language import decide, language_tokens, unsure
from asr_actor.longform import transcribe_sequential
from asr_actor.model import LoadedModel, ModelLoadError, english_only_problem, load_model
from asr_actor.preprocess import batch_size_of, column, decode_batch, window_batch
from asr_actor.schema import (
    AUDIO, DURATION, ERROR, FEATURES, LANGUAGE, LANGUAGE_PROBABILITY, PROMPT, RESULT_COLUMNS, SEGMENTS, TASK, TEXT,
    WAVEFORM, WINDOWS, WORKING_COLUMNS,
)
from asr_actor.segments import Segment, stitch, to_segments
from asr_actor.storage import Store
from asr_actor.transcript import Transcript, transcribe_one
from asr_actor.vad import detector_for
from asr_actor.windows import WINDOW_SAMPLES

log = logging.getLogger(__name__)


@dataclass
class _Row:
    """Working state of one file while its batch is transcribed."""

    task: str | None = None
    language: str | None = None
    prompt: str | None = None
    error: str | None = None
    windows: list[list[Segment]] | None = None  # segments of each window, in order
    language_probability: float | None = None  # set when the language was detected


class Transcriber:
    """Holds one Whisper model; ``__call__`` transcribes a dict batch of files."""

    def __init__(self, config: TranscriberConfig, log_mel: LogMel | None = None, store: Store = Store()) -> None:
        """Load ``config.model`` (an object-store folder read through ``store``). ``log_mel``: the feature
        settings the caller computes features with (the job's CPU stage); loading fails unless the
        model's processor agrees.
        """
        self.config = config
        self.loaded: LoadedModel = load_model(config.model, store)
        self.log_mel = LogMel.of(self.loaded.processor.feature_extractor)
        self.speech = detector_for(config.audio)
        self.on_windows: Callable[[int], None] | None = None  # told after each generate call: windows decoded
        if log_mel is not None and (diff := log_mel.differences(self.log_mel)):
            raise ModelLoadError(
                f"model {config.model.id}: the feature settings the job planned differ from its processor's ({'; '.join(diff)})"
            )
        gen = self.loaded.model.generation_config
        self._codes = language_tokens(self.loaded)[0] if getattr(gen, "lang_to_id", None) else []
        self._languages = set(self._codes)
        self._text_limit = int(gen.eos_token_id)  # token ids below it are text
        if config.decoding.word_timestamps and not getattr(gen, "alignment_heads", None):
            raise ModelLoadError(f"model {config.model.id}: decoding.word_timestamps needs alignment_heads in its "
                                 "generation_config.json, and it has none")

    @classmethod
    def from_pretrained(cls, model: str = OFFLINE_MODEL_ID, *, revision: str | None = None, device: str = "auto",
                        dtype: str = "auto", attention: str = "auto", decoding: Mapping[str, Any] | None = None,
                        audio: Mapping[str, Any] | None = None) -> "Transcriber":
        """Load ``model`` (hub id, short name, folder, URL, ``offline:tiny.en``); ``decoding``/``audio``: config keys as in YAML."""
        return cls(TranscriberConfig(
            model=ModelConfig(id=model, revision=revision, device=device, dtype=dtype, attention=attention),
            decoding=from_mapping(DecodingConfig, decoding, "decoding"), audio=from_mapping(AudioConfig, audio, "audio"),
        ))

    def transcribe(self, source: Any, **options: Any) -> Transcript:
        """One file (path, bytes or 16 kHz samples) -> a :class:`Transcript`: :func:`asr_actor.transcript.transcribe_one`."""
        return transcribe_one(self, source, **options)

    @property
    def info(self):
        """The effective model id, device, dtype and attention (a :class:`ModelInfo`)."""
        return self.loaded.info

    def preprocess(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The CPU stages this batch still lacks: decoding, then windows and features."""
        out = dict(batch)
        if AUDIO in out and WAVEFORM not in out and FEATURES not in out:
            out = decode_batch(out, self.config.audio)
        n = batch_size_of(out)
        if DURATION not in out:  # samples per channel
            out[DURATION] = [0.0 if w is None else np.shape(w)[-1] / SAMPLE_RATE for w in column(out, WAVEFORM, n)]
        if FEATURES not in out:
            chunked = self.config.decoding.long_form == "chunked"
            out = window_batch(out, self.config.audio, self.log_mel, chunked, self.speech)
        return out

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list]:
        started = time.perf_counter()
        batch = self.preprocess(batch)
        n = batch_size_of(batch)
        errors, tasks, languages, prompts = (column(batch, c, n) for c in (ERROR, TASK, LANGUAGE, PROMPT))
        rows = [self._options(errors[i], tasks[i], languages[i], prompts[i]) for i in range(n)]
        self._detect_sequential(batch, rows)
        windows = self._generate_chunked(batch, rows)
        self._generate_sequential(batch, rows)
        out = {k: list(v) for k, v in batch.items() if k not in WORKING_COLUMNS}
        out.update(self._results(rows))
        out[DURATION] = [float(d or 0.0) for d in batch[DURATION]]
        log.info("transcribed %d files (%d windows) in %.2f s", n, windows, time.perf_counter() - started)
        return out

    def _options(self, error: str | None, task: str | None, language: str | None, prompt: str | None) -> _Row:
        """The row's task, language and prompt, from the row or the config, checked against the model."""
        if error is not None:
            return _Row(error=str(error))
        d = self.config.decoding
        task = task or d.task
        language = language or d.language
        prompt = prompt or d.initial_prompt  # as task and language: null or "" = the config's
        model = self.config.model.id
        if task not in TASKS:
            return _Row(error=f"{STAGE}: unknown task {task!r} (expected one of {TASKS})")
        if not self.info.multilingual:
            if problem := english_only_problem(model, task, language):
                return _Row(error=f"{STAGE}: {problem}")
            return _Row(task=task, language="en", prompt=prompt)
        if language is not None and language not in self._languages:
            return _Row(error=f"{STAGE}: model {model} does not know language {language!r}")
        return _Row(task=task, language=language, prompt=prompt)

    def _detect_sequential(self, batch: Mapping[str, Any], rows: list[_Row]) -> None:
        """Detect the language of multilingual rows for sequential long form that have none, from the
        first 30 s of their waveform, and more when that is unsure (chunked rows are detected as their
        first window is decoded)."""
        need = [i for i, r in enumerate(rows) if r.error is None and r.language is None and batch[FEATURES][i] is None]
        if not need:
            return
        firsts = {}
        for i, out in zip(need, detect_languages(self.loaded, [self._window_at(batch, i, 0) for i in need],
                                                 self.config.decoding.batch_size)):
            if isinstance(out, str):
                rows[i].error = out
            else:
                firsts[i] = out
        wave = batch[WAVEFORM]
        self._decide_languages(rows, firsts, lambda i, k: self._window_at(batch, i, k)
                               if k * WINDOW_SAMPLES < len(wave[i]) else None)

    def _window_at(self, batch: Mapping[str, Any], i: int, k: int):
        """The features of row ``i``'s ``k``-th 30 s of waveform (sequential long form)."""
        return self.log_mel.one(batch[WAVEFORM][i][k * WINDOW_SAMPLES : (k + 1) * WINDOW_SAMPLES])

    def _decide_languages(self, rows: list[_Row], firsts: dict[int, Any], window: Callable[[int, int], Any]) -> set[int]:
        """Each row's language and its probability, from its first window's distribution (``firsts``); a row
        whose first is unsure is decided from up to ``decoding.language_detection_windows`` windows
        (``window(i, k)``: row ``i``'s ``k``-th window, or None past its end). Returns the rows decided
        otherwise than their first window's most likely language."""
        d = self.config.decoding
        decided = {i: decide(self._codes, [dist]) for i, dist in firsts.items()}
        further = [(i, w) for i, det in decided.items() if unsure(det, d.language_detection_threshold)
                   for w in (window(i, k) for k in range(1, d.language_detection_windows)) if w is not None]
        more: dict[int, list] = {}
        for (i, _), out in zip(further, detect_languages(self.loaded, [w for _, w in further], d.batch_size)):
            if not isinstance(out, str):  # a window that failed to be read leaves the decision to the others
                more.setdefault(i, []).append(out)
        changed = set()
        for i, first in decided.items():
            det = decide(self._codes, [firsts[i], *more[i]]) if i in more else first
            if det.language != first.language:
                changed.add(i)
            rows[i].language, rows[i].language_probability = det.language, det.probability
        return changed

    def _generate_chunked(self, batch: Mapping[str, Any], rows: list[_Row]) -> int:
        """Decode every window of every windowed row in packed batches; returns the window count.

        A multilingual row with no language is detected from its first window (split audio:
        that of the first channel with a window) while that window is decoded, from the same
        encoder pass (when that is unsure, from more windows: :mod:`asr_actor.language`); its
        other windows are then decoded in that language.
        """
        chunked = [i for i, r in enumerate(rows) if r.error is None and batch[FEATURES][i] is not None]
        for i in chunked:
            rows[i].windows = []  # stays empty when the VAD found no speech
        firsts = [(i, 0) for i in chunked if rows[i].language is None and len(batch[FEATURES][i])]
        done = self._generate(batch, rows, firsts)
        dists = {}
        for (i, _), out in done.items():
            if isinstance(out, str):
                rows[i].error = out
            else:
                dists[i] = out.languages
        feats = batch[FEATURES]
        for i in self._decide_languages(rows, dists, lambda i, k: feats[i][k] if k < len(feats[i]) else None):
            del done[(i, 0)]  # decoded in the language the first window alone suggested: again in the decided one
        rest = [(i, w) for i in chunked if rows[i].error is None for w in range(len(batch[FEATURES][i]))
                if (i, w) not in done]
        done.update(self._generate(batch, rows, rest))
        per_row: dict[int, list] = {}
        for (i, w), out in sorted(done.items(), key=lambda item: item[0]):
            per_row.setdefault(i, []).append((w, out))
        for i in chunked:
            parts = per_row.get(i, [])
            failed = [out for _, out in parts if isinstance(out, str)]
            if rows[i].error is None and failed:
                rows[i].error = failed[0]
            if rows[i].error is None:
                bounds = batch[WINDOWS][i]
                rows[i].windows = [self._window_segments(out.segments, bounds[w]) for w, out in parts]
        return len(done)

    def _generate(self, batch: Mapping[str, Any], rows: list[_Row], owners: list[tuple[int, int]]) -> dict:
        """(row, window) -> its :class:`Decoded`, or an error string."""
        reqs = []
        for i, w in owners:
            bounds, row = batch[WINDOWS][i][w], rows[i]
            seconds = (bounds[1] - bounds[0]) / SAMPLE_RATE
            reqs.append(WindowRequest(batch[FEATURES][i][w], row.task, row.language, row.prompt, seconds))
        return dict(zip(owners, generate_windows(self.loaded, reqs, self.config.decoding, self.on_windows)))

    def _window_segments(self, raw, bounds) -> list[Segment]:
        """A window's segments in file time; ``bounds``: start, end (samples) and, split, the channel."""
        start, end = int(bounds[0]), int(bounds[1])
        channel = int(bounds[2]) if len(bounds) > 2 else None
        return to_segments(raw, self._decode_text, start / SAMPLE_RATE, (end - start) / SAMPLE_RATE, self._text_limit,
                           channel)

    def _decode_text(self, ids: list[int]) -> str:
        return self.loaded.processor.tokenizer.decode(ids, skip_special_tokens=True)

    def _generate_sequential(self, batch: Mapping[str, Any], rows: list[_Row]) -> None:
        """Rows left for transformers' long-form generate (``decoding.long_form: sequential``)."""
        idx = [i for i, r in enumerate(rows) if r.error is None and r.windows is None and batch[WAVEFORM][i] is not None]
        if not idx:
            return
        results = transcribe_sequential(
            self.loaded, [batch[WAVEFORM][i] for i in idx], [rows[i].task for i in idx],
            [rows[i].language for i in idx], [rows[i].prompt for i in idx], self.config.decoding, self.on_windows,
        )
        for i, result in zip(idx, results):
            if isinstance(result, str):
                rows[i].error = result
            else:
                rows[i].windows = [to_segments(result, self._decode_text, 0.0, len(batch[WAVEFORM][i]) / SAMPLE_RATE,
                                               self._text_limit)]

    @staticmethod
    def _results(rows: list[_Row]) -> dict[str, list]:
        out: dict[str, list] = {k: [] for k in RESULT_COLUMNS if k != DURATION}
        for row in rows:
            if row.error is None and row.windows is None:
                row.error = f"{STAGE}: no windows were produced for this row"
            ok = row.error is None
            text, segments = stitch(row.windows) if ok else (None, [])
            out[TEXT].append(text)
            out[SEGMENTS].append([s.as_dict() for s in segments])
            out[LANGUAGE].append(row.language if ok else None)
            out[LANGUAGE_PROBABILITY].append(row.language_probability if ok else None)
            out[TASK].append(row.task if ok else None)
            out[ERROR].append(row.error)
        return out
